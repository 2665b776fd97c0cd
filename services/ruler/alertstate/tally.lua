-- Tally: the cheap first pass over the updates of one alert in a batch,
-- when every update is an event for a count window ('w') or a clear ('c').
-- Most such events only add to a window that does not fill, and most
-- clears meet no alert; for those the pass is all there is to do, with no
-- alert body to send. Whenever an update would do more — the alert is
-- open, exists and must be published again, or a window fills — the pass
-- stops before that update, having done exactly what apply.lua would have
-- done up to it, and answers 'apply': the caller then runs every update of
-- the alert through apply.lua, which finds the events already counted here
-- held in the window and goes on from where this pass stopped.
-- KEYS: 1 alert hash, 2 event id list, 3 count window (all one hash tag)
-- ARGV, read into updates by the Lua protocol.go puts before this: the
--   updates, each an op ('w' window event, 'c' clear) with the arguments
--   protocol.go gives it.
-- Reply: 'done' or 'apply'.
local H, E, W = KEYS[1], KEYS[2], KEYS[3]

local state = redis.call('HGET', H, 'state')
if state == 'firing' or state == 'pending' then
  return 'apply'
end

for _, u in ipairs(updates) do
  if u.op == 'c' then
    -- A clear restarts the window; an alert that exists is published
    -- again (the clear may be redelivered, its publication lost).
    if state then
      return 'apply'
    end
    redis.call('DEL', W)
  elseif u.op == 'w' then
    local id, t, at_least, within = u.event, tonumber(u.time), tonumber(u.at_least), tonumber(u.within)
    local distinct = u.distinct == '1'
    if state and redis.call('LPOS', E, id) then
      return 'apply' -- redelivered: the alert is published again
    end
    local member = id
    if distinct then
      member = id .. ' ' .. u.value
    end
    if not distinct or u.value ~= '' then
      if redis.call('ZADD', W, 'NX', t, member) == 0 then
        if state then
          return 'apply' -- redelivered: the alert is published again
        end
      else
        redis.call('ZREMRANGEBYSCORE', W, '-inf', '(' .. (t - within))
        redis.call('PEXPIRE', W, within * 2)
        -- Members outnumber what they count (distinct values, event ids):
        -- fewer members than at_least cannot fill the window.
        if redis.call('ZCOUNT', W, t - within, t) >= at_least then
          -- It may fill: apply.lua decides, counting this event anew.
          redis.call('ZREM', W, member)
          return 'apply'
        end
      end
    end
  else
    return redis.error_reply('unknown op ' .. tostring(u.op))
  end
end
return 'done'
