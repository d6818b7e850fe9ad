-- tablecast:retire — a deleted API stops serving at once; its versions are listed for dropping.
-- Leaves a tombstone (`deleted` in the auth hash) so lookups answer that the API is gone, until
-- a newer access set (a re-created API) clears it.
-- KEYS: current versions staged retired highest auth; ARGV: (none)
local listed = {}
for _, set in ipairs({KEYS[2], KEYS[3], KEYS[4]}) do
  for _, v in ipairs(redis.call('ZRANGE', set, 0, -1)) do table.insert(listed, v) end
end
redis.call('DEL', KEYS[1], KEYS[5])
redis.call('HSET', KEYS[6], 'deleted', '1')
redis.call('PUBLISH', 'tc:changes', KEYS[1])
return {'ok', listed}
