package alertstate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// TestScriptsMatchMemory runs a few hundred random sequences of batches,
// sweeps, lost alerts and restores on a real redis-server and on Memory,
// each sequence fixed by its seed, and requires the same results and the
// same state after every step: FuzzScriptsMatchMemory with a fixed corpus.
func TestScriptsMatchMemory(t *testing.T) {
	client := redistest.Start(t).Client
	var total coverage
	for seed := range uint64(300) {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 0x5eed))
			data := make([]byte, 400+rnd.IntN(400))
			for i := range data {
				data[i] = byte(rnd.Uint32())
			}
			if err := redistest.Flush(context.Background(), client); err != nil {
				t.Fatal(err)
			}
			total.add(runSequence(t, client, data))
		})
		if !ok {
			return
		}
	}
	t.Logf("%+v", total)
	// The sequences must reach what the scripts do, or agreement proves
	// little.
	for what, n := range map[string]int{
		"state changes within one batch": total.earlier, "windows filled": total.filled,
		"redeliveries": total.redelivered, "updates settled by Tally": total.settled,
		"alerts promoted": total.promoted, "alerts expired": total.expired,
		"severity changes": total.severity, "restores written": total.restored,
		"alerts lost": total.lost, "muted alerts published": total.muted,
	} {
		if n < 20 {
			t.Errorf("only %d %s: the sequences do not exercise the scripts", n, what)
		}
	}
}

// FuzzScriptsMatchMemory holds the scripts to Memory on sequences the fuzzer
// writes: data chooses every operation and argument.
func FuzzScriptsMatchMemory(f *testing.F) {
	client := redistest.Start(f).Client
	for seed := range uint64(8) {
		rnd := rand.New(rand.NewPCG(seed, 0xf022))
		data := make([]byte, 300)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := redistest.Flush(context.Background(), client); err != nil {
			t.Fatal(err)
		}
		runSequence(t, client, data)
	})
}

// choices draws the choices of a sequence from bytes; once they run out
// every choice is the first.
type choices struct{ b []byte }

