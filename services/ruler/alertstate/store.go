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

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

var (
	//go:embed apply.lua
	applySrc string
	//go:embed tally.lua
	tallySrc string

	applyScript, tallyScript, scripts = loadScripts("")
)

// loadScripts returns the scripts, each starting with head, then the Lua
// made from the protocol's tables.
func loadScripts(head string) (apply, tally *redis.Script, all []*redis.Script) {
	apply = redis.NewScript(head + stepsLua(true) + replyLua() + applySrc)
	tally = redis.NewScript(head + stepsLua(false) + tallySrc)
	return apply, tally, []*redis.Script{apply, tally, signalScript, silentScript, unindexScript}
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
	opts.defaults()
	return &Store{c: opts.Client, max: opts.MaxEventIDs, ttl: opts.ResolvedTTL}, nil
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
	h := s.header(now)
	args := make([][]any, len(groups))
	for g, idx := range groups {
		a := appendHeader(make([]any, 0, len(headerArgs)+(1+len(stepArgs))*len(idx)), &h)
		for _, i := range idx {
			st, err := applyStep(now, &updates[i], i)
			if err != nil {
				return nil, err
			}
			a = appendStep(a, &st)
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
		rep, err := replyOf(c)
		if err == nil {
			results[g], err = rep.result(firedBy(updates, idx))
		}
		if err != nil {
			return nil, errAlert(updates[idx[0]].Alert.GetId(), err)
		}
	}
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	return results, nil
}

func (s *Store) header(now time.Time) header {
	return header{now: now.UnixMilli(), maxIDs: int64(s.max), ttl: s.ttl.Milliseconds()}
}

func replyOf(c *redis.Cmd) (reply, error) {
	v, err := c.Slice()
	if err != nil {
		return reply{}, err
	}
	return decodeReply(v)
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
		if !tallyable(updates, idx) {
			for _, i := range idx {
				need[i] = true
			}
			continue
		}
		a := make([]any, 0, (1+len(argsOf[opWindow]))*len(idx))
		for _, i := range idx {
			st := tallyStep(&updates[i])
			a = appendStep(a, &st)
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
		id := updates[tallied[g][0]].Alert.GetId()
		v, err := c.Text()
		if err != nil {
			return nil, errAlert(id, err)
		}
		switch v {
		case tallyDone:
		case tallyApply:
			for _, i := range tallied[g] {
				need[i] = true
			}
		default:
			return nil, errAlert(id, fmt.Errorf("tally answered %q", v))
		}
	}
	return need, nil
}

// ResolveDue resolves at most limit firing or pending alerts whose
// resolve_after has passed by now and returns those it resolved. Several
// rulers may call it at once: each alert is resolved, and returned, once.
func (s *Store) ResolveDue(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return s.due(ctx, ResolveKey, opExpire, now, limit)
}

// Promote fires at most limit pending alerts whose `for` has run out by
// now and returns those it fired. A pending alert whose resolve_after ran
// out first is left to ResolveDue, which resolves it without its firing;
// call Promote before ResolveDue. Several rulers may call it at once.
func (s *Store) Promote(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return s.due(ctx, PendingKey, opPromote, now, limit)
}

// due runs the step op on at most limit alerts the index key says are due
// by now, and returns those it changed.
func (s *Store) due(ctx context.Context, key, op string, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	ids, err := s.c.ZRangeByScore(ctx, key, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("alertstate: due alerts: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	h := s.header(now)
	args := appendStep(appendHeader(nil, &h), &step{op: op})
	cmds, err := s.run(ctx, func(p redis.Pipeliner) []*redis.Cmd {
		out := make([]*redis.Cmd, len(ids))
		for i, id := range ids {
			out[i] = applyScript.EvalSha(ctx, p, keys(id), args...)
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	replies := make([]reply, len(ids))
	for i, c := range cmds {
		if replies[i], err = replyOf(c); err != nil {
			return nil, errAlert(ids[i], err)
		}
	}
	results, changed, err := swept(ids, replies)
	if err != nil {
		return nil, err
	}
	if err := s.index(ctx, results); err != nil {
		return nil, err
	}
	return changed, nil
}

// index writes the indexes results call for, in one round trip.
func (s *Store) index(ctx context.Context, results []Result) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		index(results, pipeIndexer{ctx, p})
		return nil
	})
	if err != nil {
		return fmt.Errorf("alertstate: update indexes: %w", err)
	}
	return nil
}

type pipeIndexer struct {
	ctx context.Context
	p   redis.Pipeliner
}

func (w pipeIndexer) zadd(key string, score int64, member string) {
	w.p.ZAdd(w.ctx, key, redis.Z{Score: float64(score), Member: member})
}

func (w pipeIndexer) zrem(key, member string) { w.p.ZRem(w.ctx, key, member) }

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
	ids := make([][]string, len(rules))
	var all []string
	for i, c := range idCmds {
		ids[i] = c.Val()
		all = append(all, ids[i]...)
	}
	alerts, err := s.readMany(ctx, all, false)
	if err != nil {
		return nil, err
	}
	openOf(out, rules, ids, alerts)
	return out, nil
}

// openOf fills out with the open alerts among alerts, rule by rule: ids[i]
// names those of rules[i], in order.
func openOf(out map[string][]*cityhubv1.Alert, rules []string, ids [][]string, alerts []*cityhubv1.Alert) {
	for i, rule := range rules {
		n := len(ids[i])
		got := make([]*cityhubv1.Alert, 0, n)
		for _, a := range alerts[:n] {
			// The index may briefly name an alert that has just changed.
			if st := a.GetState(); st == cityhubv1.AlertState_ALERT_STATE_FIRING || st == cityhubv1.AlertState_ALERT_STATE_PENDING {
				got = append(got, a)
			}
		}
		alerts = alerts[n:]
		out[rule] = got
	}
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
	return inStates(all, states), nil
}

// inStates returns the alerts of all that are in one of states.
func inStates(all []*cityhubv1.Alert, states []cityhubv1.AlertState) []*cityhubv1.Alert {
	out := make([]*cityhubv1.Alert, 0, len(all))
	for _, a := range all {
		// The index may briefly name an alert that has just changed.
		if a != nil && slices.Contains(states, a.GetState()) {
			out = append(out, a)
		}
	}
	return out
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
			hs[i] = p.HMGet(ctx, k[0], columnNames...)
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
		if len(v) != len(columns) {
			continue
		}
		var r record
		for j, x := range v {
			f, _ := x.(string)
			if err := r.set(columns[j].name, f); err != nil {
				return nil, errAlert(ids[i], err)
			}
		}
		if r.state == "" {
			continue // no alert
		}
		var evIDs []string
		if withIDs {
			evIDs = ls[i].Val()
		}
		a, err := r.alert(nil, evIDs)
		if err != nil {
			return nil, errAlert(ids[i], err)
		}
		out[i] = a
	}
	return out, nil
}
