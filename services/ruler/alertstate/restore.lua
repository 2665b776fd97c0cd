-- Restore: write an alert read back from city.alerts.v1 into an empty or
-- older state. Idempotent: an alert already at this version or later is
-- left as it is.
-- KEYS: 1 alert hash, 2 event id list (one hash tag)
-- ARGV: name/value pairs: ttl (ms to keep a resolved alert), every field
--   of the alert's hash under its own name (record.go's columns), and
--   event_id once per event id, oldest first.
local ttl, hash, fields, ids = nil, {}, {}, {}
for i = 1, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  if name == 'ttl' then
    ttl = value
  elseif name == 'event_id' then
    ids[#ids + 1] = value
  else
    hash[#hash + 1] = name
    hash[#hash + 1] = value
    fields[name] = value
  end
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur >= tonumber(fields.version) then
  return 0
end
redis.call('HSET', KEYS[1], unpack(hash))
redis.call('DEL', KEYS[2])
for _, id in ipairs(ids) do
  redis.call('RPUSH', KEYS[2], id)
end
if fields.state == 'resolved' then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return 1
