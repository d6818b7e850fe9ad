-- tablecast:begin — records a version being written.
-- KEYS: current versions staged highest stage manifest; ARGV: version buckets layout
local v = ARGV[1]
if redis.call('GET', KEYS[1]) == v or redis.call('ZSCORE', KEYS[2], v) then
  return {'err', 'version ' .. v .. ' is already committed here'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[5], KEYS[6])
redis.call('HSET', KEYS[5], 'buckets', ARGV[2], 'started_ms', now, 'layout', ARGV[3])
redis.call('ZADD', KEYS[3], now, v)
local h = tonumber(redis.call('GET', KEYS[4]) or '0')
if tonumber(v) > h then redis.call('SET', KEYS[4], v) end
return {'ok', now}
