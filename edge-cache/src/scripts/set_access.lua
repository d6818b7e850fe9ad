-- tablecast:access — replaces who may read an API, unless this or a newer revision is here.
-- KEYS: tokens auth; ARGV: revision protected hash...
local held = tonumber(redis.call('HGET', KEYS[2], 'revision') or '-1')
if tonumber(ARGV[1]) <= held then
  return {'ok', 'stale'}
end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('HSET', KEYS[2], 'protected', ARGV[2], 'revision', ARGV[1])
-- A newer set than the delete's is a re-created API: it is no longer gone.
redis.call('HDEL', KEYS[2], 'deleted')
return {'ok', 'applied'}
