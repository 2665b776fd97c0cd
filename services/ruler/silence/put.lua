-- Put: keep a silence if it is newer than the one held under its id, so
-- that a version written late (a rebuild replaying the record) never
-- replaces a later one.
-- KEYS: 1 the silences (id → encoded), 2 their versions (id → version),
--   3 the change counter (one hash tag)
-- ARGV: id, version, the encoded silence
-- Reply: 1 when kept, 0 when the held one is as new or newer
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= held then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[3])
return 1
