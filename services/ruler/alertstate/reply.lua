-- reply is the answer of the scripts that change an alert, which run with
-- this file in front of them: the status, then the alert's fields as the Go
-- side decodes them (state, version, event_count, starts_at, updated_at,
-- ends_at, body, resolve_at, prev_severity, severity_at, fire_at, silenced,
-- inhibited), then its event ids.
local fields = {'state', 'version', 'event_count', 'starts_at', 'updated_at', 'ends_at', 'body', 'resolve_at',
  'prev_severity', 'severity_at', 'fire_at', 'silenced', 'inhibited'}
local defaults = {'', '0', '0', '0', '0', '0', '', '0', '0', '0', '0', '', ''}
local function reply(status)
  local h = redis.call('HMGET', KEYS[1], unpack(fields))
  local out = {status}
  for i = 1, #fields do
    out[#out + 1] = h[i] or defaults[i]
  end
  if h[1] then
    for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
      out[#out + 1] = id
    end
  end
  return out
end
