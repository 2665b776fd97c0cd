package fastpath

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
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
// environment: the meaning the fast path must keep.
func reference(p *vm.Program, ev *cityhubv1.Event) verdict {
	var env rulepack.Env
	env.Reset(ev)
	v, err := expr.Run(p, &env)
	return verdict{held: err == nil && v == true, failed: err != nil}
}

// decoy is what the environment holds when a program says it does not
// need it: a program that reads it all the same gives a wrong verdict.
var decoy = &cityhubv1.Event{Id: "decoy", Type: "decoy", Location: &cityhubv1.Location{District: "decoy", Lon: 1, Lat: 1}}

// run runs p on ev as the engine's workers do.
func run(r *Runner, env *rulepack.Env, p *Program, ev *cityhubv1.Event) verdict {
	r.Begin(ev)
	if p.NeedsEnv() {
		env.Reset(ev)
	} else {
		env.Reset(decoy)
	}
	held, err := r.Run(p)
	return verdict{held: held, failed: err != nil}
}

// checkSame compiles conds as the conditions and clear conditions of a
// pack and compares the verdicts of both ways on events. Every condition
// must run patched.
func checkSame(t *testing.T, cat *catalog.Catalog, conds []string, events []*cityhubv1.Event) {
	t.Helper()
	doc := "pack: p\nowner: water-affairs\nrules:\n"
	for i, c := range conds {
		doc += fmt.Sprintf("  - id: r%d\n    when: %q\n    severity: minor\n    clear_when: %q\n", i, c, c)
	}
	p, err := rulepack.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := rulepack.Compile(p, cat); err != nil {
		t.Fatal(err)
	}
	c := Compile(p.Rules)
	var machine vm.VM
	var env rulepack.Env
	r := c.NewRunner(&machine, &env)
	for i, rule := range p.Rules {
		for _, ev := range events {
			if got, want := run(r, &env, c.When(i), ev), reference(rule.Program, ev); got != want {
				t.Errorf("%s on %v: fast path %v, expr %v", rule.When, ev, got, want)
			}
			if got, want := run(r, &env, c.Clear(i), ev), reference(rule.ClearProgram, ev); got != want {
				t.Errorf("clear_when %s on %v: fast path %v, expr %v", rule.ClearWhen, ev, got, want)
			}
		}
		if !c.When(i).Patched() {
			t.Errorf("%s: not patched", rule.When)
		}
	}
}

func event(typ string, attrs map[string]*structpb.Value, lon, lat float64) *cityhubv1.Event {
	return &cityhubv1.Event{
		Id: "e1", Source: "iot", Type: typ,
		OccurredAt: timestamppb.New(time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)),
		Location:   &cityhubv1.Location{District: "xuhui", Street: "tianping", Address: "1号", Lon: lon, Lat: lat},
		Severity:   cityhubv1.Severity_SEVERITY_SEVERE,
		Attrs:      &structpb.Struct{Fields: attrs},
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
			events = append(events, event(typ, a, 121.43, 31.18))
		}
	}
	events = append(events, &cityhubv1.Event{Id: "bare"}) // no location, no attrs, no time
	checkSame(t, nil, conds, events)
}

// TestPlacesMatchExpr covers in_area and distance_m, which the fast path
// compiles with rulepack's options (and so with the same catalog): their
// conditions run patched, with the environment.
func TestPlacesMatchExpr(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conds := []string{
		`event.type == "waterlogging" && in_area(event.location, "school-zones")`,
		`in_area(event.location, "school-zones") || event.location.district == "huangpu"`,
		`distance_m(event.location, [121.4378, 31.1990]) < 300 && (event.attrs.water_depth_cm ?? 0) >= 30`,
		`event.type == "rainfall" && distance_m([121.4378, 31.1990], event.location) >= 300`,
	}
	var events []*cityhubv1.Event
	for _, at := range [][2]float64{{121.4378, 31.1990}, {121.4399, 31.1990}, {121.4378, 31.2080}, {0, 0}} {
		for _, typ := range []string{"waterlogging", "rainfall"} {
			for _, depth := range []float64{12, 35} {
				events = append(events, event(typ, map[string]*structpb.Value{"water_depth_cm": structpb.NewNumberValue(depth)}, at[0], at[1]))
			}
		}
	}
	events = append(events, &cityhubv1.Event{Id: "bare"})
	checkSame(t, cat, conds, events)
}

// TestTimeFunctionsMatchExpr covers local_hour and working_time, to which
// rulepack's options pass event.occurred_at: compiled with the comparison
// patch as well, they run patched, with the environment, on the same
// calendar.
func TestTimeFunctionsMatchExpr(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conds := []string{
		`event.type == "noise_complaint" && (local_hour() >= 22 || local_hour() < 6)`,
		`working_time() && event.source == "hotline"`,
		`!working_time() || local_hour() == 12`,
		`local_hour() in 9..17 && event.type != "rainfall"`,
	}
	var events []*cityhubv1.Event
	cst := time.FixedZone("CST", 8*3600)
	for _, at := range []time.Time{
		time.Date(2026, 7, 1, 10, 0, 0, 0, cst),  // working time
		time.Date(2026, 7, 1, 12, 30, 0, 0, cst), // lunch
		time.Date(2026, 7, 1, 23, 0, 0, 0, cst),  // night
		time.Date(2026, 10, 1, 10, 0, 0, 0, cst), // a holiday
		time.Date(2026, 10, 10, 9, 0, 0, 0, cst), // a make-up working Saturday
	} {
		for _, typ := range []string{"noise_complaint", "rainfall"} {
			for _, src := range []string{"hotline", "iot"} {
				ev := event(typ, nil, 121.43, 31.18)
				ev.Source, ev.OccurredAt = src, timestamppb.New(at)
				events = append(events, ev)
			}
		}
	}
	events = append(events, &cityhubv1.Event{Id: "bare"})
	checkSame(t, cat, conds, events)
}
