-- lock_release(keys=[lock], args=[token])
-- Release a lock only if this token still holds it (an expired lock may belong to another).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
