// Package alertstate keeps the state of alerts in Redis: whether each is
// pending, firing or resolved, its version, severity, the events behind it,
// what mutes it, and the windows of count rules.
//
// Every change of one alert is one Lua script over keys that share the
// alert's hash tag, so it runs unchanged on Redis Cluster, and every script
// is idempotent: an event the alert already holds, or a second resolution,
// changes nothing. That makes Kafka's redelivery harmless. The indexes of
// firing alerts and of resolution deadlines are sorted sets outside the
// alert's slot, kept by separate commands.
//
// A pending alert (a rule with `for`) has matched but not yet for long
// enough; it fires on a later matching event or on a sweep (Promote) once
// its time has come, and resolves without firing when it is cleared or
// expires first.
package alertstate

import (
	"os"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Key layout. An alert's keys carry its fingerprint as the hash tag.
const (
	keyPrefix = "cityhub:alert:"
	// FiringKey indexes firing alerts by fingerprint, scored by start time
	// in Unix milliseconds.
	FiringKey = "cityhub:alerts:firing"
	// ResolveKey indexes firing and pending alerts that resolve by
	// themselves, scored by when they do, in Unix milliseconds.
	ResolveKey = "cityhub:alerts:resolve_at"
	// PendingKey indexes pending alerts, scored by when they fire if their
	// condition still holds, in Unix milliseconds.
	PendingKey = "cityhub:alerts:fire_at"
	// ruleKeyPrefix + rule name indexes the open (pending or firing) alerts
	// of one rule, scored by start time: inhibition looks alerts up by rule.
	ruleKeyPrefix = "cityhub:alerts:rule:"
)

// RuleKey returns the key indexing the open alerts of rule ("pack/id").
func RuleKey(rule string) string { return ruleKeyPrefix + rule }

func keys(fp string) []string {
	base := keyPrefix + "{" + fp + "}"
	return []string{base, base + ":events", base + ":window"}
}

var (
	//go:embed reply.lua
	replySrc string
	//go:embed fire.lua
	fireSrc string
	//go:embed resolve.lua
	resolveSrc string
	//go:embed promote.lua
	promoteSrc string
	//go:embed mute.lua
	muteSrc string

	fireScript    = redis.NewScript(replySrc + fireSrc)
	resolveScript = redis.NewScript(replySrc + resolveSrc)
	promoteScript = redis.NewScript(replySrc + promoteSrc)
	muteScript    = redis.NewScript(replySrc + muteSrc)
	scripts       = []*redis.Script{fireScript, resolveScript, promoteScript, muteScript}
)

// ErrNotFound means there is no alert with the given id.
var ErrNotFound = errors.New("alertstate: no such alert")

// Options configures a Store.
type Options struct {
	Client redis.UniversalClient
	// MaxEventIDs bounds the event ids an alert keeps; 50 when zero.
	MaxEventIDs int
	// ResolvedTTL is how long a resolved alert is kept; 7 days when zero.
	ResolvedTTL time.Duration
}

// Store is alert state in Redis. It is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	max    int
	ttl    time.Duration
	loaded atomic.Bool
}

// New returns a Store.
func New(opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("alertstate: a Redis client is required")
	}
	if opts.MaxEventIDs <= 0 {
		opts.MaxEventIDs = 50
	}
	if opts.ResolvedTTL <= 0 {
		opts.ResolvedTTL = 7 * 24 * time.Hour
	}
	return &Store{c: opts.Client, max: opts.MaxEventIDs, ttl: opts.ResolvedTTL}, nil
}

// Op is what an Update does.
type Op int

const (
	// Fire records a matching event: the alert fires, or keeps firing with
	// one more event, or the event counts towards the alert's window.
	Fire Op = iota + 1
	// Resolve resolves the alert if it is firing or pending.
	Resolve
	// Mute sets what mutes an open alert: Alert.SilencedBy and
	// Alert.InhibitedBy. Only Id and those are read.
	Mute
)

