package alertstate

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Absences: the waits of absent rules. Each group of an absent rule (a rain
// gauge, a street's cameras) has a wait: the moment it counts as silent,
// its last sign of life plus the rule's absent.for. The wait lives beside
// the group's alert, under the alert's hash tag, with the alert's body as
// the silence would fire it; an index of waits by moment, outside every
// slot, tells the sweep where to look. The index is only a hint: every
// decision is taken by a script on the group's own keys, so any number of
// rulers may sweep at once, and a sweeper that dies leaves its work to the
// next sweep (the waits stay indexed until an alert fired for them).

var (
	//go:embed signal.lua
	signalSrc string
	//go:embed silent.lua
	silentSrc string
	//go:embed unindex.lua
	unindexSrc string

	signalScript  = redis.NewScript(signalSrc)
	silentScript  = redis.NewScript(silentSrc)
	unindexScript = redis.NewScript(unindexSrc)
)

// AbsentKey indexes the waits of absent rules' groups by fingerprint,
// scored by when each group counts as silent, in Unix milliseconds.
const AbsentKey = "cityhub:alerts:absent_at"

// absenceKeys returns the alert's hash and its absence hash, which share
// the alert's hash tag.
func absenceKeys(fp string) []string {
	k := keys(fp)
	return []string{k[0], k[0] + ":absent"}
}

// Signal is a sign of life of one group of an absent rule.
type Signal struct {
	// ID is the group's alert's id (its fingerprint).
	ID string
	// EventID and EventTime identify the event.
	EventID   string
	EventTime time.Time
	// For is the rule's absent.for: the group counts as silent at
	// EventTime + For.
	For time.Duration
	// Alert is the group's alert as its silence would fire it, described
	// from this event, for Describe; Signal does not read it.
	Alert *cityhubv1.Alert
}

func (s *Signal) due() int64 { return s.EventTime.Add(s.For).UnixMilli() }

// keep is how long a wait is kept past its moment, so that the keys of a
// group that was removed go in time.
func (s *Signal) keep() int64 { return (s.For + 24*time.Hour).Milliseconds() }

// Signal moves on the waits of the groups signals are signs of life of,
// in one round trip. It returns the ids of their alerts that are firing
// when the signal is later than the one their wait was set by (the silence
// is over: the caller resolves them), and the indexes of the signals whose
// wait does not hold the alert as its silence would fire it yet: the
// caller describes those and hands them to Describe. Describing is most of
// a sign of life's cost, and a device says the same of itself every time.
// Signal is idempotent.
func (s *Store) Signal(ctx context.Context, signals []Signal) (firing []string, bare []int, err error) {
	if len(signals) == 0 {
		return nil, nil, nil
	}
	cmds, err := s.run(ctx, func(p redis.Pipeliner) []*redis.Cmd {
		out := make([]*redis.Cmd, len(signals))
		for i := range signals {
			sg := &signals[i]
			out[i] = signalScript.EvalSha(ctx, p, absenceKeys(sg.ID), sg.due(), sg.EventID, sg.EventTime.UnixMilli(), sg.keep())
			// GT: an older event, redelivered, leaves a later wait indexed.
			p.ZAddGT(ctx, AbsentKey, redis.Z{Score: float64(sg.due()), Member: sg.ID})
		}
		return out
	})
	if err != nil {
		return nil, nil, err
	}
	for i, c := range cmds {
		v, err := c.Slice()
		if err != nil || len(v) != 3 {
			return nil, nil, fmt.Errorf("alertstate: signal %s: reply %v: %v", signals[i].ID, v, err)
		}
		// Only a sign of life later than the one the wait was set by ends
		// a silence: an older event, redelivered, is no news.
		if v[0] == "firing" && v[1] == int64(1) {
			firing = append(firing, signals[i].ID)
		}
		if v[2] == int64(0) {
			bare = append(bare, i)
		}
	}
	return firing, bare, nil
}

// Describe keeps each signal's Alert as the alert its group's silence
// fires, in one round trip.
func (s *Store) Describe(ctx context.Context, signals []Signal) error {
	bodies, err := encodeSignals(signals)
	if err != nil {
		return err
	}
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range signals {
			p.HSet(ctx, absenceKeys(signals[i].ID)[1], "body", bodies[i])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("alertstate: describe silences: %w", err)
	}
	return nil
}

func encodeSignals(signals []Signal) ([][]byte, error) {
	bodies := make([][]byte, len(signals))
	for i := range signals {
		if signals[i].Alert.GetId() != signals[i].ID {
			return nil, fmt.Errorf("alertstate: the alert of signal %s is %q", signals[i].ID, signals[i].Alert.GetId())
		}
		b, err := encodeBody(signals[i].Alert)
		if err != nil {
			return nil, fmt.Errorf("alertstate: encode the alert of %s: %w", signals[i].ID, err)
		}
		bodies[i] = b
	}
	return bodies, nil
}

// Silent returns the Fire updates of at most limit groups whose wait was
// over by now and whose alert does not fire yet: each the alert as its
// last sign of life described it, with that event as the one behind it,
// starting when the wait ended. Applied, they fire the alerts, once
// however many rulers sweep; then Unindex takes the waits off the index.
// Groups that spoke since, or whose alert fires already, are put right in
// the index on the way.
func (s *Store) Silent(ctx context.Context, now time.Time, limit int) ([]Update, error) {
	zs, err := s.c.ZRangeByScoreWithScores(ctx, AbsentKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("alertstate: silent groups: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	cmds, err := s.run(ctx, func(p redis.Pipeliner) []*redis.Cmd {
		out := make([]*redis.Cmd, len(ids))
		for i, id := range ids {
			out[i] = silentScript.EvalSha(ctx, p, absenceKeys(id), now.UnixMilli())
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	replies := make([]silence, len(ids))
	for i, c := range cmds {
		v, err := c.StringSlice()
		if err == nil {
			replies[i], err = silenceOf(ids[i], int64(zs[i].Score), v)
		}
		if err != nil {
			return nil, fmt.Errorf("alertstate: silent %s: %w", ids[i], err)
		}
	}
	updates, fix := silenced(replies)
	if len(fix.later) > 0 || len(fix.done) > 0 {
		if err := s.fixIndex(ctx, fix); err != nil {
			return nil, err
		}
	}
	return updates, nil
}

// Unindex takes the waits the Fire updates of Silent were made from off
// the index, each while a sign of life has not indexed a new one. Call it
// once they are applied: it reads only each update's Alert.Id, which
// Apply leaves as it was.
func (s *Store) Unindex(ctx context.Context, fired []Update) error {
	var fix indexFix
	for _, u := range fired {
		fix.done = append(fix.done, waitOf(u))
	}
	return s.fixIndex(ctx, fix)
}

func (s *Store) fixIndex(ctx context.Context, fix indexFix) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, w := range fix.later {
			p.ZAddGT(ctx, AbsentKey, redis.Z{Score: float64(w.at), Member: w.id})
		}
		if len(fix.done) > 0 {
			args := make([]any, 0, 2*len(fix.done))
			for _, w := range fix.done {
				args = append(args, w.id, w.at)
			}
			// Sent whole: it is short, and a pipeline cannot fall back from
			// EVALSHA when the script cache is empty.
			unindexScript.Eval(ctx, p, []string{AbsentKey}, args...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("alertstate: index of waits: %w", err)
	}
	return nil
}

// silence is what the silent script found of one group.
type silence struct {
	id      string
	indexed int64  // the wait's moment as the index held it, ms
	state   string // gone, later, fired or due
	at      int64  // the wait's moment, ms
	event   string
	body    []byte
}

func silenceOf(id string, indexed int64, v []string) (silence, error) {
	if len(v) == 0 {
		return silence{}, fmt.Errorf("empty reply")
	}
	sl := silence{id: id, indexed: indexed, state: v[0]}
	want := map[string]int{"gone": 1, "later": 2, "fired": 2, "due": 4}[sl.state]
	if want == 0 || len(v) != want {
		return silence{}, fmt.Errorf("reply %q", v)
	}
	if len(v) > 1 {
		at, err := strconv.ParseInt(v[1], 10, 64)
		if err != nil {
			return silence{}, fmt.Errorf("reply %q: %w", v, err)
		}
		sl.at = at
	}
	if sl.state == "due" {
		sl.event, sl.body = v[2], []byte(v[3])
	}
	return sl, nil
}

// wait is one group's wait as the index holds it.
type wait struct {
	id string
	at int64
}

// indexFix is what the index needs: waits to index again at a later
// moment, and waits to take off.
type indexFix struct {
	later, done []wait
}

// silenced turns what the silent script found into Fire updates, and the
// index into what it should be.
func silenced(found []silence) ([]Update, indexFix) {
	var (
		updates []Update
		fix     indexFix
	)
	for _, sl := range found {
		switch sl.state {
		case "gone", "fired":
			fix.done = append(fix.done, wait{sl.id, sl.indexed})
		case "later":
			fix.later = append(fix.later, wait{sl.id, sl.at})
		case "due":
			a := &cityhubv1.Alert{}
			if err := proto.Unmarshal(sl.body, a); err != nil || a.GetId() != sl.id {
				// A body that cannot be read cannot be fired: drop the wait
				// rather than trip over it at every sweep.
				fix.done = append(fix.done, wait{sl.id, sl.indexed})
				continue
			}
			updates = append(updates, Update{Op: Fire, Alert: a, EventID: sl.event, EventTime: time.UnixMilli(sl.at), indexedAt: sl.indexed})
		}
	}
	return updates, fix
}

// waitOf returns the wait, as indexed, a Fire update of Silent was made
// from.
func waitOf(u Update) wait { return wait{u.Alert.GetId(), u.indexedAt} }

// Signal is Store.Signal.
func (m *Memory) Signal(_ context.Context, signals []Signal) (firing []string, bare []int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range signals {
		sg := &signals[i]
		due := sg.due()
		e := m.entry(sg.ID)
		if e.absence == nil {
			e.absence = &absence{}
		}
		moved := due > e.absence.due
		if moved {
			e.absence.due, e.absence.time, e.absence.event = due, sg.EventTime.UnixMilli(), sg.EventID
		}
		if cur, ok := m.indexes[AbsentKey][sg.ID]; !ok || due > cur {
			m.zadd(AbsentKey, due, sg.ID)
		}
		if moved && e.hash != nil && e.hash.state == stateFiring {
			firing = append(firing, sg.ID)
		}
		if e.absence.body == nil {
			bare = append(bare, i)
		}
	}
	return firing, bare, nil
}

// Describe is Store.Describe.
func (m *Memory) Describe(_ context.Context, signals []Signal) error {
	bodies, err := encodeSignals(signals)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range signals {
		e := m.entry(signals[i].ID)
		if e.absence == nil {
			e.absence = &absence{}
		}
		e.absence.body = bodies[i]
	}
	return nil
}

// Silent is Store.Silent.
func (m *Memory) Silent(_ context.Context, now time.Time, limit int) ([]Update, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []silence
	for _, z := range m.indexes[AbsentKey].sorted() {
		if z.score > now.UnixMilli() || (limit > 0 && len(found) == limit) {
			break
		}
		sl := silence{id: z.name, indexed: z.score}
		e := m.alerts[z.name]
		switch {
		case e == nil || e.absence == nil:
			sl.state = "gone"
		case e.absence.due > now.UnixMilli():
			sl.state, sl.at = "later", e.absence.due
		case e.hash != nil && e.hash.state == stateFiring:
			sl.state, sl.at = "fired", e.absence.due
		default:
			sl.state, sl.at, sl.event, sl.body = "due", e.absence.due, e.absence.event, e.absence.body
		}
		found = append(found, sl)
	}
	updates, fix := silenced(found)
	m.fixIndex(fix)
	return updates, nil
}

// Unindex is Store.Unindex.
func (m *Memory) Unindex(_ context.Context, fired []Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var fix indexFix
	for _, u := range fired {
		fix.done = append(fix.done, waitOf(u))
	}
	m.fixIndex(fix)
	return nil
}

func (m *Memory) fixIndex(fix indexFix) {
	for _, w := range fix.later {
		if cur, ok := m.indexes[AbsentKey][w.id]; !ok || w.at > cur {
			m.zadd(AbsentKey, w.at, w.id)
		}
	}
	for _, w := range fix.done {
		if cur, ok := m.indexes[AbsentKey][w.id]; ok && cur == w.at {
			m.zrem(AbsentKey, w.id)
		}
	}
}
