-- Silent: what has become of one group whose wait the index says is over.
-- Memory (absence.go) is the same in Go.
-- KEYS: 1 the alert's hash, 2 its absence hash (one hash tag)
-- ARGV: now (ms)
-- Reply: {'gone'} when the group is forgotten; {'later', due} when a sign
--   of life moved the wait on; {'fired', due} when the alert fires already;
--   otherwise {'due', due, event key, body}: the silence fires the alert.
local due, event, body = unpack(redis.call('HMGET', KEYS[2], 'due', 'event', 'body'))
if not due then
  return {'gone'}
end
if tonumber(due) > tonumber(ARGV[1]) then
  return {'later', due}
end
if redis.call('HGET', KEYS[1], 'state') == 'firing' then
  return {'fired', due}
end
return {'due', due, event or '', body or ''}
