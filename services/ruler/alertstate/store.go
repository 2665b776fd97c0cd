// Package alertstate keeps the state of alerts in Redis: whether each is
// pending, firing or resolved, its version, severity, the events behind it,
// what mutes it, and the windows of count rules.
//
// The changes a batch makes to one alert are one Lua script (apply.lua)
// over keys that share the alert's hash tag, so it runs unchanged on Redis
// Cluster; the script applies them in order exactly as it would one at a
// time, and reports the alert as it ends up, with the version it was in
// before each change of state. Every change is idempotent: an event the
// alert already holds, or a second resolution, changes nothing. That makes
// Kafka's redelivery harmless. The indexes of firing alerts and of
// resolution deadlines are sorted sets outside the alert's slot, kept by
// separate commands.
//
// A pending alert (a rule with `for`) has matched but not yet for long
// enough; it fires on a later matching event or on a sweep (Promote) once
// its time has come, and resolves without firing when it is cleared or
// expires first.
package alertstate

import (
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
	//go:embed apply.lua
	applySrc    string
	applyScript = redis.NewScript(applySrc)
	//go:embed tally.lua
	tallySrc    string
	tallyScript = redis.NewScript(tallySrc)
	scripts     = []*redis.Script{applyScript, tallyScript}
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

// Result is the outcome of the updates of one alert.
type Result struct {
	// Alert is the alert as it is after the updates; nil when there is
	// none (a window that has not filled, or resolving an unknown alert).
	Alert *cityhubv1.Alert
	// Earlier holds the versions the updates left the alert in just
	// before they changed its state again, oldest first: a batch that
	// fires and resolves an alert yields its firing version here and its
	// resolved one as Alert, so that every state it passed through can be
	// published. Versions in between that kept the state are not kept.
	Earlier []*cityhubv1.Alert
	// Changed reports whether the updates changed the alert: false for
	// redelivered events or an alert that was already resolved.
	Changed bool
	// Was and WasSeverity are the alert's state and severity before the
	// updates; zero when it did not exist.
	Was         cityhubv1.AlertState
	WasSeverity cityhubv1.Severity

	resolveAt int64 // Unix ms; 0: none
	// redelivered: an update found its work done already (an event the
	// alert held came again, or a clear, sweep or mark changed nothing).
	redelivered bool
}

// Apply applies updates. The updates of one alert (one Alert.Id) run in
// their order as one script, exactly as if each ran alone; the scripts of
// all alerts go in one pipelined round trip, the index updates in one
// more. It returns one Result per alert, in the order of each alert's
// first update. Every update is idempotent, so a batch may be applied
// again after a failure.
//
// The Alert of a Fire update may become the Result's Alert: the caller
// must not use it afterwards.
func (s *Store) Apply(ctx context.Context, now time.Time, updates []Update) ([]Result, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	groups, err := group(updates)
	if err != nil {
		return nil, err
	}
	nowMs := now.UnixMilli()
	args := make([][]any, len(groups))
	for g, idx := range groups {
		a := make([]any, 3, 3+13*len(idx))
		a[0], a[1], a[2] = nowMs, s.max, s.ttl.Milliseconds()
		for _, i := range idx {
			u := updates[i]
			switch u.Op {
			case Fire:
				b, err := encodeBody(u.Alert)
				if err != nil {
					return nil, fmt.Errorf("alertstate: encode alert %s: %w", u.Alert.GetId(), err)
				}
				var resolveAt int64
				if u.ResolveAfter > 0 {
					resolveAt = now.Add(u.ResolveAfter).UnixMilli()
				}
				distinct := "0"
				if u.CountDistinct {
					distinct = "1"
				}
				a = append(a, "f", u.EventID, u.EventTime.UnixMilli(), b,
					u.AtLeast, u.Within.Milliseconds(), resolveAt, u.For.Milliseconds(),
					distinct, u.Distinct, int(u.Alert.GetSeverity()),
					joinMarks(u.Alert.GetSilencedBy()), joinMarks(u.Alert.GetInhibitedBy()))
			case Resolve:
				a = append(a, "c")
			case Mute:
				a = append(a, "m", joinMarks(u.Alert.GetSilencedBy()), joinMarks(u.Alert.GetInhibitedBy()))
			default:
				return nil, fmt.Errorf("alertstate: update %d: unknown op %d", i, u.Op)
			}
		}
		args[g] = a
	}
	cmds, err := s.perAlert(ctx, applyScript, updates, groups, args)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(groups))
	for g, c := range cmds {
		idx := groups[g]
		r, err := decode(c, func(op int) *cityhubv1.Alert {
			if op < 1 || op > len(idx) {
				return nil
			}
			return updates[idx[op-1]].Alert
		})
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", updates[idx[0]].Alert.GetId(), err)
		}
		results[g] = r
	}
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	return results, nil
}

