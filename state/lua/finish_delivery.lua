-- finish_delivery(keys=[record, outbox, claim], args=[member, now_ms, window_ms, claim_token])
-- Slack has the message as the record is now: release the claim; if alerts arrived meanwhile
-- (dirty), the next update is due one window later, otherwise the member leaves the outbox.
-- Returns 1 rescheduled, 0 done, -1 the claim was no longer ours (nothing changed).
if redis.call('GET', KEYS[3]) ~= ARGV[4] then
  return -1
end
redis.call('DEL', KEYS[3])
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'flushed_at', ARGV[2], 'delivery_attempts', 0)
redis.call('HDEL', KEYS[1], 'intro_pending')
if redis.call('HEXISTS', KEYS[1], 'dirty') == 1 then
  redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