func (c *choices) intn(n int) int {
	if len(c.b) == 0 || n <= 1 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

// chance is true n times in of.
func (c *choices) chance(n, of int) bool { return c.intn(of) < n }

func oneOf[T any](c *choices, xs ...T) T { return xs[c.intn(len(xs))] }

// coverage counts what a sequence reached.
type coverage struct {
	earlier, filled, redelivered, settled, promoted, expired, severity, restored, lost, muted int
}

func (c *coverage) add(o coverage) {
	c.earlier += o.earlier
	c.filled += o.filled
	c.redelivered += o.redelivered
	c.settled += o.settled
	c.promoted += o.promoted
	c.expired += o.expired
	c.severity += o.severity
	c.restored += o.restored
	c.lost += o.lost
	c.muted += o.muted
}

type sweeper interface {
	Promote(context.Context, time.Time, int) ([]*cityhubv1.Alert, error)
	ResolveDue(context.Context, time.Time, int) ([]*cityhubv1.Alert, error)
}

// rule is what a rule asks of the updates of its alert.
type rule struct {
	name     string
	atLeast  int
	within   time.Duration
	distinct bool
	forDur   time.Duration
	resolve  time.Duration
}

var (
	seqFPs   = []string{"a1", "a2", "b1", "b2"}
	seqRules = []string{"p/a", "p/b"}
)

func ruleOf(fp string) string { return seqRules[slices.Index(seqFPs, fp)/2] }

// runSequence applies the operations data chooses to a Store on client (an
// empty Redis) and to a Memory, and fails t at the first difference.
func runSequence(t *testing.T, client redis.UniversalClient, data []byte) coverage {
	t.Helper()
	ctx := context.Background()
	c := &choices{b: data}
	maxIDs := oneOf(c, 2, 3, 50)
	s, err := New(Options{Client: client, MaxEventIDs: maxIDs})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMemory(Options{MaxEventIDs: maxIDs})
	rules := map[string]rule{}
	for _, fp := range seqFPs {
		rules[fp] = randomRule(c, ruleOf(fp))
	}

	var cov coverage
	now := time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)
	var seen []string // event ids sent, to send again
	var published []*cityhubv1.Alert
	next := 0
	for step := 0; len(c.b) > 0 && step < 60; step++ {
		now = now.Add(oneOf(c, 0, time.Millisecond, 10*time.Second, time.Minute, 3*time.Minute, 7*time.Minute, 25*time.Minute))
		what := fmt.Sprintf("step %d at %s", step, now.Format(time.TimeOnly))
		switch k := c.intn(20); {
		case k < 12:
			specs := make([]updateSpec, 1+c.intn(8))
			for i := range specs {
				specs[i] = randomUpdate(c, rules, now, &seen, &next)
			}
			build := func() []Update {
				out := make([]Update, len(specs))
				for i, sp := range specs {
					out[i] = sp.update()
				}
				return out
			}
			var rs, rm []Result
			var errS, errM error
			if c.chance(1, 2) {
				us, um := build(), build()
				var needS, needM []bool
				needS, errS = s.Tally(ctx, us)
				needM, errM = m.Tally(ctx, um)
				if errS != nil || errM != nil || !slices.Equal(needS, needM) {
					t.Fatalf("%s: Tally: redis %v %v, memory %v %v\n%s", what, needS, errS, needM, errM, describe(specs))
				}
				for _, n := range needS {
					if !n {
						cov.settled++
					}
				}
				rs, errS = s.Apply(ctx, now, kept(us, needS))
				rm, errM = m.Apply(ctx, now, kept(um, needM))
			} else {
				rs, errS = s.Apply(ctx, now, build())
				rm, errM = m.Apply(ctx, now, build())
			}
			if errS != nil || errM != nil {
				t.Fatalf("%s: Apply: redis %v, memory %v", what, errS, errM)
			}
			sameResults(t, what+": Apply\n"+describe(specs), rs, rm)
			for _, r := range rs {
				if r.Alert == nil {
					continue
				}
				published = append(published, proto.Clone(r.Alert).(*cityhubv1.Alert))
				if len(r.Earlier) > 0 {
					cov.earlier++
				}
				if r.redelivered {
					cov.redelivered++
				}
				wasOpen := r.Was == cityhubv1.AlertState_ALERT_STATE_FIRING || r.Was == cityhubv1.AlertState_ALERT_STATE_PENDING
				if r.Changed && !wasOpen && r.Alert.EventCount > 1 {
					cov.filled++ // mostly windows that filled
				}
				if r.Changed && r.WasSeverity != 0 && r.WasSeverity != r.Alert.Severity {
					cov.severity++
				}
				if r.Changed && len(r.Alert.SilencedBy)+len(r.Alert.InhibitedBy) > 0 {
					cov.muted++
				}
			}
		case k < 16:
			limit := oneOf(c, 1, 2, 100)
			sweeps := []struct {
				name string
				run  func(sweeper) ([]*cityhubv1.Alert, error)
				n    *int
			}{
				{"Promote", func(x sweeper) ([]*cityhubv1.Alert, error) { return x.Promote(ctx, now, limit) }, &cov.promoted},
				{"ResolveDue", func(x sweeper) ([]*cityhubv1.Alert, error) { return x.ResolveDue(ctx, now, limit) }, &cov.expired},
			}
			if c.chance(1, 4) {
				// Out of the usual order, which must not matter to agreement.
				sweeps[0], sweeps[1] = sweeps[1], sweeps[0]
			}
			for _, sw := range sweeps {
				as, errS := sw.run(s)
				am, errM := sw.run(m)
				if errS != nil || errM != nil {
					t.Fatalf("%s: %s: redis %v, memory %v", what, sw.name, errS, errM)
				}
				sameAlerts(t, what+": "+sw.name, as, am)
				*sw.n += len(as)
				for _, a := range as {
					if a.Version > 0 {
						published = append(published, proto.Clone(a).(*cityhubv1.Alert))
					}
				}
			}
		case k < 18:
			// Redis lost an alert's keys (a failover), its index entries
			// left behind.
			fp := oneOf(c, seqFPs...)
			if err := client.Del(ctx, keys(fp)...).Err(); err != nil {
				t.Fatal(err)
			}
			delete(m.alerts, fp)
			cov.lost++
		default:
			if len(published) == 0 {
				continue
			}
			a := published[c.intn(len(published))]
			var resolveAt time.Time
			if c.chance(1, 2) {
				resolveAt = now.Add(oneOf(c, -time.Minute, 10*time.Minute))
			}
			ws, errS := s.Restore(ctx, a, resolveAt)
			wm, errM := m.Restore(ctx, a, resolveAt)
			if ws != wm || errS != nil || errM != nil {
				t.Fatalf("%s: Restore v%d of %s: redis %v %v, memory %v %v", what, a.Version, a.Id, ws, errS, wm, errM)
			}
			if ws {
				cov.restored++
			}
		}
		sameState(t, what, client, s, m)
	}
	return cov
}

