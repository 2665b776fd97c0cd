-- Resolve: a clear condition held, or no matching event came for the
-- rule's resolve_after. A pending alert resolves too, without having fired.
-- Idempotent: an alert that is neither firing nor pending stays as it is.
-- KEYS: 1 alert hash, 2 event id list, 3 count window (all one hash tag)
-- ARGV: 1 now ms, 2 "clear" or "expire", 3 ms to keep a resolved alert
local now = tonumber(ARGV[1])
if ARGV[2] == 'clear' then
  -- A clear also restarts a window that has not fired yet.
  redis.call('DEL', KEYS[3])
end
local h = redis.call('HMGET', KEYS[1], 'state', 'resolve_at')
if h[1] ~= 'firing' and h[1] ~= 'pending' then
  return reply('unchanged')
end
local ends = now
if ARGV[2] == 'expire' then
  local at = tonumber(h[2] or '0')
  if at == 0 or at > now then
    return reply('unchanged')
  end
  -- It resolved when its time ran out, however late the sweep came.
  ends = at
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'state', 'resolved', 'updated_at', now, 'ends_at', ends, 'resolve_at', 0)
redis.call('DEL', KEYS[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return reply('changed')
