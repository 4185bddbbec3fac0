-- finish_diagnosis(keys=[pending, diagnosis, incident_audit, global_audit, job_done, jobs], args=[incident_id, job_id, now_ms, outcome, result_json_or_empty, ttl_ms, audit_maxlen, user, detail, jobs_group, stream_id_or_empty, finish_token])
-- Record the end of a diagnosis job once: its result (when it succeeded), the audit entries, the
-- pending flag cleared if it is still this job's, and the job acked. Returns 1 to the finisher
-- (again on its own retry, with the same token), 0 when another run already finished the job.
if ARGV[11] ~= '' then
  redis.call('XACK', KEYS[6], ARGV[10], ARGV[11])
end
if redis.call('SET', KEYS[5], ARGV[12], 'NX', 'PX', ARGV[6]) == false then
  if redis.call('GET', KEYS[5]) == ARGV[12] then
    -- Our own earlier finish: write (propagate) so WAIT on this connection covers it.
    redis.call('PEXPIRE', KEYS[5], ARGV[6])
    return 1
  end
  return 0
end
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