func randomRule(c *choices, name string) rule {
	r := rule{name: name}
	if c.chance(1, 2) {
		r.atLeast, r.within, r.distinct = oneOf(c, 2, 3), oneOf(c, time.Minute, 10*time.Minute), c.chance(1, 3)
	}
	if c.chance(1, 3) {
		r.forDur = oneOf(c, time.Minute, 5*time.Minute)
	}
	if c.chance(2, 3) {
		r.resolve = oneOf(c, 2*time.Minute, 8*time.Minute, 30*time.Minute)
	}
	return r
}

// updateSpec is an update, to be built afresh for each store: a Fire
// update's Alert may become the Result's.
type updateSpec struct {
	op        Op
	fp        string
	rule      rule
	event     string
	at        time.Time
	value     string
	sev       cityhubv1.Severity
	silenced  []string
	inhibited []string
	title     string
}

func (sp updateSpec) update() Update {
	switch sp.op {
	case Resolve:
		return Update{Op: Resolve, Alert: &cityhubv1.Alert{Id: sp.fp}}
	case Mute:
		return Update{Op: Mute, Alert: &cityhubv1.Alert{Id: sp.fp, SilencedBy: sp.silenced, InhibitedBy: sp.inhibited}}
	}
	a := &cityhubv1.Alert{
		Id: sp.fp, Rule: sp.rule.name, Pack: "p", Severity: sp.sev, Title: sp.title,
		Labels:   map[string]string{"district": "xuhui", "street": sp.fp, "fp": sp.fp},
		District: "xuhui", SilencedBy: sp.silenced, InhibitedBy: sp.inhibited,
	}
	return Update{
		Op: Fire, Alert: a, EventID: sp.event, EventTime: sp.at,
		AtLeast: sp.rule.atLeast, Within: sp.rule.within, CountDistinct: sp.rule.distinct, Distinct: sp.value,
		For: sp.rule.forDur, ResolveAfter: sp.rule.resolve,
	}
}

func randomUpdate(c *choices, rules map[string]rule, now time.Time, seen *[]string, next *int) updateSpec {
	fp := oneOf(c, seqFPs...)
	sp := updateSpec{fp: fp, rule: rules[fp]}
	marks := func() []string {
		return oneOf(c, nil, []string{"works"}, []string{"works", "parade"}, []string{"src1"})
	}
	switch k := c.intn(20); {
	case k < 3:
		sp.op = Resolve
		return sp
	case k < 5:
		sp.op, sp.silenced, sp.inhibited = Mute, marks(), marks()
		return sp
	}
	sp.op = Fire
	switch c.intn(12) {
	case 0:
		// The rule changed (a reload): the same alert, asked otherwise.
		sp.rule = randomRule(c, sp.rule.name)
	case 1:
		// It started or stopped counting distinct values: the window
		// holds members of the other kind.
		sp.rule.distinct = !sp.rule.distinct
	}
	if len(*seen) > 0 && c.chance(1, 5) {
		// Redelivered: mostly one of the last few, which an alert or a
		// window may still hold.
		sp.event = (*seen)[len(*seen)-1-c.intn(min(len(*seen), 10))]
	} else {
		sp.event = fmt.Sprintf("src/e%d", *next)
		*next++
		*seen = append(*seen, sp.event)
	}
	sp.at = now.Add(-oneOf(c, 0, time.Second, 30*time.Second, 2*time.Minute, 12*time.Minute, -time.Minute))
	sp.value = oneOf(c, "", "alice", "bob", "carol")
	sp.sev = oneOf(c, cityhubv1.Severity_SEVERITY_MINOR, cityhubv1.Severity_SEVERITY_SEVERE, cityhubv1.Severity_SEVERITY_EXTREME)
	if c.chance(1, 3) {
		sp.silenced, sp.inhibited = marks(), marks()
	}
	sp.title = oneOf(c, "积水 30 cm", "积水 45 cm")
	return sp
}

