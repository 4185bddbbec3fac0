-- set_message(keys=[incident], args=[incident_id, channel, ts])
-- Record where the incident message lives, once: the first poster wins. Returns 1 to the first
-- poster (again on its own retry with the same ts), 0 when another message was recorded first.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return -1
end
if redis.call('HSETNX', KEYS[1], 'ts', ARGV[3]) == 1 then
  redis.call('HSET', KEYS[1], 'channel', ARGV[2])
  return 1
end
if redis.call('HGET', KEYS[1], 'ts') == ARGV[3] then
  -- A retry of our own write: write again (propagate) so WAIT on this connection covers it.
  redis.call('HSET', KEYS[1], 'channel', ARGV[2])
  return 1
end
return 0
