-- audit_append(stream, maxlen, entry): the library every audit-writing script includes.
-- Each entry carries the hash of the previous entry of its stream ('prev') and its own
-- ('hash' = SHA-1 over prev and the length-prefixed field names and values), so an entry
-- edited, removed or moved breaks the chain (`ad1411 audit verify`). The stream's last hash
-- lives in '<stream>:head', in the stream's hash slot.
local function audit_append(stream, maxlen, entry)
  local head = stream .. ':head'
  local prev = redis.call('GET', head) or ''
  local parts = {string.len(prev) .. ':' .. prev}
  for i = 1, #entry do
    parts[#parts + 1] = string.len(entry[i]) .. ':' .. entry[i]
  end
  local hash = redis.sha1hex(table.concat(parts, ''))
  local fields = {}
  for i = 1, #entry do
    fields[i] = entry[i]
  end
  fields[#fields + 1] = 'prev'
  fields[#fields + 1] = prev
  fields[#fields + 1] = 'hash'
  fields[#fields + 1] = hash
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  redis.call('SET', head, hash)
  return hash
end
