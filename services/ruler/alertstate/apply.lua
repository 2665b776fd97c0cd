-- Apply: every update of one alert in a batch, in order, as one script.
-- Each update does exactly what it would do alone; running them together
-- only saves the round trips and the replies in between. Idempotent: an
-- event the alert or its count window already holds, a second resolution,
-- or the same marks again change nothing. Memory (memory.go) is the same
-- machine in Go, and a differential test holds the two together.
-- KEYS: 1 alert hash, 2 event id list, 3 count window (all one hash tag)
-- ARGV, read into call and updates by the Lua protocol.go puts before
--   this: the call's now (ms), max_ids and ttl (ms to keep a resolved
--   alert), then the updates, each an op ('f' fire, 'c' clear, 'x' expire,
--   'p' promote, 'm' mute) with the arguments protocol.go gives it.
-- Reply, each field in the place protocol.go names: was and was_severity
--   (before the first update), changed ('1': an update changed the alert),
--   redelivered ('1': an update found its work done already: an event
--   held, or a clear, sweep or mark that changed nothing of an alert that
--   exists, which may be redelivered too), then the snapshots, each the
--   alert's hash fields as read_hash places them, then body_from and
--   event_ids (joined by spaces). A snapshot is taken just before an update
--   changes the state of an alert that an earlier update of this call
--   changed (so that every state an alert passes through is published),
--   and one at the end when the alert exists and an update changed it or
--   found its work done: an event that only adds to a window that does not
--   fill leaves nothing to publish. The last snapshot's body is empty when
--   its body_from (1-based) names the fire update whose body is stored.
local now, max, ttl = tonumber(call.now), tonumber(call.max_ids), call.ttl
local H, E, W = KEYS[1], KEYS[2], KEYS[3]

-- Each hash read names its fields and takes them into locals of the
-- same names (a table per read would cost more than the read).
local was_state, was_severity = unpack(redis.call('HMGET', H, 'state', 'severity'))
local any_changed, any_held = false, false
local snapshots = {}
local dirty = false -- an update of this call changed the alert since the last snapshot
local body_from = 0

