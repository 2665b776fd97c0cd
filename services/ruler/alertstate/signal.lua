-- Signal: a sign of life of one group of an absent rule. It moves the
-- group's wait on to due, unless an event already moved it further (an
-- older event, redelivered, never moves it back), and says whether the
-- group's alert is firing, so that the caller resolves it, and whether the
-- wait holds the alert as its silence would fire it, so that the caller
-- describes it only when it does not. Memory (absence.go) is the same in
-- Go.
-- KEYS: 1 the alert's hash, 2 its absence hash (one hash tag)
-- ARGV: due (ms), the event's key, its time (ms), how long to keep the
--   absence hash (ms)
-- Reply: {state of the alert or '', 1 when the wait moved, 1 when the
--   wait holds the alert's body}
local due = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[2], 'due') or '0')
local moved = 0
if due > cur then
  redis.call('HSET', KEYS[2], 'due', due, 'event', ARGV[2], 'time', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  moved = 1
end
return {redis.call('HGET', KEYS[1], 'state') or '', moved, redis.call('HEXISTS', KEYS[2], 'body')}