func describe(specs []updateSpec) string {
	s := ""
	for _, sp := range specs {
		s += fmt.Sprintf("  op %d %s %s at %s value %q rule %+v\n", sp.op, sp.fp, sp.event, sp.at.Format(time.TimeOnly), sp.value, sp.rule)
	}
	return s
}

func kept(us []Update, need []bool) []Update {
	var out []Update
	for i, u := range us {
		if need[i] {
			out = append(out, u)
		}
	}
	return out
}

func sameResults(t *testing.T, what string, rs, rm []Result) {
	t.Helper()
	if len(rs) != len(rm) {
		t.Fatalf("%s: redis %d results, memory %d", what, len(rs), len(rm))
	}
	for i := range rs {
		a, b := rs[i], rm[i]
		if a.Changed != b.Changed || a.Was != b.Was || a.WasSeverity != b.WasSeverity ||
			a.redelivered != b.redelivered || a.resolveAt != b.resolveAt {
			t.Fatalf("%s: result %d:\n redis  changed=%v was=%v/%v redelivered=%v resolve_at=%d\n memory changed=%v was=%v/%v redelivered=%v resolve_at=%d",
				what, i, a.Changed, a.Was, a.WasSeverity, a.redelivered, a.resolveAt, b.Changed, b.Was, b.WasSeverity, b.redelivered, b.resolveAt)
		}
		sameAlerts(t, fmt.Sprintf("%s: result %d", what, i), append(slices.Clone(a.Earlier), a.Alert), append(slices.Clone(b.Earlier), b.Alert))
	}
}

func sameAlerts(t *testing.T, what string, as, am []*cityhubv1.Alert) {
	t.Helper()
	if len(as) != len(am) {
		t.Fatalf("%s: redis %d alerts, memory %d\n redis  %v\n memory %v", what, len(as), len(am), as, am)
	}
	for i := range as {
		if !proto.Equal(as[i], am[i]) {
			t.Fatalf("%s: alert %d:\n redis  %v\n memory %v", what, i, as[i], am[i])
		}
	}
}

