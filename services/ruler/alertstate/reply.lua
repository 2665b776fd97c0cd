-- reply is the answer of the fire and resolve scripts, which run with this
-- file in front of them: the status, then the alert's fields as the Go side
-- decodes them (state, version, event_count, starts_at, updated_at, ends_at,
-- body, resolve_at), then its event ids.
local function reply(status)
  local h = redis.call('HMGET', KEYS[1], 'state', 'version', 'event_count', 'starts_at', 'updated_at', 'ends_at', 'body', 'resolve_at')
  local out = {status, h[1] or '', h[2] or '0', h[3] or '0', h[4] or '0', h[5] or '0', h[6] or '0', h[7] or '', h[8] or '0'}
  if h[1] then
    for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
      out[#out + 1] = id
    end
  end
  return out
end