// Update is one change asked of one alert.
type Update struct {
	Op Op
	// Alert describes the alert; for Fire every descriptive field (rule,
	// pack, severity, title, labels, location, explanation, dispatch,
	// silenced_by, inhibited_by, ...) is stored as given, while state,
	// version, event ids and count, previous severity and the times are
	// the store's. For Resolve only Id is read.
	Alert *cityhubv1.Alert
	// EventID and EventTime identify the matching event (Fire).
	EventID   string
	EventTime time.Time
	// AtLeast and Within ask for a count window (Fire): the alert fires
	// once AtLeast distinct events fall within Within. Zero: no window.
	AtLeast int
	Within  time.Duration
	// CountDistinct makes the window count distinct values of Distinct,
	// the event's value of the rule's count.distinct field, instead of
	// events; an event whose value is empty does not count.
	CountDistinct bool
	Distinct      string
	// For keeps a new alert pending this long before it fires (Fire).
	For time.Duration
	// ResolveAfter resolves the alert when no matching event came for this
	// long (Fire); zero: only a clear resolves it.
	ResolveAfter time.Duration
}

// Result is the outcome of one Update.
type Result struct {
	// Alert is the alert as it is after the update; nil when there is
	// none (a window that has not filled, or resolving an unknown alert).
	Alert *cityhubv1.Alert
	// Changed reports whether the update changed the alert: false for a
	// redelivered event or an alert that was already resolved.
	Changed bool

	resolveAt int64 // Unix ms; 0: none
}

// Apply applies updates in order, in one pipelined round trip for the
// alerts and one for the indexes, and returns one Result per update. Every
// update is idempotent, so a batch may be applied again after a failure.
func (s *Store) Apply(ctx context.Context, now time.Time, updates []Update) ([]Result, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	t0 := time.Now()
	bodies := make([]string, len(updates))
	for i, u := range updates {
		if u.Alert == nil || u.Alert.GetId() == "" {
			return nil, fmt.Errorf("alertstate: update %d has no alert id", i)
		}
		if u.Op == Fire {
			if strings.Contains(u.EventID, " ") {
				return nil, fmt.Errorf("alertstate: update %d: event id %q holds a space", i, u.EventID)
			}
			b, err := proto.Marshal(body(u.Alert))
			if err != nil {
				return nil, fmt.Errorf("alertstate: encode alert %s: %w", u.Alert.GetId(), err)
			}
			bodies[i] = string(b)
		}
	}
	nowMs := now.UnixMilli()
	cmds, err := s.run(ctx, func(p redis.Pipeliner) []*redis.Cmd {
		out := make([]*redis.Cmd, len(updates))
		for i, u := range updates {
			k := keys(u.Alert.GetId())
			switch u.Op {
			case Fire:
				var resolveAt int64
				if u.ResolveAfter > 0 {
					resolveAt = now.Add(u.ResolveAfter).UnixMilli()
				}
				distinct := "0"
				if u.CountDistinct {
					distinct = "1"
				}
				out[i] = fireScript.EvalSha(ctx, p, k, u.EventID, u.EventTime.UnixMilli(), nowMs, bodies[i],
					s.max, u.AtLeast, u.Within.Milliseconds(), resolveAt, u.For.Milliseconds(),
					distinct, u.Distinct, int(u.Alert.GetSeverity()),
					joinMarks(u.Alert.GetSilencedBy()), joinMarks(u.Alert.GetInhibitedBy()))
			case Resolve:
				out[i] = resolveScript.EvalSha(ctx, p, k, nowMs, "clear", s.ttl.Milliseconds())
			case Mute:
				out[i] = muteScript.EvalSha(ctx, p, k[:2], nowMs,
					joinMarks(u.Alert.GetSilencedBy()), joinMarks(u.Alert.GetInhibitedBy()))
			default:
				out[i] = redis.NewCmd(ctx)
				out[i].SetErr(fmt.Errorf("unknown op %d", u.Op))
			}
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(updates))
	for i, c := range cmds {
		r, err := decode(c)
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", updates[i].Alert.GetId(), err)
		}
		results[i] = r
	}
	ti := time.Now()
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "DBG3 n %d scripts %v index %v\n", len(updates), ti.Sub(t0), time.Since(ti))
	return results, nil
}

