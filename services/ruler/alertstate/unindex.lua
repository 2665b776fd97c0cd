-- Unindex: take groups off the index of waits, each only while it is
-- still indexed at the wait the caller settled (a sign of life since then
-- indexed a new one, which stays).
-- KEYS: 1 the index
-- ARGV: member, score, member, score, ...
local n = 0
for i = 1, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '-1') == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
