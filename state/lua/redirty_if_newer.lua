-- redirty_if_newer(keys=[procedure], args=[version shown])
-- After a message update: when the procedure has moved past the version that update showed
-- (another process changed it meanwhile and may have shown the newer state before this
-- update landed), the message is stale again and the next flush shows the latest state.
local v = redis.call('HGET', KEYS[1], 'version')
if v and v ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'dirty', '1')
  return 1
end
return 0