// group groups updates by alert, in the order of each alert's first
// update, keeping the order of each alert's updates.
func group(updates []Update) ([][]int, error) {
	var groups [][]int
	byID := make(map[string]int, len(updates))
	for i, u := range updates {
		id := u.Alert.GetId()
		if id == "" {
			return nil, fmt.Errorf("alertstate: update %d has no alert id", i)
		}
		if u.Op == Fire && strings.Contains(u.EventID, " ") {
			return nil, fmt.Errorf("alertstate: update %d: event id %q holds a space", i, u.EventID)
		}
		g, ok := byID[id]
		if !ok {
			g = len(groups)
			byID[id] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups, nil
}

// Tally does the part of Apply's work that needs no alert body, and
// reports which updates are left for Apply: need[i] is true when updates[i]
// must still be applied, and the updates of one alert share the answer.
//
// An alert whose updates are all events for a count window or clears is
// tallied in one small script: events that add to a window that does not
// fill are counted, clears of an alert that does not exist restart its
// window, and that is all they do — Apply would change and publish
// nothing for them. When an update would do more (the alert is open, or
// exists and is to be published again, or a window fills), the updates of
// that alert are left for Apply, which finds the events counted here
// already counted and carries on. The Alert of the updates Tally settles
// is read for its Id only, so a caller may describe alerts after Tally,
// for the updates it leaves. Tally, then Apply of what it leaves, does
// what Apply alone does; scripts of all alerts go in one round trip.
func (s *Store) Tally(ctx context.Context, updates []Update) (need []bool, err error) {
	need = make([]bool, len(updates))
	groups, err := group(updates)
	if err != nil {
		return nil, err
	}
	var tallied [][]int
	var args [][]any
	for _, idx := range groups {
		a := make([]any, 0, 7*len(idx))
		for _, i := range idx {
			u := updates[i]
			if u.Op == Resolve {
				a = append(a, "c")
				continue
			}
			if u.Op != Fire || u.AtLeast <= 0 {
				a = nil
				break
			}
			distinct := "0"
			if u.CountDistinct {
				distinct = "1"
			}
			a = append(a, "w", u.EventID, u.EventTime.UnixMilli(), u.AtLeast, u.Within.Milliseconds(), distinct, u.Distinct)
		}
		if a == nil {
			for _, i := range idx {
				need[i] = true
			}
			continue
		}
		tallied = append(tallied, idx)
		args = append(args, a)
	}
	if len(tallied) == 0 {
		return need, nil
	}
	cmds, err := s.perAlert(ctx, tallyScript, updates, tallied, args)
	if err != nil {
		return nil, err
	}
	for g, c := range cmds {
		v, err := c.Text()
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", updates[tallied[g][0]].Alert.GetId(), err)
		}
		switch v {
		case "done":
		case "apply":
			for _, i := range tallied[g] {
				need[i] = true
			}
		default:
			return nil, fmt.Errorf("alertstate: alert %s: tally answered %q", updates[tallied[g][0]].Alert.GetId(), v)
		}
	}
	return need, nil
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
		return applyScript.EvalSha(ctx, p, keys(id), now.UnixMilli(), s.max, s.ttl.Milliseconds(), "x")
	})
}

