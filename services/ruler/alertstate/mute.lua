-- Mute: set which silences and which alerts mute an open alert. Idempotent:
-- the same marks again, or an alert that is not open, change nothing.
-- KEYS: 1 alert hash, 2 event id list (one hash tag)
-- ARGV: 1 now ms, 2 silenced by, 3 inhibited by
local h = redis.call('HMGET', KEYS[1], 'state', 'silenced', 'inhibited')
if h[1] ~= 'firing' and h[1] ~= 'pending' then
  return reply('unchanged')
end
if (h[2] or '') == ARGV[2] and (h[3] or '') == ARGV[3] then
  return reply('unchanged')
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'silenced', ARGV[2], 'inhibited', ARGV[3], 'updated_at', ARGV[1])
return reply('changed')
