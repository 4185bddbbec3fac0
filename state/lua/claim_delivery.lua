-- claim_delivery(keys=[outbox, claim], args=[member, now_ms, claim_token, lease_ms])
-- Take the lease on a member only if it is still due: another replica may have delivered it
-- and rescheduled it (coalescing) since this one read the due list. Returns 1 taken, 0 not.
-- A claim already held with this token is this attempt's own, applied by a call whose reply
-- was lost (the client retries on a reset connection): taken, not refused, or the member
-- would wait out the whole lease.
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return 1
end
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return 1
end
return 0
