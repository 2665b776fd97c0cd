-- Apply: every update of one alert in a batch, in order, as one script.
-- Each update does exactly what it would do alone; running them together
-- only saves the round trips and the replies in between. Idempotent: an
-- event the alert or its count window already holds, a second resolution,
-- or the same marks again change nothing.
-- KEYS: 1 alert hash, 2 event id list, 3 count window (all one hash tag)
-- ARGV: 1 now ms, 2 max event ids, 3 ms to keep a resolved alert, then the
--   updates, each an op code followed by its arguments:
--   'f' fire (12): event id, event time ms, alert body, at_least (0: no
--       window), window ms, resolve_at ms (0: never), for ms (0: fire at
--       once), '1' when the window counts distinct values, the event's
--       value, severity, silenced by, inhibited by
--   'c' clear (0), 'x' expire (0), 'p' promote (0)
--   'm' mute (2): silenced by, inhibited by
-- Reply: the state and severity before the first update, '1' when an
--   update changed the alert, '1' when an update found its work done
--   already (an event held: redelivered; or a clear, sweep or mark that
--   changed nothing of an alert that exists, which may be redelivered
--   too), then snapshots of 15 items each: state, version,
--   event_count, starts_at, updated_at, ends_at, resolve_at, prev_severity,
--   severity_at, fire_at, silenced, inhibited, body, body op, event ids
--   (joined by spaces). A snapshot is taken just before an update changes
--   the state of an alert that an earlier update of this call changed (so
--   that every state an alert passes through is published), and one at the
--   end when the alert exists and an update changed it or found its work
--   done: an event that only adds to a window that does not fill leaves
--   nothing to publish. The last snapshot's body is empty when
--   the body op (1-based) names the fire update whose body is stored.
local now, max, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local H, E, W = KEYS[1], KEYS[2], KEYS[3]

local fields = {'state', 'version', 'event_count', 'starts_at', 'updated_at', 'ends_at', 'resolve_at',
  'prev_severity', 'severity_at', 'fire_at', 'silenced', 'inhibited', 'body'}
local defaults = {'', '0', '0', '0', '0', '0', '0', '0', '0', '0', '', '', ''}

local was = redis.call('HMGET', H, 'state', 'severity')
local out = {was[1] or '', was[2] or '', '0', '0'}
local dirty = false -- an update of this call changed the alert since the last snapshot
local bodyop = 0

