-- save_output(keys=[outputs], args=[name, blob, budget_bytes, ttl_seconds])
-- Keep one run's compressed output in the procedure's output hash, within the procedure's
-- output budget (the '_bytes' field counts what is kept), so a procedure's outputs stay
-- bounded however much its commands print and however often a step is retried. A retry of
-- the same run (through a failover) finds its output kept and counts it once.
-- Returns 1 kept, 0 over budget (nothing kept).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 1
end
local size = string.len(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], '_bytes') or '0')
if used + size > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], '_bytes', size)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
