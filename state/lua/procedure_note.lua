-- procedure_note(keys=[incident_audit, global_audit, once], args=[once_ttl_ms, audit_maxlen, attempt_nonce, n_events, (n_fields, k, v, ...)*])
-- Audit something that changed no state (a refused click, a command run), once per request
-- token. Returns {'written'}, or {'duplicate', nonce of the attempt that wrote it}.
local seen = redis.call('GET', KEYS[3])
if seen then
  -- Write (propagate) so that WAIT after this reply also covers the entries written before.
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
  return {'duplicate', seen}
end
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local n = tonumber(ARGV[i])
  local entry = {}
  for j = 1, n * 2 do
    entry[j] = ARGV[i + j]
  end
  audit_append(KEYS[1], ARGV[2], entry)
  audit_append(KEYS[2], ARGV[2], entry)
  i = i + 1 + n * 2
end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[1])
return {'written'}