// joinMarks joins silence names or alert ids, which hold no commas, for
// one hash field.
func joinMarks(marks []string) string { return strings.Join(marks, ",") }

func splitMarks(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ResolveDue resolves at most limit firing or pending alerts whose
// resolve_after has passed by now and returns those it resolved. Several
// rulers may call it at once: each alert is resolved, and returned, once.
func (s *Store) ResolveDue(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return s.due(ctx, ResolveKey, now, limit, func(p redis.Pipeliner, id string) *redis.Cmd {
		return resolveScript.EvalSha(ctx, p, keys(id), now.UnixMilli(), "expire", s.ttl.Milliseconds())
	})
}

// Promote fires at most limit pending alerts whose `for` has run out by
// now and returns those it fired. A pending alert whose resolve_after ran
// out first is left to ResolveDue, which resolves it without its firing;
// call Promote before ResolveDue. Several rulers may call it at once.
func (s *Store) Promote(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return s.due(ctx, PendingKey, now, limit, func(p redis.Pipeliner, id string) *redis.Cmd {
		return promoteScript.EvalSha(ctx, p, keys(id)[:2], now.UnixMilli())
	})
}

// due runs script on at most limit alerts the index key says are due by
// now, and returns those it changed.
func (s *Store) due(ctx context.Context, key string, now time.Time, limit int, script func(redis.Pipeliner, string) *redis.Cmd) ([]*cityhubv1.Alert, error) {
	ids, err := s.c.ZRangeByScore(ctx, key, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("alertstate: due alerts: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds, err := s.run(ctx, func(p redis.Pipeliner) []*redis.Cmd {
		out := make([]*redis.Cmd, len(ids))
		for i, id := range ids {
			out[i] = script(p, id)
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(ids))
	var changed []*cityhubv1.Alert
	for i, c := range cmds {
		r, err := decode(c)
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", ids[i], err)
		}
		if r.Alert == nil {
			// Gone (expired or deleted): drop it from the indexes.
			r.Alert = &cityhubv1.Alert{Id: ids[i], State: cityhubv1.AlertState_ALERT_STATE_RESOLVED}
		}
		results[i] = r
		if r.Changed {
			changed = append(changed, r.Alert)
		}
	}
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	return changed, nil
}

// index brings the firing and resolution indexes in line with results. It
// runs for unchanged results too, so an index update lost to a crash is
// made good when the batch is redelivered.
func (s *Store) index(ctx context.Context, results []Result) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range results {
			a := r.Alert
			if a == nil {
				continue
			}
			id, starts := a.GetId(), float64(a.GetStartsAt().AsTime().UnixMilli())
			state := a.GetState()
			open := state == cityhubv1.AlertState_ALERT_STATE_FIRING || state == cityhubv1.AlertState_ALERT_STATE_PENDING
			if state == cityhubv1.AlertState_ALERT_STATE_FIRING {
				p.ZAdd(ctx, FiringKey, redis.Z{Score: starts, Member: id})
			} else {
				p.ZRem(ctx, FiringKey, id)
			}
			if state == cityhubv1.AlertState_ALERT_STATE_PENDING {
				p.ZAdd(ctx, PendingKey, redis.Z{Score: float64(a.GetFiresAt().AsTime().UnixMilli()), Member: id})
			} else {
				p.ZRem(ctx, PendingKey, id)
			}
			if open && r.resolveAt > 0 {
				p.ZAdd(ctx, ResolveKey, redis.Z{Score: float64(r.resolveAt), Member: id})
			} else {
				p.ZRem(ctx, ResolveKey, id)
			}
			if rule := a.GetRule(); rule != "" {
				if open {
					p.ZAdd(ctx, RuleKey(rule), redis.Z{Score: starts, Member: id})
				} else {
					p.ZRem(ctx, RuleKey(rule), id)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("alertstate: update indexes: %w", err)
	}
	return nil
}

// run runs the scripts queued by queue in one pipeline, loading the
// scripts first when Redis does not have them (after a restart or a
// failover its script cache is empty).
func (s *Store) run(ctx context.Context, queue func(redis.Pipeliner) []*redis.Cmd) ([]*redis.Cmd, error) {
	for attempt := 0; ; attempt++ {
		if !s.loaded.Load() {
			for _, sc := range scripts {
				if err := sc.Load(ctx, s.c).Err(); err != nil {
					return nil, fmt.Errorf("alertstate: load scripts: %w", err)
				}
			}
			s.loaded.Store(true)
		}
		var cmds []*redis.Cmd
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmds = queue(p)
			return nil
		})
		if err != nil && attempt == 0 && isNoScript(cmds) {
			// Scripts that did run are idempotent: running them again is safe.
			s.loaded.Store(false)
			continue
		}
		if err != nil {
			for _, c := range cmds {
				if c.Err() != nil {
					return nil, fmt.Errorf("alertstate: %w", c.Err())
				}
			}
			return nil, fmt.Errorf("alertstate: %w", err)
		}
		return cmds, nil
	}
}

func isNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// body returns the fields of a that the store keeps as given.
func body(a *cityhubv1.Alert) *cityhubv1.Alert {
	b := proto.Clone(a).(*cityhubv1.Alert)
	b.State = cityhubv1.AlertState_ALERT_STATE_UNSPECIFIED
	b.Version = 0
	b.EventIds = nil
	b.EventCount = 0
	b.StartsAt, b.EndsAt, b.UpdatedAt, b.FiresAt, b.SeverityChangedAt = nil, nil, nil, nil, nil
	b.PreviousSeverity = 0
	b.SilencedBy, b.InhibitedBy = nil, nil
	return b
}

// stored names the hash fields an alert is read from, in the order
// assemble takes them; the scripts' reply (reply.lua) gives the same.
var stored = []string{"state", "version", "event_count", "starts_at", "updated_at", "ends_at", "body", "resolve_at",
	"prev_severity", "severity_at", "fire_at", "silenced", "inhibited"}

// decode turns a script's reply into the alert it describes: the status,
// the fields of stored, then the event ids.
func decode(c *redis.Cmd) (Result, error) {
	v, err := c.Slice()
	if err != nil {
		return Result{}, err
	}
	if len(v) < 1+len(stored) {
		return Result{}, fmt.Errorf("short script reply of %d items", len(v))
	}
	f := make([]string, len(v))
	for i, x := range v {
		s, ok := x.(string)
		if !ok {
			return Result{}, fmt.Errorf("script reply item %d is %T", i, x)
		}
		f[i] = s
	}
	r := Result{Changed: f[0] == "changed"}
	if f[1] == "" {
		return r, nil
	}
	r.resolveAt, _ = strconv.ParseInt(f[8], 10, 64)
	r.Alert, err = assemble(f[1:1+len(stored)], f[1+len(stored):])
	return r, err
}

// assemble builds an alert from the fields of stored and its event ids.
func assemble(f []string, ids []string) (*cityhubv1.Alert, error) {
	state, version, count, starts, updated, ends, body := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
	a := &cityhubv1.Alert{}
	if err := proto.Unmarshal([]byte(body), a); err != nil {
		return nil, fmt.Errorf("decode stored alert: %w", err)
	}
	switch state {
	case "firing":
		a.State = cityhubv1.AlertState_ALERT_STATE_FIRING
	case "resolved":
		a.State = cityhubv1.AlertState_ALERT_STATE_RESOLVED
	case "pending":
		a.State = cityhubv1.AlertState_ALERT_STATE_PENDING
	default:
		return nil, fmt.Errorf("stored state %q", state)
	}
	var err error
	num := func(s string) int64 {
		n, e := strconv.ParseInt(s, 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("stored number %q: %w", s, e)
		}
		return n
	}
	a.Version = num(version)
	a.EventCount = num(count)
	a.StartsAt = millis(num(starts))
	a.UpdatedAt = millis(num(updated))
	if e := num(ends); e > 0 {
		a.EndsAt = millis(e)
	}
	if p := num(f[8]); p > 0 {
		a.PreviousSeverity = cityhubv1.Severity(p)
		a.SeverityChangedAt = millis(num(f[9]))
	}
	if at := num(f[10]); at > 0 {
		a.FiresAt = millis(at)
	}
	a.SilencedBy, a.InhibitedBy = splitMarks(f[11]), splitMarks(f[12])
	a.EventIds = ids
	return a, err
}

func millis(ms int64) *timestamppb.Timestamp {
	return timestamppb.New(time.UnixMilli(ms).UTC())
}

// Get returns the alert with the given id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*cityhubv1.Alert, error) {
	out, err := s.read(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if out[0] == nil {
		return nil, ErrNotFound
	}
	return out[0], nil
}

// Firing returns every firing alert, oldest first: the snapshot a live
// client starts from. Pending alerts are not in it.
func (s *Store) Firing(ctx context.Context) ([]*cityhubv1.Alert, error) {
	return s.indexed(ctx, FiringKey, 0, cityhubv1.AlertState_ALERT_STATE_FIRING)
}

// Pending returns every pending alert, soonest to fire first.
func (s *Store) Pending(ctx context.Context) ([]*cityhubv1.Alert, error) {
	return s.indexed(ctx, PendingKey, 0, cityhubv1.AlertState_ALERT_STATE_PENDING)
}

// OfRule returns at most limit open (pending or firing) alerts of rule
// ("pack/id"), oldest first.
func (s *Store) OfRule(ctx context.Context, rule string, limit int) ([]*cityhubv1.Alert, error) {
	return s.indexed(ctx, RuleKey(rule), limit, cityhubv1.AlertState_ALERT_STATE_FIRING, cityhubv1.AlertState_ALERT_STATE_PENDING)
}

// indexed reads the alerts the index key names, at most limit (0: all),
// keeping those in one of states.
func (s *Store) indexed(ctx context.Context, key string, limit int, states ...cityhubv1.AlertState) ([]*cityhubv1.Alert, error) {
	ids, err := s.c.ZRange(ctx, key, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("alertstate: read %s: %w", key, err)
	}
	all, err := s.read(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*cityhubv1.Alert, 0, len(all))
	for _, a := range all {
		// The index may briefly name an alert that has just changed.
		if a != nil && slices.Contains(states, a.GetState()) {
			out = append(out, a)
		}
	}
	return out, nil
}

// read reads alerts by id in one round trip; missing ones are nil.
func (s *Store) read(ctx context.Context, ids []string) ([]*cityhubv1.Alert, error) {
	hs := make([]*redis.SliceCmd, len(ids))
	ls := make([]*redis.StringSliceCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			k := keys(id)
			hs[i] = p.HMGet(ctx, k[0], stored...)
			ls[i] = p.LRange(ctx, k[1], 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alertstate: read alerts: %w", err)
	}
	out := make([]*cityhubv1.Alert, len(ids))
	for i := range ids {
		v := hs[i].Val()
		if len(v) != len(stored) || v[0] == nil {
			continue
		}
		f := make([]string, len(stored))
		for j, x := range v {
			f[j], _ = x.(string)
			if f[j] == "" && j != 6 && j < 11 {
				f[j] = "0" // a field an older version of the store did not write
			}
		}
		a, err := assemble(f, ls[i].Val())
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", ids[i], err)
		}
		out[i] = a
	}
	return out, nil
}
