-- Signal: a sign of life of one group of an absent rule. It moves the
-- group's wait on to due, unless an event already moved it further (an
-- older event, redelivered, never moves it back), and says whether the
-- group's alert is firing, so that the caller resolves it. Memory
-- (absence.go) is the same in Go.
-- KEYS: 1 the alert's hash, 2 its absence hash (one hash tag)
-- ARGV: due (ms), the event's key, its time (ms), the alert's body as it
--   fires, how long to keep the absence hash (ms)
-- Reply: {state of the alert or '', 1 when the wait moved}
local due = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[2], 'due') or '0')
local moved = 0
if due > cur then
  redis.call('HSET', KEYS[2], 'due', due, 'event', ARGV[2], 'time', ARGV[3], 'body', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  moved = 1
end
return {redis.call('HGET', KEYS[1], 'state') or '', moved}
