-- tablecast:commit — switches the serving pointer, fenced.
-- KEYS: current versions staged retired manifest fence auth
-- ARGV: version fence mode (forward | explicit)
-- Refuses a fence older than the newest seen here (a stalled operation that lost its lease),
-- and in forward mode a version not newer than the serving one (serving never goes backwards
-- unless the control plane says so explicitly).
local v = ARGV[1]
local fence = tonumber(ARGV[2])
local seen = tonumber(redis.call('GET', KEYS[6]) or '0')
if fence < seen then
  return {'err', 'stale fence ' .. ARGV[2] .. ': an operation holding fence ' .. seen .. ' has switched this API here since'}
end
local prev = redis.call('GET', KEYS[1])
if prev == v then
  redis.call('SET', KEYS[6], fence)
  return {'ok', prev}
end
if ARGV[3] == 'forward' and prev and tonumber(prev) > tonumber(v) then
  return {'err', 'version ' .. v .. ' is older than the serving version ' .. prev .. ' (a publish never goes backwards)'}
end
if redis.call('EXISTS', KEYS[5]) == 0 then
  return {'err', 'version ' .. v .. ' is not sealed here (or was dropped)'}
end
if not redis.call('ZSCORE', KEYS[2], v) and not redis.call('ZSCORE', KEYS[3], v) then
  return {'err', 'version ' .. v .. ' is neither sealed nor kept here'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], v)
redis.call('SET', KEYS[6], fence)
redis.call('ZADD', KEYS[2], v, v)
redis.call('ZREM', KEYS[3], v)
redis.call('ZREM', KEYS[4], v)
if prev then redis.call('ZADD', KEYS[4], now, prev) end
-- An API nobody set access for is public (a writer used without a control plane).
if redis.call('EXISTS', KEYS[7]) == 0 then
  redis.call('HSET', KEYS[7], 'protected', '0', 'revision', '0')
end
-- Lookup services listening learn the switch now rather than at their next version check.
redis.call('PUBLISH', 'tc:changes', KEYS[1])
return {'ok', prev or ''}
