-- claim_delivery(keys=[outbox, claim], args=[member, now_ms, claim_token, lease_ms])
-- Take the lease on a member only if it is still due: another replica may have delivered it
-- and rescheduled it (coalescing) since this one read the due list. Returns 1 taken, 0 not.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return 1
end
return 0
