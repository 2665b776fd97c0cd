package engine

import (
	"testing"

	"github.com/expr-lang/expr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/fastpath"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// verdict is what running a condition gives: whether it held, and whether
// it failed.
type verdict struct {
	held, failed bool
}

func (v verdict) String() string {
	switch {
	case v.failed:
		return "error"
	case v.held:
		return "true"
	}
	return "false"
}

// reference runs rulepack's program as compiled, on a freshly filled
// environment: the meaning the direct evaluation must keep.
func reference(t testing.TB, r *rulepack.Rule, clear bool, ev *cityhubv1.Event) verdict {
	t.Helper()
	var env rulepack.Env
	env.Reset(ev)
	p := r.Program
	if clear {
		p = r.ClearProgram
	}
	v, err := expr.Run(p, &env)
	return verdict{held: err == nil && v == true, failed: err != nil}
}

// direct runs the fast path's program of rule i of e on ev through w.
func direct(w *Worker, i int, clear bool, ev *cityhubv1.Event) verdict {
	p := w.e.fast.When(i)
	if clear {
		p = w.e.fast.Clear(i)
	}
	m := w.e.metrics.rules[i]
	before := errorsOf(m)
	w.begin(ev)
	held := w.holdsDirect(p, m)
	return verdict{held: held, failed: errorsOf(m) > before}
}

func errorsOf(m *ruleMetrics) float64 { return testutil.ToFloat64(m.errors) }

func checkSame(t *testing.T, e *Engine, events []*cityhubv1.Event) {
	t.Helper()
	w := e.NewWorker()
	for i, r := range e.rules {
		for _, ev := range events {
			for _, clear := range []bool{false, true} {
				if clear && r.ClearProgram == nil {
					continue
				}
				want := reference(t, r, clear, ev)
				if got := direct(w, i, clear, ev); got != want {
					src := r.When
					if clear {
						src = r.ClearWhen
					}
					t.Errorf("%s on %v: direct %v, expr %v", src, ev, got, want)
				}
			}
		}
	}
}

// TestDirectMatchesExprOnGeneratedPacks compares verdicts on the packs and
// events the benchmarks use.
func TestDirectMatchesExprOnGeneratedPacks(t *testing.T) {
	cat := loadCatalog(t)
	e, err := New(genPacks(t, cat, 300, 7), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, e, genEvents(cat, 300, 8))
	for i, r := range e.rules {
		if d := e.fast.When(i); !d.Patched() || d.NeedsEnv() {
			t.Errorf("%s: patched %v, needs the environment %v", r.When, d.Patched(), d.NeedsEnv())
		}
	}
}

// TestDirectMatchesExprOnCityPacks compares verdicts on the city's own
// packs, whose in_area conditions run on the fast path with the
// environment.
func TestDirectMatchesExprOnCityPacks(t *testing.T) {
	cat := loadCatalog(t)
	packs, err := rulepack.LoadDir("../../../rules/packs", cat)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(packs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	events := genEvents(cat, 400, 9)
	for _, ev := range events[:100] {
		ev.Location.Lon, ev.Location.Lat = 121.4378, 31.1990 // at a school's gate
	}
	checkSame(t, e, events)
}

// TestStatelessPathDoesNotAllocate proves the stateless path allocation
// free on the city's own packs: an event no rule matches costs nothing but
// CPU, and neither does deciding that a rule matches; only building the
// Result of a match allocates (its labels, fingerprint, title and
// explanation).
func TestStatelessPathDoesNotAllocate(t *testing.T) {
	cat := loadCatalog(t)
	packs, err := rulepack.LoadDir("../../../rules/packs", cat)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(packs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range e.rules {
		for _, p := range []*fastpath.Program{e.fast.When(i), e.fast.Clear(i)} {
			if p != nil && (!p.Native() || p.NeedsEnv()) {
				// Allowed (helpers, arithmetic, time), but the events below
				// must then avoid its event types.
				t.Logf("rule %s is not on the stateless path (compiled to Go %v, needs the environment %v)", r.Name(), p.Native(), p.NeedsEnv())
			}
		}
	}
	w := e.NewWorker()
	out := make([]Result, 0, 8)
	// Readings without the sensor's or the gauge's id: with one, each is a
	// sign of life for an absent rule.
	quiet := []*cityhubv1.Event{
		event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 12, "camera_id": "c-17", "rain_mm_h": 12}),
		event("gas_leak", "xuhui", "tianping", map[string]any{"lel_percent": 3, "ch4_ppm": 40, "indoor": true}),
		event("rainfall", "pudong", "", map[string]any{"rain_mm_h": 20}),
		event("traffic_congestion", "pudong", "", map[string]any{"speed_kmh": 7, "camera_id": "c-1"}),
		event("noise_complaint", "jingan", "", nil),
	}
	for _, ev := range quiet {
		if got := w.Eval(ev, out[:0]); len(got) != 0 {
			t.Fatalf("%s matched %s", ev.GetType(), got[0].Rule.Name())
		}
		if n := testing.AllocsPerRun(200, func() { out = w.Eval(ev, out[:0]) }); n != 0 {
			t.Errorf("Eval of a %s event that matches nothing: %v allocations, want 0", ev.GetType(), n)
		}
	}

	// Matching events, up to the verdict.
	loud := []*cityhubv1.Event{
		event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 35}),
		event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 18}),
		event("rainfall", "pudong", "", map[string]any{"rain_mm_h": 80}),
		event("gas_leak", "xuhui", "", map[string]any{"lel_percent": 30}),
		event("manhole_cover_missing", "xuhui", "", map[string]any{"cover_id": "m-1"}),
	}
	for _, ev := range loud {
		matched := 0
		for i, r := range e.rules {
			p, m := e.fast.When(i), e.metrics.rules[i]
			w.begin(ev)
			if !w.verdict(p, m) {
				continue
			}
			matched++
			if n := testing.AllocsPerRun(200, func() { w.begin(ev); w.verdict(p, m) }); n != 0 {
				t.Errorf("deciding that %s matches a %s event: %v allocations, want 0", r.Name(), ev.GetType(), n)
			}
		}
		if matched == 0 {
			t.Errorf("no rule matched the %s event %v", ev.GetType(), ev.GetAttrs())
		}
	}
}
