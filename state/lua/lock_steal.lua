-- lock_steal(keys=[lock], args=[old_token, new_token, ttl_ms])
-- Take over a lock whose holder is known dead, only if that holder still has it; 1 when the
-- new token holds it now (again on its own retry).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or holder == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
