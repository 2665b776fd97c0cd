// Package alertstate keeps the state of alerts in Redis: whether each is
// firing or resolved, its version, the events behind it, and the windows
// of count rules.
//
// Every change of one alert is one Lua script over keys that share the
// alert's hash tag, so it runs unchanged on Redis Cluster, and every script
// is idempotent: an event the alert already holds, or a second resolution,
// changes nothing. That makes Kafka's redelivery harmless. The indexes of
// firing alerts and of resolution deadlines are sorted sets outside the
// alert's slot, kept by separate commands.
package alertstate

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
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
	// ResolveKey indexes firing alerts that resolve by themselves, scored
	// by when they do, in Unix milliseconds.
	ResolveKey = "cityhub:alerts:resolve_at"
)

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

	fireScript    = redis.NewScript(replySrc + fireSrc)
	resolveScript = redis.NewScript(replySrc + resolveSrc)
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
	// Resolve resolves the alert if it is firing.
	Resolve
)

// Update is one change asked of one alert.
type Update struct {
	Op Op
	// Alert describes the alert; for Fire every descriptive field (rule,
	// pack, severity, title, labels, location, explanation, dispatch, ...)
	// is stored as given, while state, version, event ids and count, and
	// the times are the store's. For Resolve only Id is read.
	Alert *cityhubv1.Alert
	// EventID and EventTime identify the matching event (Fire).
	EventID   string
	EventTime time.Time
	// AtLeast and Within ask for a count window (Fire): the alert fires
	// once AtLeast distinct events fall within Within. Zero: no window.
	AtLeast int
	Within  time.Duration
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
	bodies := make([]string, len(updates))
	for i, u := range updates {
		if u.Alert == nil || u.Alert.GetId() == "" {
			return nil, fmt.Errorf("alertstate: update %d has no alert id", i)
		}
		if u.Op == Fire {
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
				out[i] = fireScript.EvalSha(ctx, p, k, u.EventID, u.EventTime.UnixMilli(), nowMs, bodies[i],
					s.max, u.AtLeast, u.Within.Milliseconds(), resolveAt)
			case Resolve:
				out[i] = resolveScript.EvalSha(ctx, p, k, nowMs, "clear", s.ttl.Milliseconds())
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
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	return results, nil
}

// ResolveDue resolves at most limit firing alerts whose resolve_after has
// passed by now and returns those it resolved. Several rulers may call it
// at once: each alert is resolved, and returned, once.
func (s *Store) ResolveDue(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	ids, err := s.c.ZRangeByScore(ctx, ResolveKey, &redis.ZRangeBy{
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
			out[i] = resolveScript.EvalSha(ctx, p, keys(id), now.UnixMilli(), "expire", s.ttl.Milliseconds())
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(ids))
	var resolved []*cityhubv1.Alert
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
			resolved = append(resolved, r.Alert)
		}
	}
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	return resolved, nil
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
			if a.GetState() == cityhubv1.AlertState_ALERT_STATE_FIRING {
				p.ZAdd(ctx, FiringKey, redis.Z{Score: float64(a.GetStartsAt().AsTime().UnixMilli()), Member: a.GetId()})
				if r.resolveAt > 0 {
					p.ZAdd(ctx, ResolveKey, redis.Z{Score: float64(r.resolveAt), Member: a.GetId()})
				} else {
					p.ZRem(ctx, ResolveKey, a.GetId())
				}
			} else {
				p.ZRem(ctx, FiringKey, a.GetId())
				p.ZRem(ctx, ResolveKey, a.GetId())
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
			for _, sc := range []*redis.Script{fireScript, resolveScript} {
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
	b.StartsAt, b.EndsAt, b.UpdatedAt = nil, nil, nil
	return b
}

// decode turns a script's reply into the alert it describes:
// status, state, version, event_count, starts_at, updated_at, ends_at,
// body, resolve_at, then the event ids.
func decode(c *redis.Cmd) (Result, error) {
	v, err := c.Slice()
	if err != nil {
		return Result{}, err
	}
	if len(v) < 9 {
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
	r.Alert, err = assemble(f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[9:])
	return r, err
}

func assemble(state, version, count, starts, updated, ends, body string, ids []string) (*cityhubv1.Alert, error) {
	a := &cityhubv1.Alert{}
	if err := proto.Unmarshal([]byte(body), a); err != nil {
		return nil, fmt.Errorf("decode stored alert: %w", err)
	}
	switch state {
	case "firing":
		a.State = cityhubv1.AlertState_ALERT_STATE_FIRING
	case "resolved":
		a.State = cityhubv1.AlertState_ALERT_STATE_RESOLVED
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
// client starts from.
func (s *Store) Firing(ctx context.Context) ([]*cityhubv1.Alert, error) {
	ids, err := s.c.ZRange(ctx, FiringKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("alertstate: firing alerts: %w", err)
	}
	all, err := s.read(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*cityhubv1.Alert, 0, len(all))
	for _, a := range all {
		// The index may briefly name an alert that has just resolved.
		if a != nil && a.GetState() == cityhubv1.AlertState_ALERT_STATE_FIRING {
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
			hs[i] = p.HMGet(ctx, k[0], "state", "version", "event_count", "starts_at", "updated_at", "ends_at", "body")
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
		if len(v) != 7 || v[0] == nil {
			continue
		}
		f := make([]string, 7)
		for j, x := range v {
			f[j], _ = x.(string)
		}
		a, err := assemble(f[0], f[1], f[2], f[3], f[4], f[5], f[6], ls[i].Val())
		if err != nil {
			return nil, fmt.Errorf("alertstate: alert %s: %w", ids[i], err)
		}
		out[i] = a
	}
	return out, nil
}
