-- tablecast:access — replaces who may read an API (and at what rate), unless this or a newer
-- revision is here.
-- KEYS: tokens auth limits; ARGV: revision protected n hash1..hashn then (hash limit)...
local held = tonumber(redis.call('HGET', KEYS[2], 'revision') or '-1')
if tonumber(ARGV[1]) <= held then
  return {'ok', 'stale'}
end
local n = tonumber(ARGV[3])
redis.call('DEL', KEYS[1], KEYS[3])
for i = 4, 3 + n do redis.call('SADD', KEYS[1], ARGV[i]) end
for i = 4 + n, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'protected', ARGV[2], 'revision', ARGV[1])
-- A newer set than the delete's is a re-created API: it is no longer gone.
redis.call('HDEL', KEYS[2], 'deleted')
redis.call('PUBLISH', 'tc:changes', KEYS[1])
return {'ok', 'applied'}
