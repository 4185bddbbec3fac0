-- procedure_message(keys=[proc], args=[channel, ts])
-- Record where the procedure message lives, once: the first poster wins. Returns 1 to the first
-- poster (again on its own retry with the same ts), 0 when another message was recorded first.
if redis.call('HSETNX', KEYS[1], 'msg_ts', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'msg_channel', ARGV[1])
  return 1
end
if redis.call('HGET', KEYS[1], 'msg_ts') == ARGV[2] then
  -- Our own earlier attempt: write (propagate) so WAIT covers it.
  redis.call('HSET', KEYS[1], 'msg_channel', ARGV[1])
  return 1
end
return 0
