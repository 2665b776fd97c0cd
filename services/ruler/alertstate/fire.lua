-- Fire: an event matched a rule. Idempotent: an event id the alert already
-- holds changes nothing.
-- KEYS: 1 alert hash, 2 event id list, 3 count window (all one hash tag)
-- ARGV: 1 event id, 2 event time ms, 3 now ms, 4 alert body,
--       5 max event ids, 6 at_least (0: no window), 7 window ms,
--       8 resolve_at ms (0: never)
local id, t, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local state = redis.call('HGET', KEYS[1], 'state')
if state and redis.call('LPOS', KEYS[2], id) then
  return reply('unchanged')
end

local ids = nil
local starts = t
local at_least = tonumber(ARGV[6])
if state ~= 'firing' and at_least > 0 then
  local within = tonumber(ARGV[7])
  if redis.call('ZADD', KEYS[3], 'NX', t, id) == 0 then
    return reply('unchanged')
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (t - within))
  redis.call('PEXPIRE', KEYS[3], within * 2)
  ids = redis.call('ZRANGEBYSCORE', KEYS[3], t - within, t)
  if #ids < at_least then
    return reply('pending')
  end
  starts = tonumber(redis.call('ZRANGEBYSCORE', KEYS[3], t - within, t, 'WITHSCORES', 'LIMIT', 0, 1)[2])
  redis.call('DEL', KEYS[3])
end

local max = tonumber(ARGV[5])
if state ~= 'firing' then
  -- A new episode: the alert starts again.
  redis.call('DEL', KEYS[2])
  ids = ids or {id}
  for i = math.max(1, #ids - max + 1), #ids do
    redis.call('RPUSH', KEYS[2], ids[i])
  end
  redis.call('HSET', KEYS[1], 'starts_at', starts, 'event_count', #ids, 'ends_at', 0)
else
  redis.call('RPUSH', KEYS[2], id)
  redis.call('LTRIM', KEYS[2], -max, -1)
  redis.call('HINCRBY', KEYS[1], 'event_count', 1)
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'state', 'firing', 'updated_at', now, 'body', ARGV[4], 'resolve_at', ARGV[8])
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
return reply('changed')
