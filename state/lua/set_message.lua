-- set_message(keys=[record, threads?], args=[id, channel, ts])
-- Record where the incident message lives, once: the first poster wins. Returns 1 to the first
-- poster (again on its own retry with the same ts), 0 when another message was recorded first.
-- With a second key (incidents), its thread is indexed (channel:ts -> incident id) so messages
-- in the thread find their incident; alert-flood messages pass none.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return -1
end
if redis.call('HSETNX', KEYS[1], 'ts', ARGV[3]) == 1 then
  redis.call('HSET', KEYS[1], 'channel', ARGV[2])
  if KEYS[2] then
    redis.call('HSET', KEYS[2], ARGV[2] .. ':' .. ARGV[3], ARGV[1])
  end
  return 1
end
if redis.call('HGET', KEYS[1], 'ts') == ARGV[3] then
  -- A retry of our own write: write again (propagate) so WAIT on this connection covers it.
  redis.call('HSET', KEYS[1], 'channel', ARGV[2])
  return 1
end
return 0
