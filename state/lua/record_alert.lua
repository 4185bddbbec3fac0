-- record_alert(keys=[incident, reporters, audit, seq, open_index, global_audit, outbox, new_count, flood, flood_items], args=[now_ms, forest, dsa_guid, reporting_dc, error_code, observed_at, source_format, tag, audit_maxlen, may_open, per_minute_cap, window_ms, flood_id, flood_ttl_ms, flood_items_max])
-- One alert: count it on the open incident of (forest, DSA GUID), or open one and queue its
-- message, or (beyond the per-request or per-minute cap) group it into the minute's alert
-- flood. Atomic: incident, reporters, index, outbox, counters and both audits change together.
-- Returns {1, id, 1} opened, {0, id, count} counted, {2, flood_id, flood_count} grouped.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[12])

-- The message is due now, or one coalescing window after its last delivery.
local function schedule(hash, member)
  if redis.call('HEXISTS', hash, 'ts') == 1 then
    local due = math.max(now, tonumber(redis.call('HGET', hash, 'flushed_at') or '0') + window)
    redis.call('ZADD', KEYS[7], 'NX', due, member)
  else
    redis.call('ZADD', KEYS[7], 'NX', now, member)
  end
end

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
  schedule(KEYS[1], id)
  return {0, id, count}
end

local opened = tonumber(redis.call('GET', KEYS[8]) or '0')
if ARGV[10] ~= '1' or opened >= tonumber(ARGV[11]) then
  local fcount = redis.call('HINCRBY', KEYS[9], 'count', 1)
  redis.call('HSETNX', KEYS[9], 'id', ARGV[13])
  redis.call('HSETNX', KEYS[9], 'first_ms', ARGV[1])
  redis.call('HSET', KEYS[9], 'last_ms', ARGV[1], 'dirty', '1')
  if redis.call('HLEN', KEYS[10]) < tonumber(ARGV[15]) then
    redis.call('HSETNX', KEYS[10], ARGV[3] .. ' ' .. ARGV[2], ARGV[4])
  end
  redis.call('PEXPIRE', KEYS[9], ARGV[14])
  redis.call('PEXPIRE', KEYS[10], ARGV[14])
  schedule(KEYS[9], ARGV[13])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[9], '*', 'event', 'alert_grouped',
    'flood', ARGV[13], 'reporting_dc', ARGV[4], 'forest', ARGV[2], 'dsa_guid', ARGV[3],
    'source_format', ARGV[7], 'at_ms', ARGV[1])
  return {2, ARGV[13], fcount}
end

redis.call('INCR', KEYS[8])
redis.call('PEXPIRE', KEYS[8], 120000)
local n = redis.call('INCR', KEYS[4])
local id = ARGV[8] .. '-' .. n
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'id', id, 'seq', n, 'status', 'open', 'forest', ARGV[2],
  'dsa_guid', ARGV[3], 'error_code', ARGV[5], 'observed_at', ARGV[6], 'created_at', ARGV[1],
  'last_seen', ARGV[1], 'count', 1, 'version', 1, 'intro_pending', '1')
redis.call('HSET', KEYS[2], ARGV[4], 1)
redis.call('ZADD', KEYS[5], ARGV[1], id)
redis.call('ZADD', KEYS[7], now, id)
local entry = {'event', 'incident_opened', 'incident', id, 'reporting_dc', ARGV[4],
  'forest', ARGV[2], 'dsa_guid', ARGV[3], 'error_code', ARGV[5], 'source_format', ARGV[7],
  'at_ms', ARGV[1]}
audit_append(KEYS[3], ARGV[9], entry)
audit_append(KEYS[6], ARGV[9], entry)
return {1, id, 1}