// sameState compares everything Redis holds with what m holds: each
// alert's hash field by field, its event ids, its window with scores,
// which of them expire, every index; and what the reads return.
func sameState(t *testing.T, what string, client redis.UniversalClient, s *Store, m *Memory) {
	t.Helper()
	ctx := context.Background()
	type alertCmds struct {
		hash               *redis.MapStringStringCmd
		events             *redis.StringSliceCmd
		window             *redis.ZSliceCmd
		hashTTL, eventsTTL *redis.DurationCmd
		windowTTL          *redis.DurationCmd
	}
	cmds := map[string]*alertCmds{}
	idx := map[string]*redis.ZSliceCmd{}
	indexKeys := []string{FiringKey, PendingKey, ResolveKey}
	for _, r := range seqRules {
		indexKeys = append(indexKeys, RuleKey(r))
	}
	_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, fp := range seqFPs {
			k := keys(fp)
			cmds[fp] = &alertCmds{
				hash: p.HGetAll(ctx, k[0]), events: p.LRange(ctx, k[1], 0, -1), window: p.ZRangeWithScores(ctx, k[2], 0, -1),
				hashTTL: p.PTTL(ctx, k[0]), eventsTTL: p.PTTL(ctx, k[1]), windowTTL: p.PTTL(ctx, k[2]),
			}
		}
		for _, key := range indexKeys {
			idx[key] = p.ZRangeWithScores(ctx, key, 0, -1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	expires := func(c *redis.DurationCmd) bool { return c.Val() > 0 }
	for _, fp := range seqFPs {
		c := cmds[fp]
		e := m.alerts[fp]
		if e == nil {
			e = &entry{}
		}
		h := c.hash.Val()
		switch {
		case len(h) == 0 && e.hash != nil:
			t.Fatalf("%s: alert %s: no hash in redis, memory %+v", what, fp, *e.hash)
		case len(h) > 0 && e.hash == nil:
			t.Fatalf("%s: alert %s: hash in redis %v, none in memory", what, fp, h)
		case len(h) > 0:
			var r record
			for name, v := range h {
				if _, ok := columnByName[name]; !ok {
					t.Fatalf("%s: alert %s: hash field %q is no column", what, fp, name)
				}
				if err := r.set(name, v); err != nil {
					t.Fatalf("%s: alert %s: %v", what, fp, err)
				}
			}
			if len(h) != len(columns) {
				t.Fatalf("%s: alert %s: %d hash fields, want every one of %v", what, fp, len(h), columnNames)
			}
			mr := *e.hash
			// Encoding a body is not deterministic (map order): compare
			// what they decode to.
			bs, bm := new(cityhubv1.Alert), new(cityhubv1.Alert)
			if proto.Unmarshal([]byte(r.body), bs) != nil || proto.Unmarshal([]byte(mr.body), bm) != nil || !proto.Equal(bs, bm) {
				t.Fatalf("%s: alert %s: body\n redis  %v\n memory %v", what, fp, bs, bm)
			}
			r.body, mr.body = "", ""
			if r != mr {
				t.Fatalf("%s: alert %s: hash\n redis  %+v\n memory %+v", what, fp, r, mr)
			}
			if expires(c.hashTTL) != e.hashTTL {
				t.Fatalf("%s: alert %s: hash expires: redis %v, memory %v", what, fp, c.hashTTL.Val(), e.hashTTL)
			}
		}
		if ev := c.events.Val(); !slices.Equal(ev, e.events) {
			t.Fatalf("%s: alert %s: event ids: redis %v, memory %v", what, fp, ev, e.events)
		}
		if len(e.events) > 0 && expires(c.eventsTTL) != e.eventsTTL {
			t.Fatalf("%s: alert %s: event ids expire: redis %v, memory %v", what, fp, c.eventsTTL.Val(), e.eventsTTL)
		}
		var w []member
		for _, z := range c.window.Val() {
			w = append(w, member{int64(z.Score), z.Member.(string)})
		}
		if !slices.Equal(w, e.window) {
			t.Fatalf("%s: alert %s: window: redis %v, memory %v", what, fp, w, e.window)
		}
		if len(w) > 0 && !expires(c.windowTTL) {
			t.Fatalf("%s: alert %s: a window that does not expire", what, fp)
		}
	}
	for _, key := range indexKeys {
		var got []member
		for _, z := range idx[key].Val() {
			got = append(got, member{int64(z.Score), z.Member.(string)})
		}
		if want := m.indexes[key].sorted(); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("%s: index %s: redis %v, memory %v", what, key, got, want)
		}
	}

	// The reads, each on both.
	for _, fp := range seqFPs {
		as, errS := s.Get(ctx, fp)
		am, errM := m.Get(ctx, fp)
		if errS != errM || !proto.Equal(as, am) {
			t.Fatalf("%s: Get %s: redis %v %v, memory %v %v", what, fp, as, errS, am, errM)
		}
	}
	for _, read := range []struct {
		name string
		s, m func() ([]*cityhubv1.Alert, error)
	}{
		{"Firing", func() ([]*cityhubv1.Alert, error) { return s.Firing(ctx) }, func() ([]*cityhubv1.Alert, error) { return m.Firing(ctx) }},
		{"Pending", func() ([]*cityhubv1.Alert, error) { return s.Pending(ctx) }, func() ([]*cityhubv1.Alert, error) { return m.Pending(ctx) }},
		{"OfRule", func() ([]*cityhubv1.Alert, error) { return s.OfRule(ctx, seqRules[0], 1) }, func() ([]*cityhubv1.Alert, error) { return m.OfRule(ctx, seqRules[0], 1) }},
	} {
		as, errS := read.s()
		am, errM := read.m()
		if errS != nil || errM != nil {
			t.Fatalf("%s: %s: redis %v, memory %v", what, read.name, errS, errM)
		}
		sameAlerts(t, what+": "+read.name, as, am)
	}
	os, errS := s.OpenOf(ctx, seqRules, 2)
	om, errM := m.OpenOf(ctx, seqRules, 2)
	if errS != nil || errM != nil {
		t.Fatalf("%s: OpenOf: redis %v, memory %v", what, errS, errM)
	}
	if len(os) != len(om) {
		t.Fatalf("%s: OpenOf: redis %v, memory %v", what, os, om)
	}
	for rule := range os {
		sameAlerts(t, what+": OpenOf "+rule, os[rule], om[rule])
	}
}
