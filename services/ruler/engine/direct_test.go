package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/structpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
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

// direct runs the direct program of rule i of e on ev through w.
func direct(w *Worker, i int, clear bool, ev *cityhubv1.Event) verdict {
	p := &w.e.direct[i].when
	if clear {
		p = &w.e.direct[i].clear
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

// TestDirectMatchesExpr checks that the patched programs give the verdict
// rulepack's programs give, on every hard case of expr's comparisons.
func TestDirectMatchesExpr(t *testing.T) {
	conds := []string{
		`event.type == "waterlogging"`,
		`event.type != "waterlogging"`,
		`"waterlogging" == event.type`,
		`event.type in ["waterlogging", "rainfall"]`,
		`event.type not in ["waterlogging", "rainfall"]`,
		`event.attrs.depth >= 30`,
		`event.attrs.depth > 30.5`,
		`event.attrs.depth < -1`,
		`30 <= event.attrs.depth`,
		`(event.attrs.depth ?? 0) >= 30`,
		`(event.attrs.depth ?? "x") == "x"`,
		`(event.attrs.depth ?? nil) == nil`,
		`event.attrs.depth == 35`,
		`event.attrs.depth != 35`,
		`event.attrs.depth == nil`,
		`event.attrs.depth == "35"`,
		`event.attrs.name == "abc"`,
		`event.attrs.name >= "abb"`,
		`event.attrs.name < 3`,
		`event.attrs.flag == true`,
		`event.attrs.flag != false`,
		`event.attrs.flag > 1`,
		`event.attrs.list == nil`,
		`event.attrs.list >= 1`,
		`event.attrs["depth"] >= 30`,
		`event.location.lon > 121.4 && event.location.lat <= 31.2`,
		`event.location.district == "xuhui" || event.location.street == "tianping"`,
		`event.location.street contains "ping"`,
		`event.location.street startsWith "tian" && event.location.address endsWith "号"`,
		`"tianping road" contains event.location.street`,
		`event.severity == "severe" && event.source != "hotline"`,
		`event.text == "" && event.id == "e1"`,
		`event.location.district == event.location.street`,
		`!(event.attrs.depth >= 30) || event.type == "rainfall"`,
		`event.attrs.depth * 2 >= 60`,
		`len(event.location.street) > 3 && event.attrs.depth >= 30`,
		`event.occurred_at.Year() == 2025`,
		`any([1, 2], # > 1) && event.type == "waterlogging"`,
	}
	doc := "pack: p\nowner: o\nrules:\n"
	for i, c := range conds {
		doc += fmt.Sprintf("  - id: r%d\n    when: %q\n    severity: minor\n    clear_when: %q\n", i, c, c)
	}
	e, err := New(compile(t, doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := structpb.NewList([]any{1, "a"})
	attrs := []map[string]*structpb.Value{
		nil,
		{"depth": structpb.NewNumberValue(35), "name": structpb.NewStringValue("abc"), "flag": structpb.NewBoolValue(true)},
		{"depth": structpb.NewNumberValue(30), "name": structpb.NewStringValue("ab"), "flag": structpb.NewBoolValue(false)},
		{"depth": structpb.NewNumberValue(-3), "name": structpb.NewNumberValue(2)},
		{"depth": structpb.NewStringValue("35"), "flag": structpb.NewNullValue()},
		{"depth": structpb.NewNullValue(), "list": structpb.NewListValue(list)},
		{"depth": structpb.NewNumberValue(math.NaN())},
		{"depth": structpb.NewBoolValue(true), "list": structpb.NewStructValue(&structpb.Struct{})},
	}
	var events []*cityhubv1.Event
	for _, a := range attrs {
		for _, typ := range []string{"waterlogging", "rainfall"} {
			ev := event(typ, "xuhui", "tianping", nil)
			ev.Attrs = &structpb.Struct{Fields: a}
			ev.Location.Address = "1号"
			ev.Location.Lon, ev.Location.Lat = 121.43, 31.18
			ev.Severity = cityhubv1.Severity_SEVERITY_SEVERE
			events = append(events, ev)
		}
	}
	events = append(events, &cityhubv1.Event{Id: "bare"}) // no location, no attrs, no time
	checkSame(t, e, events)

	// Every condition above but those that read event data the tests do
	// not cover runs without the environment.
	for i, r := range e.rules {
		d := e.direct[i].when
		if !d.patched {
			t.Errorf("%s: not patched", r.When)
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
		if d := e.direct[i].when; !d.patched || d.needsEnv {
			t.Errorf("%s: patched %v, needs the environment %v", r.When, d.patched, d.needsEnv)
		}
	}
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
		for _, p := range []directProgram{e.direct[i].when, e.direct[i].clear} {
			if p.program != nil && (p.eval == nil || p.needsEnv) {
				// Allowed (helpers, arithmetic, time), but the events below
				// must then avoid its event types.
				t.Logf("rule %s is not on the stateless path (compiled to Go %v, needs the environment %v)", r.Name(), p.eval != nil, p.needsEnv)
			}
		}
	}
	w := e.NewWorker()
	out := make([]Result, 0, 8)
	quiet := []*cityhubv1.Event{
		event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 12, "camera_id": "c-17", "rain_mm_h": 12}),
		event("gas_leak", "xuhui", "tianping", map[string]any{"lel_percent": 3, "ch4_ppm": 40, "sensor_id": "g-1", "indoor": true}),
		event("rainfall", "pudong", "", map[string]any{"rain_mm_h": 20, "gauge_id": "r-3"}),
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
			p, m := &e.direct[i].when, e.metrics.rules[i]
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
