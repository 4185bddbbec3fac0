-- once_seen(key, token, now_ms) / once_record(key, token, now_ms, ttl_ms): the request tokens of
-- one problem in one sorted set (member: a digest of the token, score: when it lapses), so a
-- Slack retry of the same request is a no-op while a token costs a few bytes, not a key.
local function once_seen(key, token, now_ms)
  if key == '' then
    return false
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  return redis.call('ZSCORE', key, token) ~= false
end

local function once_record(key, token, now_ms, ttl_ms)
  if key == '' then
    return
  end
  redis.call('ZADD', key, tonumber(now_ms) + tonumber(ttl_ms), token)
  redis.call('PEXPIRE', key, ttl_ms)
end