local function snapshot(op)
  local h = redis.call('HMGET', H, unpack(fields))
  if not h[1] then
    return
  end
  for i = 1, #fields do
    out[#out + 1] = h[i] or defaults[i]
  end
  if op > 0 then
    out[#out] = ''
  end
  out[#out + 1] = tostring(op)
  out[#out + 1] = table.concat(redis.call('LRANGE', E, 0, -1), ' ')
end

-- transition is called before an update changes the alert's state.
local function transition()
  if dirty then
    snapshot(0)
    dirty = false
  end
end

local function changed()
  dirty = true
  out[3] = '1'
end

-- held notes an update that found its work done on an alert that exists.
local function held(state)
  if state then
    out[4] = '1'
  end
end

local function fire(n, id, t, body, at_least, within, resolve_at, for_ms, distinct, value, severity, silenced, inhibited)
  local h = redis.call('HMGET', H, 'state', 'fire_at', 'severity', 'event_count', 'version')
  local state = h[1]
  if state and redis.call('LPOS', E, id) then
    out[4] = '1'
    return
  end
  local open = state == 'firing' or state == 'pending'

  local ids = nil
  local starts = t
  if not open and at_least > 0 then
    -- A window member is the event id, then a space and the counted value
    -- when the window counts distinct values: event ids never hold spaces.
    local member = id
    if distinct then
      if value == '' then
        return -- nothing to tell it apart by: it does not count
      end
      member = id .. ' ' .. value
    end
    if redis.call('ZADD', W, 'NX', t, member) == 0 then
      out[4] = '1'
      return
    end
    redis.call('ZREMRANGEBYSCORE', W, '-inf', '(' .. (t - within))
    redis.call('PEXPIRE', W, within * 2)
    -- Members outnumber what they count (distinct values, event ids):
    -- fewer members than at_least cannot fill the window.
    if redis.call('ZCOUNT', W, t - within, t) < at_least then
      return
    end
    local members = redis.call('ZRANGEBYSCORE', W, t - within, t)
    -- A member without a value (written before the rule counted distinct
    -- values, or after it stopped) counts as a value of its own.
    ids = {}
    local seen, count = {}, 0
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
        count = count + 1
      end
    end
    if count < at_least then
      return
    end
    starts = tonumber(redis.call('ZRANGEBYSCORE', W, t - within, t, 'WITHSCORES', 'LIMIT', 0, 1)[2])
    redis.call('DEL', W)
  end

  -- Each redis.call costs more than the command it runs: the alert is
  -- read with one and written with one.
  local fire_at = tonumber(h[2] or '0')
  local version = tonumber(h[5] or '0') + 1
  if not open then
    -- A new episode: the alert starts again, pending when the rule has a
    -- `for`.
    transition()
    local new_state = 'firing'
    if for_ms > 0 then
      new_state, fire_at = 'pending', now + for_ms
    else
      fire_at = now
    end
    redis.call('DEL', E)
    ids = ids or {id}
    redis.call('RPUSH', E, unpack(ids, math.max(1, #ids - max + 1), #ids))
    redis.call('HSET', H, 'starts_at', starts, 'event_count', #ids, 'ends_at', 0,
      'severity', severity, 'prev_severity', 0, 'severity_at', 0,
      'version', version, 'state', new_state, 'updated_at', now, 'body', body, 'resolve_at', resolve_at,
      'fire_at', fire_at, 'silenced', silenced, 'inhibited', inhibited)
    -- A resolved alert was kept for a while only; the event id list
    -- was made anew above.
    redis.call('PERSIST', H)
  else
    -- A pending alert whose condition has now held long enough fires.
    local new_state = state
    if state == 'pending' and now >= fire_at then
      transition()
      new_state = 'firing'
    end
    redis.call('RPUSH', E, id)
    redis.call('LTRIM', E, -max, -1)
    local count = tonumber(h[4] or '0') + 1
    local old = h[3] or '0'
    if old ~= severity then
      redis.call('HSET', H, 'event_count', count, 'severity', severity, 'prev_severity', old, 'severity_at', now,
        'version', version, 'state', new_state, 'updated_at', now, 'body', body, 'resolve_at', resolve_at,
        'fire_at', fire_at, 'silenced', silenced, 'inhibited', inhibited)
    else
      redis.call('HSET', H, 'event_count', count,
        'version', version, 'state', new_state, 'updated_at', now, 'body', body, 'resolve_at', resolve_at,
        'fire_at', fire_at, 'silenced', silenced, 'inhibited', inhibited)
    end
  end
  bodyop = n
  changed()
end

-- resolve: a clear condition held, or no matching event came for the
-- rule's resolve_after. A pending alert resolves too, without having fired.
local function resolve(kind)
  if kind == 'clear' then
    -- A clear also restarts a window that has not fired yet.
    redis.call('DEL', W)
  end
  local h = redis.call('HMGET', H, 'state', 'resolve_at', 'version')
  if h[1] ~= 'firing' and h[1] ~= 'pending' then
    held(h[1])
    return
  end
  local ends = now
  if kind == 'expire' then
    local at = tonumber(h[2] or '0')
    if at == 0 or at > now then
      held(h[1])
      return
    end
    -- It resolved when its time ran out, however late the sweep came.
    ends = at
  end
  transition()
  redis.call('HSET', H, 'state', 'resolved', 'updated_at', now, 'ends_at', ends, 'resolve_at', 0,
    'version', tonumber(h[3] or '0') + 1)
  redis.call('DEL', W)
  redis.call('PEXPIRE', H, ttl)
  redis.call('PEXPIRE', E, ttl)
  changed()
end

-- promote: a pending alert whose `for` has run out fires.
local function promote()
  local h = redis.call('HMGET', H, 'state', 'fire_at', 'resolve_at', 'version')
  if h[1] ~= 'pending' then
    held(h[1])
    return
  end
  local fire_at, resolve_at = tonumber(h[2] or '0'), tonumber(h[3] or '0')
  if fire_at > now then
    held(h[1])
    return
  end
  if resolve_at > 0 and resolve_at <= fire_at then
    -- The condition stopped holding before it had held long enough: the
    -- resolution sweep ends it without its ever firing.
    held(h[1])
    return
  end
  transition()
  redis.call('HSET', H, 'state', 'firing', 'updated_at', now, 'version', tonumber(h[4] or '0') + 1)
  changed()
end

-- mute: set which silences and which alerts mute an open alert.
local function mute(silenced, inhibited)
  local h = redis.call('HMGET', H, 'state', 'silenced', 'inhibited', 'version')
  if h[1] ~= 'firing' and h[1] ~= 'pending' then
    held(h[1])
    return
  end
  if (h[2] or '') == silenced and (h[3] or '') == inhibited then
    held(h[1])
    return
  end
  redis.call('HSET', H, 'silenced', silenced, 'inhibited', inhibited, 'updated_at', now,
    'version', tonumber(h[4] or '0') + 1)
  changed()
end

local i, n = 4, 0
while i <= #ARGV do
  local op = ARGV[i]
  n = n + 1
  if op == 'f' then
    fire(n, ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]),
      ARGV[i + 6], tonumber(ARGV[i + 7]), ARGV[i + 8] == '1', ARGV[i + 9], ARGV[i + 10], ARGV[i + 11], ARGV[i + 12])
    i = i + 13
  elseif op == 'c' then
    resolve('clear')
    i = i + 1
  elseif op == 'x' then
    resolve('expire')
    i = i + 1
  elseif op == 'p' then
    promote()
    i = i + 1
  elseif op == 'm' then
    mute(ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
end
if out[3] == '1' or out[4] == '1' then
  snapshot(bodyop)
end
return out
