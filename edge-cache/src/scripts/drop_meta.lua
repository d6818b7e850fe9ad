-- tablecast:drop — forgets a version that does not serve (its buckets are unlinked after).
-- KEYS: current versions staged retired stage manifest; ARGV: version
local v = ARGV[1]
if redis.call('GET', KEYS[1]) == v then
  return {'err', 'version ' .. v .. ' is serving; commit another version first'}
end
redis.call('ZREM', KEYS[2], v)
redis.call('ZREM', KEYS[3], v)
redis.call('ZREM', KEYS[4], v)
redis.call('DEL', KEYS[5], KEYS[6])
return {'ok', 1}
