-- lock_extend(keys=[lock], args=[token, ttl_ms])
-- Keep holding a lock while its work goes on; 0 when the token no longer holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
