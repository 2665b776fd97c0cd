-- Restore: write an alert read back from city.alerts.v1 into an empty or
-- older state. Idempotent: an alert already at this version or later is
-- left as it is.
-- KEYS: 1 alert hash, 2 event id list (one hash tag)
-- ARGV: 1 state, 2 version, 3 event_count, 4 starts_at ms, 5 updated_at ms,
--       6 ends_at ms, 7 body, 8 resolve_at ms (0: never), 9 ms to keep a
--       resolved alert, 10 severity, 11 previous severity, 12 severity
--       changed at ms, 13 fire_at ms, 14 silenced by, 15 inhibited by,
--       16.. event ids
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'version', ARGV[2], 'event_count', ARGV[3],
  'starts_at', ARGV[4], 'updated_at', ARGV[5], 'ends_at', ARGV[6], 'body', ARGV[7], 'resolve_at', ARGV[8],
  'severity', ARGV[10], 'prev_severity', ARGV[11], 'severity_at', ARGV[12], 'fire_at', ARGV[13],
  'silenced', ARGV[14], 'inhibited', ARGV[15])
redis.call('DEL', KEYS[2])
for i = 16, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
if ARGV[1] == 'resolved' then
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
  redis.call('PEXPIRE', KEYS[2], ARGV[9])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
