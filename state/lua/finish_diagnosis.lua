-- finish_diagnosis(keys=[pending, diagnosis, incident_audit, global_audit], args=[incident_id, job_id, now_ms, outcome, result_json_or_empty, ttl_ms, audit_maxlen, user, detail])
-- Record the end of a diagnosis job: its result (when it succeeded), the audit entries, and
-- the pending flag cleared if it is still this job's. Returns 1.
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
end
local entry = {'event', 'diagnosis_' .. ARGV[4], 'incident', ARGV[1], 'user', ARGV[8],
  'job_id', ARGV[2], 'detail', ARGV[9], 'at_ms', ARGV[3]}
audit_append(KEYS[3], ARGV[7], entry)
audit_append(KEYS[4], ARGV[7], entry)
return 1
