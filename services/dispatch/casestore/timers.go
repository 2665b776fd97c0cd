package casestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Timers. Every write of a case puts its id in the district's timer set,
// scored by Case.timer_at (or takes it out), in the same script. A sweeper
// claims what is due with Claim, which moves each id from the timer set to a
// lease set scored by when the lease runs out; it applies the case's due
// moments through Update, whose version check and request id make a moment
// fire once however many sweepers race; then it hands the id back with
// Release, which re-arms the timer from the case as it is now. A sweeper
// that dies leaves its lease behind; the next Claim after the lease runs out
// takes the id again and says so (Claimed.Reclaimed), so that the new owner
// can publish the case's latest change in case the dead one never did.
// A merged duplicate is the one closed case with a timer: MergeFollowUp
// after its merge, so that a sweeper checks that the target recorded it
// (see timerScore), and then Disarm takes it away.

// Claimed is one case a sweeper claimed.
type Claimed struct {
	ID string
	// Reclaimed says the id came from a lease that ran out: its last owner
	// may have died between changing the case and publishing the change.
	Reclaimed bool
}

// claimScript leases up to ARGV[3] ids: expired leases first, then due
// timers. KEYS[1] the timer set, KEYS[2] the lease set; ARGV[1] now (Unix
// ms), ARGV[2] the lease's end. It answers id, "1"|"0" pairs.
var claimScript = redis.NewScript(`
local out = {}
local limit = tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  redis.call('ZREM', KEYS[1], id)
  table.insert(out, id); table.insert(out, '1')
end
local left = limit - #expired
if left > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, left)
  for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(out, id); table.insert(out, '0')
  end
end
return out
`)

// releaseScript re-arms the timer of case ARGV[1] from the case hash
// KEYS[1] (field t), no earlier than ARGV[2], and drops its lease.
// KEYS[2] the timer set, KEYS[3] the lease set.
var releaseScript = redis.NewScript(`
local t = redis.call('HGET', KEYS[1], 't')
if t and t ~= '' then
  local at = math.max(tonumber(t), tonumber(ARGV[2]))
  redis.call('ZADD', KEYS[2], at, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

// Claim leases up to n cases of district whose timers are due at now, or
// whose lease ran out, until now+lease.
func (s *Store) Claim(ctx context.Context, district string, now time.Time, lease time.Duration, n int) ([]Claimed, error) {
	if !ValidDistrict(district) || n <= 0 {
		return nil, nil
	}
	res, err := claimScript.Run(ctx, s.rdb, []string{timersKey(district), leasesKey(district)},
		now.UnixMilli(), now.Add(lease).UnixMilli(), n).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim timers of %s: %w", district, err)
	}
	out := make([]Claimed, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		out = append(out, Claimed{ID: res[i], Reclaimed: res[i+1] == "1"})
	}
	return out, nil
}

// Release hands claimed case id back: its timer is armed again from the case
// as stored now, at notBefore at the earliest (a sweeper that could not
// apply a moment backs off with it), and its lease is dropped.
func (s *Store) Release(ctx context.Context, id string, notBefore time.Time) error {
	district, ok := DistrictOf(id)
	if !ok {
		return ErrNotFound
	}
	var nb int64
	if !notBefore.IsZero() {
		nb = notBefore.UnixMilli()
	}
	err := releaseScript.Run(ctx, s.rdb, []string{caseKey(district, id), timersKey(district), leasesKey(district)}, id, nb).Err()
	if err != nil {
		return fmt.Errorf("release timer of %s: %w", id, err)
	}
	return nil
}

// disarmScript takes case ARGV[1] out of the timer set KEYS[2] and the
// lease set KEYS[3] and clears field t of its hash KEYS[1], while the case
// is at version ARGV[2]; a case that moved on since is re-armed from its
// field t, as by releaseScript, so that its next sweep decides on what it
// is now.
var disarmScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 't')
if cur[1] == ARGV[2] then
  redis.call('HSET', KEYS[1], 't', '')
  redis.call('ZREM', KEYS[2], ARGV[1])
elseif cur[2] and cur[2] ~= '' then
  redis.call('ZADD', KEYS[2], cur[2], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

// Disarm hands claimed case id back with no timer, when the sweeper found
// nothing left to do at version: a merged duplicate whose merge is whole.
// The next write of the case arms its timer again, as the case asks. A case
// no longer at version is released as by Release.
func (s *Store) Disarm(ctx context.Context, id string, version int64) error {
	district, ok := DistrictOf(id)
	if !ok {
		return ErrNotFound
	}
	err := disarmScript.Run(ctx, s.rdb, []string{caseKey(district, id), timersKey(district), leasesKey(district)}, id, version).Err()
	if err != nil {
		return fmt.Errorf("disarm timer of %s: %w", id, err)
	}
	return nil
}

// Timer returns when case id's timer is armed, and whether it is.
func (s *Store) Timer(ctx context.Context, id string) (time.Time, bool, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return time.Time{}, false, ErrNotFound
	}
	ms, err := s.rdb.ZScore(ctx, timersKey(district), id).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read timer of %s: %w", id, err)
	}
	return time.UnixMilli(int64(ms)), true, nil
}

// Leased returns the ids of district under a lease, with when it runs out.
func (s *Store) Leased(ctx context.Context, district string) (map[string]time.Time, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, leasesKey(district), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read leases of %s: %w", district, err)
	}
	out := make(map[string]time.Time, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		out[id] = time.UnixMilli(int64(z.Score))
	}
	return out, nil
}

// Latest returns case id as it is now with the audit entry of its latest
// change: what to publish again when it is unsure whether the latest
// change reached the cases topic.
func (s *Store) Latest(ctx context.Context, id string) (*cityhubv1.CaseChange, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, ErrNotFound
	}
	c, err := s.current(ctx, district, id)
	if err != nil {
		return nil, err
	}
	if c.GetVersion() == 0 {
		return nil, ErrNotFound
	}
	v := strconv.FormatInt(c.GetVersion(), 10)
	raw, err := s.rdb.ZRangeByScore(ctx, historyKey(district, id), &redis.ZRangeBy{Min: v, Max: v}).Result()
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", id, err)
	}
	change := &cityhubv1.CaseChange{Case: c}
	if len(raw) > 0 {
		e := new(cityhubv1.AuditEntry)
		if err := proto.Unmarshal([]byte(raw[0]), e); err != nil {
			return nil, fmt.Errorf("decode history of %s: %w", id, err)
		}
		change.Change = e
	}
	return change, nil
}
