package casestore

import "github.com/redis/go-redis/v9"

// The scripts share one calling convention so that Go builds their keys and
// arguments in one place (see call):
//
//	KEYS[1] the case hash (pb, v, s, t)       KEYS[2] its history (zset by version)
//	KEYS[3] its request log (hash)            KEYS[4] its origin key
//	KEYS[5] the district's timers (zset)
//	KEYS[6 .. 5+nrem] indexes to leave        KEYS[6+nrem ..] indexes to join
//
//	ARGV[1] request id or ""   ARGV[2] expected (base) version   ARGV[3] new version
//	ARGV[4] case bytes         ARGV[5] CaseChange bytes (the reply kept per request)
//	ARGV[6] audit entry bytes  ARGV[7] status name               ARGV[8] index score
//	ARGV[9] case id            ARGV[10] nrem                     ARGV[11] nadd
//	ARGV[12] "1" when KEYS[4] is to be set
//	ARGV[13] when the case's timer is due (Unix ms), or "" for no timer
//	ARGV[14] digest of the case the change was computed from (update only)
//	ARGV[15] digest of the case bytes ARGV[4] (see digestOf)
//
// Every key shares the district's hash tag. A script may run twice when a
// reply is lost, so each decides from what Redis holds whether it already
// ran: the request log, the origin key and the version say so. The timer is
// written with the case, in the same script, so a change can never leave a
// case without the timer its clocks need (the hash keeps it as field t for
// Release). The hash keeps the digest of its case as field h; a case
// written before digests were kept has none, and is checked by version
// alone until its next write.
const writeCaseLua = `
local function writeCase()
  redis.call('HSET', KEYS[1], 'pb', ARGV[4], 'v', ARGV[3], 's', ARGV[7], 't', ARGV[13], 'h', ARGV[15])
  if ARGV[13] ~= '' then redis.call('ZADD', KEYS[5], ARGV[13], ARGV[9])
  else redis.call('ZREM', KEYS[5], ARGV[9]) end
  local nrem, nadd = tonumber(ARGV[10]), tonumber(ARGV[11])
  for i = 6, 5 + nrem do redis.call('ZREM', KEYS[i], ARGV[9]) end
  for i = 6 + nrem, 5 + nrem + nadd do redis.call('ZADD', KEYS[i], ARGV[8], ARGV[9]) end
end
local function version()
  return tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
end
`

// createScript opens a case once per origin: a second run with the same
// origin answers {"exists", id-of-the-first-case}.
var createScript = redis.NewScript(writeCaseLua + `
local existing = redis.call('GET', KEYS[4])
if existing then return {'exists', existing} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'conflict', tostring(version())} end
writeCase()
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
if ARGV[1] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[5]) end
redis.call('SET', KEYS[4], ARGV[9])
return {'ok', ARGV[5]}
`)

// updateScript applies one change when the case is still exactly the one
// the change was computed from: at the expected version and with the
// expected digest. It is the whole of a transition, so the caller need not
// read the case first when it holds a copy. The request id is checked
// before the version: a request whose first run succeeded (and moved the
// version on) answers with its first reply, never a conflict. A conflict
// answers {"conflict", version, case bytes}, so the caller can decide again
// without reading.
var updateScript = redis.NewScript(writeCaseLua + `
if ARGV[1] ~= '' then
  local prev = redis.call('HGET', KEYS[3], ARGV[1])
  if prev then return {'dup', prev} end
end
local cur = redis.call('HMGET', KEYS[1], 'v', 'h')
local v = tonumber(cur[1] or '0')
if v == 0 then return {'missing', '0'} end
if v ~= tonumber(ARGV[2]) or (cur[2] and cur[2] ~= '' and cur[2] ~= ARGV[14]) then
  return {'conflict', tostring(v), redis.call('HGET', KEYS[1], 'pb')}
end
writeCase()
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
if ARGV[1] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[5]) end
return {'ok', ARGV[5]}
`)

// restoreScript writes a change read back from Kafka. History, request log
// and origin are filled whatever the order records arrive in; the case itself
// only moves forward. {"stale", v} asks the caller to recompute the indexes
// to leave against version v and try again.
var restoreScript = redis.NewScript(writeCaseLua + `
local ver = tonumber(ARGV[3])
if redis.call('ZCOUNT', KEYS[2], ver, ver) == 0 then redis.call('ZADD', KEYS[2], ver, ARGV[6]) end
if ARGV[1] ~= '' then redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[5]) end
if ARGV[12] == '1' then redis.call('SETNX', KEYS[4], ARGV[9]) end
local cur = version()
if cur >= ver then return {'old', tostring(cur)} end
if cur ~= tonumber(ARGV[2]) then return {'stale', tostring(cur)} end
writeCase()
return {'ok', ''}
`)
