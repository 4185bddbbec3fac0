-- defer_delivery(keys=[record, outbox, claim], args=[member, now_ms, retry_after_ms, claim_token, redirty, max_backoff_ms])
-- Slack did not take the message: keep it in the outbox, release the claim, and put back the
-- dirty flag this attempt had taken. Due again after Slack's Retry-After when given (> 0),
-- which replaces the backoff; else after 0.5 s, 1 s, 2 s ... up to max_backoff_ms.
-- Returns {attempts, due_ms}, or {-1, 0} when the claim was no longer ours (nothing changed).
if redis.call('GET', KEYS[3]) ~= ARGV[4] then
  return {-1, 0}
end
redis.call('DEL', KEYS[3])
local attempts = 1
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'dirty', '1')
  end
  if tonumber(ARGV[3]) > 0 then
    attempts = tonumber(redis.call('HGET', KEYS[1], 'delivery_attempts') or '0')
  else
    attempts = redis.call('HINCRBY', KEYS[1], 'delivery_attempts', 1)
  end
end
local wait = tonumber(ARGV[3])
if wait <= 0 then
  wait = math.min(500 * 2 ^ math.min(attempts - 1, 30), tonumber(ARGV[6]))
end
local due = tonumber(ARGV[2]) + wait
redis.call('ZADD', KEYS[2], 'XX', due, ARGV[1])
return {attempts, due}
