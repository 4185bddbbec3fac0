-- procedure_note(keys=[incident_audit, global_audit, once], args=[once_ttl_ms, audit_maxlen, now_ms, once_token, n_events, (n_fields, k, v, ...)*])
-- Audit something that changed no state (a refused click), once per request token.
-- Returns 1 written, 0 duplicate.
if once_seen(KEYS[3], ARGV[4], ARGV[3]) then
  return 0
end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local n = tonumber(ARGV[i])
  local entry = {}
  for j = 1, n * 2 do
    entry[j] = ARGV[i + j]
  end
  audit_append(KEYS[1], ARGV[2], entry)
  audit_append(KEYS[2], ARGV[2], entry)
  i = i + 1 + n * 2
end
once_record(KEYS[3], ARGV[4], ARGV[3], ARGV[1])
return 1