local function snapshot(op)
  local h = read_hash(H)
  if not h[STATE] then
    return
  end
  if op > 0 then
    h[BODY] = ''
  end
  h[BODY_FROM] = op
  h[EVENT_IDS] = table.concat(redis.call('LRANGE', E, 0, -1), ' ')
  snapshots[#snapshots + 1] = h
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
  any_changed = true
end

-- held notes an update that found its work done on an alert that exists.
local function held(state)
  if state then
    any_held = true
  end
end

local function fire(n, u)
  local id, t, at_least, within = u.event, tonumber(u.time), tonumber(u.at_least), tonumber(u.within)
  local severity = u.severity
  local state, fire_at, old_severity, event_count, version =
    unpack(redis.call('HMGET', H, 'state', 'fire_at', 'severity', 'event_count', 'version'))
  if state and redis.call('LPOS', E, id) then
    any_held = true
    return
  end
  local open = state == 'firing' or state == 'pending'

  local ids = nil
  local starts = t
  if not open and at_least > 0 then
    -- A window member is the event id, then a space and the counted value
    -- when the window counts distinct values: event ids never hold spaces.
    local distinct = u.distinct == '1'
    local member = id
    if distinct then
      if u.value == '' then
        return -- nothing to tell it apart by: it does not count
      end
      member = id .. ' ' .. u.value
    end
    if redis.call('ZADD', W, 'NX', t, member) == 0 then
      any_held = true
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
  fire_at = tonumber(fire_at or '0')
  version = tonumber(version or '0') + 1
  if not open then
    -- A new episode: the alert starts again, pending when the rule has a
    -- `for`.
    transition()
    local new_state = 'firing'
    local pending_for = tonumber(u.pending_for)
    if pending_for > 0 then
      new_state, fire_at = 'pending', now + pending_for
    else
      fire_at = now
    end
    redis.call('DEL', E)
    ids = ids or {id}
    redis.call('RPUSH', E, unpack(ids, math.max(1, #ids - max + 1), #ids))
    redis.call('HSET', H, 'starts_at', starts, 'event_count', #ids, 'ends_at', 0,
      'severity', severity, 'prev_severity', 0, 'severity_at', 0,
      'version', version, 'state', new_state, 'updated_at', now, 'body', u.body, 'resolve_at', u.resolve_at,
      'fire_at', fire_at, 'silenced', u.silenced, 'inhibited', u.inhibited)
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
    local count = tonumber(event_count or '0') + 1
    local old = old_severity or '0'
    if old ~= severity then
      redis.call('HSET', H, 'event_count', count, 'severity', severity, 'prev_severity', old, 'severity_at', now,
        'version', version, 'state', new_state, 'updated_at', now, 'body', u.body, 'resolve_at', u.resolve_at,
        'fire_at', fire_at, 'silenced', u.silenced, 'inhibited', u.inhibited)
    else
      redis.call('HSET', H, 'event_count', count,
        'version', version, 'state', new_state, 'updated_at', now, 'body', u.body, 'resolve_at', u.resolve_at,
        'fire_at', fire_at, 'silenced', u.silenced, 'inhibited', u.inhibited)
    end
  end
  body_from = n
  changed()
end

-- resolve: a clear condition held, or no matching event came for the
-- rule's resolve_after. A pending alert resolves too, without having fired.
local function resolve(kind)
  if kind == 'clear' then
    -- A clear also restarts a window that has not fired yet.
    redis.call('DEL', W)
  end
  local state, resolve_at, version = unpack(redis.call('HMGET', H, 'state', 'resolve_at', 'version'))
  if state ~= 'firing' and state ~= 'pending' then
    held(state)
    return
  end
  local ends = now
  if kind == 'expire' then
    local at = tonumber(resolve_at or '0')
    if at == 0 or at > now then
      held(state)
      return
    end
    -- It resolved when its time ran out, however late the sweep came.
    ends = at
  end
  transition()
  redis.call('HSET', H, 'state', 'resolved', 'updated_at', now, 'ends_at', ends, 'resolve_at', 0,
    'version', tonumber(version or '0') + 1)
  redis.call('DEL', W)
  redis.call('PEXPIRE', H, ttl)
  redis.call('PEXPIRE', E, ttl)
  changed()
end

-- promote: a pending alert whose `for` has run out fires.
local function promote()
  local state, fire_at, resolve_at, version = unpack(redis.call('HMGET', H, 'state', 'fire_at', 'resolve_at', 'version'))
  if state ~= 'pending' then
    held(state)
    return
  end
  fire_at, resolve_at = tonumber(fire_at or '0'), tonumber(resolve_at or '0')
  if fire_at > now then
    held(state)
    return
  end
  if resolve_at > 0 and resolve_at <= fire_at then
    -- The condition stopped holding before it had held long enough: the
    -- resolution sweep ends it without its ever firing.
    held(state)
    return
  end
  transition()
  redis.call('HSET', H, 'state', 'firing', 'updated_at', now, 'version', tonumber(version or '0') + 1)
  changed()
end

-- mute: set which silences and which alerts mute an open alert.
local function mute(u)
  local state, silenced, inhibited, version = unpack(redis.call('HMGET', H, 'state', 'silenced', 'inhibited', 'version'))
  if state ~= 'firing' and state ~= 'pending' then
    held(state)
    return
  end
  if (silenced or '') == u.silenced and (inhibited or '') == u.inhibited then
    held(state)
    return
  end
  redis.call('HSET', H, 'silenced', u.silenced, 'inhibited', u.inhibited, 'updated_at', now,
    'version', tonumber(version or '0') + 1)
  changed()
end

for n, u in ipairs(updates) do
  local op = u.op
  if op == 'f' then
    fire(n, u)
  elseif op == 'c' then
    resolve('clear')
  elseif op == 'x' then
    resolve('expire')
  elseif op == 'p' then
    promote()
  elseif op == 'm' then
    mute(u)
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
end
if any_changed or any_held then
  snapshot(body_from)
end
local reply = {}
reply[WAS], reply[WAS_SEVERITY] = was_state or '', was_severity or ''
reply[CHANGED], reply[REDELIVERED] = any_changed and '1' or '0', any_held and '1' or '0'
for _, s in ipairs(snapshots) do
  reply[#reply + 1] = s
end
return reply
