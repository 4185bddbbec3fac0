-- lock_acquire(keys=[lock], args=[token, ttl_ms])
-- Take a lock if it is free; 1 when this token holds it now (again on its own retry), else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  -- Our own earlier attempt: write (propagate) so WAIT covers it.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
