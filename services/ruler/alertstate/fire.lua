-- Fire: an event matched a rule. Idempotent: an event id the alert already
-- holds, or one its count window already holds, changes nothing.
-- KEYS: 1 alert hash, 2 event id list, 3 count window (all one hash tag)
-- ARGV: 1 event id, 2 event time ms, 3 now ms, 4 alert body,
--       5 max event ids, 6 at_least (0: no window), 7 window ms,
--       8 resolve_at ms (0: never), 9 for ms (0: fire at once),
--       10 "1" when the window counts distinct values, 11 the event's value,
--       12 severity, 13 silenced by, 14 inhibited by
local id, t, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HGET', KEYS[1], 'state')
if state and redis.call('LPOS', KEYS[2], id) then
  return reply('unchanged')
end
local open = state == 'firing' or state == 'pending'

local ids = nil
local starts = t
local at_least = tonumber(ARGV[6])
if not open and at_least > 0 then
  local within = tonumber(ARGV[7])
  local distinct = ARGV[10] == '1'
  -- A window member is the event id, then a space and the counted value
  -- when the window counts distinct values: event ids never hold spaces.
  local member = id
  if distinct then
    if ARGV[11] == '' then
      return reply('counting') -- nothing to tell it apart by: it does not count
    end
    member = id .. ' ' .. ARGV[11]
  end
  if redis.call('ZADD', KEYS[3], 'NX', t, member) == 0 then
    return reply('unchanged')
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (t - within))
  redis.call('PEXPIRE', KEYS[3], within * 2)
  local members = redis.call('ZRANGEBYSCORE', KEYS[3], t - within, t)
  -- A member without a value (written before the rule counted distinct
  -- values, or after it stopped) counts as a value of its own.
  ids = {}
  local seen, n = {}, 0
  for i, m in ipairs(members) do
    local sp = string.find(m, ' ', 1, true)
    local v = m
    if sp then
      ids[i], v = string.sub(m, 1, sp - 1), string.sub(m, sp + 1)
    else
      ids[i] = m
    end
    if not distinct then
      v = ids[i]
    end
    if not seen[v] then
      seen[v] = true
      n = n + 1
    end
  end
  if n < at_least then
    return reply('counting')
  end
  starts = tonumber(redis.call('ZRANGEBYSCORE', KEYS[3], t - within, t, 'WITHSCORES', 'LIMIT', 0, 1)[2])
  redis.call('DEL', KEYS[3])
end

local max = tonumber(ARGV[5])
local severity = ARGV[12]
local new_state = state
local fire_at = tonumber(redis.call('HGET', KEYS[1], 'fire_at') or '0')
if not open then
  -- A new episode: the alert starts again, pending when the rule has a
  -- `for`.
  redis.call('DEL', KEYS[2])
  ids = ids or {id}
  for i = math.max(1, #ids - max + 1), #ids do
    redis.call('RPUSH', KEYS[2], ids[i])
  end
  redis.call('HSET', KEYS[1], 'starts_at', starts, 'event_count', #ids, 'ends_at', 0,
    'severity', severity, 'prev_severity', 0, 'severity_at', 0)
  local for_ms = tonumber(ARGV[9])
  if for_ms > 0 then
    new_state, fire_at = 'pending', now + for_ms
  else
    new_state, fire_at = 'firing', now
  end
else
  redis.call('RPUSH', KEYS[2], id)
  redis.call('LTRIM', KEYS[2], -max, -1)
  redis.call('HINCRBY', KEYS[1], 'event_count', 1)
  -- A pending alert whose condition has now held long enough fires.
  if state == 'pending' and now >= fire_at then
    new_state = 'firing'
  end
  local old = redis.call('HGET', KEYS[1], 'severity') or '0'
  if old ~= severity then
    redis.call('HSET', KEYS[1], 'severity', severity, 'prev_severity', old, 'severity_at', now)
  end
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'state', new_state, 'updated_at', now, 'body', ARGV[4], 'resolve_at', ARGV[8],
  'fire_at', fire_at, 'silenced', ARGV[13], 'inhibited', ARGV[14])
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
return reply('changed')
