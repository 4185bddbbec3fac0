-- record_alert(keys=[incident, reporters, audit, seq, open_index, global_audit], args=[now_ms, forest, dsa_guid, reporting_dc, error_code, observed_at, source_format, tag, audit_maxlen])
-- One alert: open a new incident for (forest, DSA GUID) or count it on the open one. Atomic:
-- the incident, its reporters, the open-incident index and both audit streams change together.
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'open' then
  local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1], 'dirty', '1')
  local id = redis.call('HGET', KEYS[1], 'id')
  if redis.call('HINCRBY', KEYS[2], ARGV[4], 1) == 1 then
    redis.call('HINCRBY', KEYS[1], 'version', 1)
    audit_append(KEYS[3], ARGV[9], {'event', 'reporter_added', 'incident', id,
      'reporting_dc', ARGV[4], 'source_format', ARGV[7], 'at_ms', ARGV[1]})
  end
  return {0, id, count}
end
local n = redis.call('INCR', KEYS[4])
local id = ARGV[8] .. '-' .. n
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'id', id, 'seq', n, 'status', 'open', 'forest', ARGV[2],
  'dsa_guid', ARGV[3], 'error_code', ARGV[5], 'observed_at', ARGV[6], 'created_at', ARGV[1],
  'last_seen', ARGV[1], 'count', 1, 'version', 1)
redis.call('HSET', KEYS[2], ARGV[4], 1)
redis.call('ZADD', KEYS[5], ARGV[1], id)
local entry = {'event', 'incident_opened', 'incident', id, 'reporting_dc', ARGV[4],
  'forest', ARGV[2], 'dsa_guid', ARGV[3], 'error_code', ARGV[5], 'source_format', ARGV[7],
  'at_ms', ARGV[1]}
audit_append(KEYS[3], ARGV[9], entry)
audit_append(KEYS[6], ARGV[9], entry)
return {1, id, 1}
