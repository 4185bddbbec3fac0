-- procedure_note(keys=[incident_audit, global_audit, once], args=[once_ttl_ms, audit_maxlen, n_events, (n_fields, k, v, ...)*])
-- Audit something that changed no state (a refused click), once per request token.
-- Returns 1 written, 0 duplicate.
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[i])
  local entry = {}
  for j = 1, n * 2 do
    entry[j] = ARGV[i + j]
  end
  audit_append(KEYS[1], ARGV[2], entry)
  audit_append(KEYS[2], ARGV[2], entry)
  i = i + 1 + n * 2
end
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
end
return 1
