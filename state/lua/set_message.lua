-- set_message(keys=[incident], args=[incident_id, channel, ts])
-- Record where the incident message lives, once: the first poster wins.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return -1
end
if redis.call('HSETNX', KEYS[1], 'ts', ARGV[3]) == 1 then
  redis.call('HSET', KEYS[1], 'channel', ARGV[2])
  return 1
end
return 0
