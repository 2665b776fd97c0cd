package casestore

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bounds of the refusals kept per case. Each actor has a list of its own,
// so that no actor can push another's records out: a caller refused a
// thousand times fills only its own list, and the counts of every actor
// never drop. Only the number of actors is bounded: beyond MaxDenialActors
// a case counts the refusals of newcomers in an overflow counter and keeps
// nothing else of them, so the actors seen first stay recorded whoever
// comes later.
const (
	// MaxDenialsPerActor is how many refused attempts are kept per actor
	// and case, newest first.
	MaxDenialsPerActor = 20
	// MaxDenialActors is how many actors a case keeps refusals of.
	MaxDenialActors = 64
)

// Denial is an action on a case that was refused because the caller's role
// or scope does not allow it (authz_fail). Recording one never changes the
// case: its version, history and indexes stay as they are.
type Denial struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Role       string    `json:"role"`
	Department string    `json:"department,omitempty"`
	// Action is what the caller asked for, as it named it; "read" for a
	// refused read of the case or one of its sub-resources.
	Action string `json:"action"`
	// Part is the department whose part the request named, if any.
	Part string `json:"part,omitempty"`
	// Reason says why it was refused, in the words the caller was given.
	Reason string `json:"reason"`
	// Status is the HTTP status the caller got: 403, or 404 when the case
	// is outside what the caller may even see.
	Status int `json:"status"`
}

// DenialCount is how often one actor was refused one kind of action on a
// case, since the first refusal. It only grows.
type DenialCount struct {
	Actor string `json:"actor"`
	// Action is the kind the refusals are counted under (see RecordDenial).
	Action string `json:"action"`
	Count  int64  `json:"count"`
}

// DenialLog is what a case keeps of the refusals on it.
type DenialLog struct {
	// Items are the newest MaxDenialsPerActor refusals of each of the
	// first MaxDenialActors actors, newest first.
	Items []Denial `json:"items"`
	// Counts are every refusal of those actors, per actor (in the order
	// they were first refused) and kind of action.
	Counts []DenialCount `json:"counts"`
	// Overflow counts, per kind of action, the refusals of actors who came
	// after the first MaxDenialActors.
	Overflow map[string]int64 `json:"overflow"`
}

// Denial strings are bounded before they are stored: the action and part
// come from a request body the API has only partly checked.
const maxDenialField = 256

func clip(s string) string {
	if len(s) > maxDenialField {
		return s[:maxDenialField]
	}
	return s
}

// kindRE is what a kind of action may look like; a counter per kind and
// actor must not be creatable at will.
var kindRE = regexp.MustCompile(`^[a-z_]{1,32}$`)

// OtherKind is the kind a refusal is counted under when the caller gave
// none that RecordDenial accepts.
const OtherKind = "other"

// RecordDenial keeps d on case id, counted under kind: the newest
// MaxDenialsPerActor refusals of d.Actor are kept, and its count for kind
// grows by one. kind must come from a small fixed set (the workflow's
// actions, "read", OtherKind), never from the request as sent, since
// every kind is a counter that is kept for good; one that is not a short
// lower-case word is counted as OtherKind.
//
// It is one script over keys with the case's hash tag (so it runs on
// Redis Cluster too). It records nothing and returns ErrNotFound for an id
// that is not a case: a caller probing made-up ids must not be able to
// create keys. A script whose reply was lost may run twice (go-redis
// retries it), which counts that refusal twice; a count never drops.
func (s *Store) RecordDenial(ctx context.Context, id string, d Denial, kind string) error {
	district, ok := DistrictOf(id)
	if !ok {
		return ErrNotFound
	}
	if !kindRE.MatchString(kind) {
		kind = OtherKind
	}
	d.Actor, d.Role, d.Department = clip(d.Actor), clip(d.Role), clip(d.Department)
	d.Action, d.Part, d.Reason = clip(d.Action), clip(d.Part), clip(d.Reason)
	d.At = d.At.UTC()
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode denial on %s: %w", id, err)
	}
	keys := []string{
		caseKey(district, id), deniedActorsKey(district, id), deniedActorKey(district, id, d.Actor),
		deniedCountsKey(district, id), deniedOverflowKey(district, id),
	}
	res, err := recordDenialScript.Run(ctx, s.rdb, keys,
		d.Actor, b, MaxDenialsPerActor, MaxDenialActors, countField(kind, d.Actor), kind, d.At.UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("record denial on %s: %w", id, err)
	}
	if res == 0 {
		return ErrNotFound
	}
	return nil
}

