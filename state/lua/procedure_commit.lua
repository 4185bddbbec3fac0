-- procedure_commit(keys=[proc, current, incident_audit, jobs, global_audit, active_index, once], args=[proc_id, expected_version, data, status, mode, once_ttl_ms, audit_maxlen, now_ms, attempt_nonce, n_events, (n_fields, k, v, ...)*, n_job_fields, k, v, ...])
-- Commit one procedure transition decided by the pure rules: only if the version is still the
-- one the decision read (compare-and-set), write the new state, append the audit entries to
-- both streams, queue the job, and remember the request token with the version it made and
-- the attempt's nonce; all or nothing.
-- Returns {'ok', version} | {'conflict', version, data} | {'duplicate', 'version:nonce'} |
-- {'busy', current_id}.
local seen = redis.call('GET', KEYS[7])
if seen then
  -- Write (propagate) so that WAIT after this reply also covers the commit the token made:
  -- a retry of an applied but unconfirmed commit returns only once replicas hold it.
  redis.call('PEXPIRE', KEYS[7], ARGV[6])
  return {'duplicate', seen}
end
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[5] == 'start' then
  local current = redis.call('GET', KEYS[2])
  if current then
    return {'busy', current}
  end
end
if version ~= tonumber(ARGV[2]) then
  return {'conflict', tostring(version), redis.call('HGET', KEYS[1], 'data') or ''}
end
local new_version = version + 1
redis.call('HSET', KEYS[1], 'version', new_version, 'data', ARGV[3], 'status', ARGV[4],
  'dirty', '1')
if ARGV[4] == 'active' or ARGV[4] == 'aborting' then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[1])
else
  if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
  end
  redis.call('ZREM', KEYS[6], ARGV[1])
end
local i = 11
local n_events = tonumber(ARGV[10])
for _ = 1, n_events do
  local n = tonumber(ARGV[i])
  local entry = {}
  for j = 1, n * 2 do
    entry[j] = ARGV[i + j]
  end
  audit_append(KEYS[3], ARGV[7], entry)
  audit_append(KEYS[5], ARGV[7], entry)
  i = i + 1 + n * 2
end
local n_job = tonumber(ARGV[i])
if n_job > 0 then
  local job = {}
  for j = 1, n_job * 2 do
    job[j] = ARGV[i + j]
  end
  redis.call('XADD', KEYS[4], '*', unpack(job))
end
redis.call('SET', KEYS[7], new_version .. ':' .. ARGV[9], 'PX', ARGV[6])
return {'ok', tostring(new_version)}
