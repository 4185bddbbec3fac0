-- close_incident(keys=[incident, reporters, audit, open_index, global_audit], args=[incident_id, now_ms, actor, reason, audit_maxlen])
-- Close the open incident and archive it under its sequence number; a later alert opens a new one.
if redis.call('HGET', KEYS[1], 'status') ~= 'open' or redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return 0
end
local seq = redis.call('HGET', KEYS[1], 'seq')
redis.call('HSET', KEYS[1], 'status', 'closed', 'closed_at', ARGV[2], 'closed_by', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('RENAME', KEYS[1], KEYS[1] .. ':' .. seq)
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[2] .. ':' .. seq)
end
redis.call('ZREM', KEYS[4], ARGV[1])
local entry = {'event', 'incident_closed', 'incident', ARGV[1], 'actor', ARGV[3],
  'reason', ARGV[4], 'at_ms', ARGV[2]}
audit_append(KEYS[3], ARGV[5], entry)
audit_append(KEYS[5], ARGV[5], entry)
return 1