// recordDenialScript records a refusal when the case KEYS[1] exists. An
// actor already in KEYS[2] (actors by when first refused), or a new one
// while there is room, gets ARGV[2] pushed on its own list KEYS[3], trimmed
// to ARGV[3], and its count ARGV[5] in KEYS[4] raised; any other actor
// only raises the overflow count of kind ARGV[6] in KEYS[5]. A script
// rather than MULTI, because the checks and the writes must be one step.
var recordDenialScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    redis.call('HINCRBY', KEYS[5], ARGV[6], 1)
    return 2
  end
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
end
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
return 1
`)

// Denials returns what case id keeps of the refusals on it. A case nobody
// was refused on has none; an id that is not a case is ErrNotFound.
func (s *Store) Denials(ctx context.Context, id string) (DenialLog, error) {
	out := DenialLog{Items: []Denial{}, Counts: []DenialCount{}, Overflow: map[string]int64{}}
	district, ok := DistrictOf(id)
	if !ok {
		return out, ErrNotFound
	}
	pipe := s.rdb.Pipeline()
	exists := pipe.Exists(ctx, caseKey(district, id))
	actors := pipe.ZRange(ctx, deniedActorsKey(district, id), 0, -1)
	counts := pipe.HGetAll(ctx, deniedCountsKey(district, id))
	overflow := pipe.HGetAll(ctx, deniedOverflowKey(district, id))
	legacy := pipe.LRange(ctx, legacyDeniedKey(district, id), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return out, fmt.Errorf("read denials of %s: %w", id, err)
	}
	if exists.Val() == 0 {
		return out, ErrNotFound
	}
	raw := legacy.Val()
	if len(actors.Val()) > 0 {
		pipe := s.rdb.Pipeline()
		lists := make([]*redis.StringSliceCmd, len(actors.Val()))
		for i, a := range actors.Val() {
			lists[i] = pipe.LRange(ctx, deniedActorKey(district, id, a), 0, MaxDenialsPerActor-1)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("read denials of %s: %w", id, err)
		}
		for _, l := range lists {
			raw = append(raw, l.Val()...)
		}
	}
	for _, r := range raw {
		var d Denial
		if err := json.Unmarshal([]byte(r), &d); err != nil {
			return out, fmt.Errorf("decode denial of %s: %w", id, err)
		}
		out.Items = append(out.Items, d)
	}
	slices.SortStableFunc(out.Items, func(a, b Denial) int { return b.At.Compare(a.At) })

	order := make(map[string]int, len(actors.Val()))
	for i, a := range actors.Val() {
		order[a] = i
	}
	for field, v := range counts.Val() {
		kind, actor, ok := strings.Cut(field, ":")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			return out, fmt.Errorf("decode denial count %q of %s: %q", field, id, v)
		}
		out.Counts = append(out.Counts, DenialCount{Actor: actor, Action: kind, Count: n})
	}
	slices.SortFunc(out.Counts, func(a, b DenialCount) int {
		return cmp.Or(cmp.Compare(order[a.Actor], order[b.Actor]), strings.Compare(a.Actor, b.Actor), strings.Compare(a.Action, b.Action))
	})
	for kind, v := range overflow.Val() {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return out, fmt.Errorf("decode denial overflow of %s: %w", id, err)
		}
		out.Overflow[kind] = n
	}
	return out, nil
}

// countField names the count of actor's refusals of kind. A kind has no
// colon, so the first one ends it whatever the actor's name holds.
func countField(kind, actor string) string { return kind + ":" + actor }

// The refusal keys of a case, all under its hash tag.
func deniedActorsKey(district, id string) string   { return caseKey(district, id) + ":denied:actors" }
func deniedCountsKey(district, id string) string   { return caseKey(district, id) + ":denied:counts" }
func deniedOverflowKey(district, id string) string { return caseKey(district, id) + ":denied:overflow" }

// deniedActorKey is the list of actor's refusals. The name is encoded so
// that no actor's name can bring braces (another hash tag) or another
// actor's key into it.
func deniedActorKey(district, id, actor string) string {
	return caseKey(district, id) + ":denied:actor:" + base64.RawURLEncoding.EncodeToString([]byte(actor))
}

// legacyDeniedKey is where refusals were kept before each actor had its
// own list: one list of the newest 200 of all actors. It is no longer
// written; what it holds is still shown.
func legacyDeniedKey(district, id string) string { return caseKey(district, id) + ":denied" }
