-- request_diagnosis(keys=[incident, pending, incident_audit, jobs, global_audit], args=[incident_id, user, now_ms, pending_ttl_ms, job_id, audit_maxlen, then])
-- Queue one diagnosis of an open incident: pending flag, job and audit entries, all or nothing.
-- Returns 1 queued, 0 one is already pending, -1 no such open incident.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  return -1
end
if redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[4]) == false then
  return 0
end
redis.call('XADD', KEYS[4], '*', 'job_id', ARGV[5], 'kind', 'diagnose', 'incident', ARGV[1],
  'requested_by', ARGV[2], 'enqueued_at_ms', ARGV[3], 'then', ARGV[7])
local entry = {'event', 'diagnosis_requested', 'incident', ARGV[1], 'user', ARGV[2],
  'job_id', ARGV[5], 'at_ms', ARGV[3]}
audit_append(KEYS[3], ARGV[6], entry)
audit_append(KEYS[5], ARGV[6], entry)
return 1
