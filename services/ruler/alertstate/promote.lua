-- Promote: a pending alert whose `for` has run out fires. Idempotent: an
-- alert that is not pending, or not yet due, stays as it is.
-- KEYS: 1 alert hash, 2 event id list (one hash tag)
-- ARGV: 1 now ms
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'state', 'fire_at', 'resolve_at')
if h[1] ~= 'pending' then
  return reply('unchanged')
end
local fire_at, resolve_at = tonumber(h[2] or '0'), tonumber(h[3] or '0')
if fire_at > now then
  return reply('unchanged')
end
if resolve_at > 0 and resolve_at <= fire_at then
  -- The condition stopped holding before it had held long enough: the
  -- resolution sweep ends it without its ever firing.
  return reply('unchanged')
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'state', 'firing', 'updated_at', now)
return reply('changed')