// Promote fires at most limit pending alerts whose `for` has run out by
// now and returns those it fired. A pending alert whose resolve_after ran
// out first is left to ResolveDue, which resolves it without its firing;
// call Promote before ResolveDue. Several rulers may call it at once.
func (s *Store) Promote(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return s.due(ctx, PendingKey, now, limit, func(p redis.Pipeliner, id string) *redis.Cmd {
		return applyScript.EvalSha(ctx, p, keys(id), now.UnixMilli(), s.max, s.ttl.Milliseconds(), "p")
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
		r, err := decode(c, nil)
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
			if r.Changed && !r.redelivered && len(r.Earlier) == 0 && r.Was == state && open {
				// The same episode in the same state: only the deadline
				// moved. The other indexes hold the alert already, or a
				// lost index update is made good when its events come
				// again, as redelivered ones, which writes every index.
				if r.resolveAt > 0 {
					p.ZAdd(ctx, ResolveKey, redis.Z{Score: float64(r.resolveAt), Member: id})
				} else {
					p.ZRem(ctx, ResolveKey, id)
				}
				continue
			}
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

// perAlert runs script once per group of updates (one alert's), over the
// alert's keys with the group's args, all in one pipeline.
func (s *Store) perAlert(ctx context.Context, script *redis.Script, updates []Update, groups [][]int, args [][]any) ([]*redis.Cmd, error) {
	return s.run(ctx, func(p redis.Pipeliner) []*redis.Cmd {
		out := make([]*redis.Cmd, len(groups))
		for g, idx := range groups {
			out[g] = script.EvalSha(ctx, p, keys(updates[idx[0]].Alert.GetId()), args[g]...)
		}
		return out
	})
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

// encodeBody encodes body(a). An alert described for a Fire update holds
// none of the store's fields but its marks, which are left out in place
// rather than by copying the whole alert.
func encodeBody(a *cityhubv1.Alert) ([]byte, error) {
	if a.State != 0 || a.Version != 0 || len(a.EventIds) != 0 || a.EventCount != 0 || a.PreviousSeverity != 0 ||
		a.StartsAt != nil || a.EndsAt != nil || a.UpdatedAt != nil || a.FiresAt != nil || a.SeverityChangedAt != nil {
		return proto.Marshal(body(a))
	}
	silenced, inhibited := a.SilencedBy, a.InhibitedBy
	a.SilencedBy, a.InhibitedBy = nil, nil
	b, err := proto.Marshal(a)
	a.SilencedBy, a.InhibitedBy = silenced, inhibited
	return b, err
}

// stored names the hash fields an alert is read from, in the order
// assemble takes them; apply.lua's snapshots give the same.
var stored = []string{"state", "version", "event_count", "starts_at", "updated_at", "ends_at", "resolve_at",
	"prev_severity", "severity_at", "fire_at", "silenced", "inhibited", "body"}

const (
	fieldResolveAt = 6
	fieldBody      = 12
	// snapshotLen is the items of one snapshot in apply.lua's reply: the
	// fields of stored, the body op and the event ids.
	snapshotLen = 15
)

// decode turns apply.lua's reply into the Result it describes. fired
// returns the Alert of the n-th update (1-based) of the script, whose body
// the store holds when the reply names it instead of sending the body back.
func decode(c *redis.Cmd, fired func(n int) *cityhubv1.Alert) (Result, error) {
	v, err := c.Slice()
	if err != nil {
		return Result{}, err
	}
	if len(v) < 4 || (len(v)-4)%snapshotLen != 0 {
		return Result{}, fmt.Errorf("script reply of %d items", len(v))
	}
	f := make([]string, len(v))
	for i, x := range v {
		s, ok := x.(string)
		if !ok {
			return Result{}, fmt.Errorf("script reply item %d is %T", i, x)
		}
		f[i] = s
	}
	r := Result{Changed: f[2] == "1", redelivered: f[3] == "1"}
	if f[0] != "" {
		if r.Was, err = parseState(f[0]); err != nil {
			return Result{}, err
		}
	}
	if sev, err := strconv.Atoi(f[1]); err == nil {
		r.WasSeverity = cityhubv1.Severity(sev)
	}
	n := (len(v) - 4) / snapshotLen
	for k := range n {
		snap := f[4+k*snapshotLen : 4+(k+1)*snapshotLen]
		var base *cityhubv1.Alert
		if op, _ := strconv.Atoi(snap[13]); op > 0 {
			if fired != nil {
				base = fired(op)
			}
			if base == nil {
				return Result{}, fmt.Errorf("script reply names update %d, which it was not given", op)
			}
		}
		a, err := assemble(snap[:len(stored)], base, snap[14])
		if err != nil {
			return Result{}, err
		}
		if k < n-1 {
			r.Earlier = append(r.Earlier, a)
			continue
		}
		r.Alert = a
		r.resolveAt, _ = strconv.ParseInt(snap[fieldResolveAt], 10, 64)
	}
	return r, nil
}

func parseState(s string) (cityhubv1.AlertState, error) {
	switch s {
	case "firing":
		return cityhubv1.AlertState_ALERT_STATE_FIRING, nil
	case "resolved":
		return cityhubv1.AlertState_ALERT_STATE_RESOLVED, nil
	case "pending":
		return cityhubv1.AlertState_ALERT_STATE_PENDING, nil
	}
	return 0, fmt.Errorf("stored state %q", s)
}

// assemble builds an alert from the fields of stored and its event ids,
// joined by spaces. When base is given it holds the stored body already
// and becomes the alert.
func assemble(f []string, base *cityhubv1.Alert, ids string) (*cityhubv1.Alert, error) {
	a := base
	if a == nil {
		a = &cityhubv1.Alert{}
		if err := proto.Unmarshal([]byte(f[fieldBody]), a); err != nil {
			return nil, fmt.Errorf("decode stored alert: %w", err)
		}
	}
	var err error
	if a.State, err = parseState(f[0]); err != nil {
		return nil, err
	}
	num := func(s string) int64 {
		n, e := strconv.ParseInt(s, 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("stored number %q: %w", s, e)
		}
		return n
	}
	a.Version = num(f[1])
	a.EventCount = num(f[2])
	a.StartsAt = millis(num(f[3]))
	a.UpdatedAt = millis(num(f[4]))
	a.EndsAt, a.PreviousSeverity, a.SeverityChangedAt, a.FiresAt = nil, 0, nil, nil
	if e := num(f[5]); e > 0 {
		a.EndsAt = millis(e)
	}
	if p := num(f[7]); p > 0 {
		a.PreviousSeverity = cityhubv1.Severity(p)
		a.SeverityChangedAt = millis(num(f[8]))
	}
	if at := num(f[9]); at > 0 {
		a.FiresAt = millis(at)
	}
	a.SilencedBy, a.InhibitedBy = splitMarks(f[10]), splitMarks(f[11])
	a.EventIds = nil
	if ids != "" {
		a.EventIds = strings.Split(ids, " ")
	}
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

// OpenOf returns at most limit open (pending or firing) alerts of each of
// rules, oldest first, in two round trips whatever the number of rules.
// Their event ids are left out: this is the read that decides muting.
func (s *Store) OpenOf(ctx context.Context, rules []string, limit int) (map[string][]*cityhubv1.Alert, error) {
	out := make(map[string][]*cityhubv1.Alert, len(rules))
	if len(rules) == 0 {
		return out, nil
	}
	idCmds := make([]*redis.StringSliceCmd, len(rules))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, rule := range rules {
			idCmds[i] = p.ZRange(ctx, RuleKey(rule), 0, int64(limit)-1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alertstate: read the open alerts of %d rules: %w", len(rules), err)
	}
	var ids []string
	for _, c := range idCmds {
		ids = append(ids, c.Val()...)
	}
	all, err := s.readMany(ctx, ids, false)
	if err != nil {
		return nil, err
	}
	for i, rule := range rules {
		n := len(idCmds[i].Val())
		got := make([]*cityhubv1.Alert, 0, n)
		for _, a := range all[:n] {
			// The index may briefly name an alert that has just changed.
			if st := a.GetState(); st == cityhubv1.AlertState_ALERT_STATE_FIRING || st == cityhubv1.AlertState_ALERT_STATE_PENDING {
				got = append(got, a)
			}
		}
		all = all[n:]
		out[rule] = got
	}
	return out, nil
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
	return s.readMany(ctx, ids, true)
}

// readMany reads alerts by id in one round trip, with their event ids
// when withIDs; missing ones are nil.
func (s *Store) readMany(ctx context.Context, ids []string, withIDs bool) ([]*cityhubv1.Alert, error) {
	hs := make([]*redis.SliceCmd, len(ids))
	ls := make([]*redis.StringSliceCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			k := keys(id)
			hs[i] = p.HMGet(ctx, k[0], stored...)
			if withIDs {
				ls[i] = p.LRange(ctx, k[1], 0, -1)
			}
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
			if f[j] == "" && j >= 1 && j <= 9 {
				f[j] = "0" // a field an older version of the store did not write
			}
		}
		var evIDs string
		if withIDs {
			evIDs = strings.Join(ls[i].Val(), " ")
		}
		a, err := assemble(f, nil, evIDs)
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", ids[i], err)
		}
		out[i] = a
	}
	return out, nil
}
