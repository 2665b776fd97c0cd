package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

const testPack = `
pack: flood-control
owner: water-affairs
rules:
  - id: deep-waterlogging
    when: event.type == "waterlogging" && event.attrs.water_depth_cm >= 30
    severity: severe
    group_by: [district, street]
    clear_when: event.type == "waterlogging_cleared"
    title: "积水 {{ .event.attrs.water_depth_cm }} cm：{{ .event.location.street }}"
  - id: broken-title
    when: event.type == "waterlogging" && event.attrs.water_depth_cm >= 30
    severity: minor
    title: "{{ index .labels 3 }}"
  - id: anything-in-huangpu
    when: event.location.district == "huangpu"
    severity: minor
    group_by: [type]
`

func compile(t testing.TB, doc string) []*rulepack.Pack {
	t.Helper()
	p, err := rulepack.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := rulepack.Compile(p, nil); err != nil {
		t.Fatal(err)
	}
	return []*rulepack.Pack{p}
}

func event(typ, district, street string, attrs map[string]any) *cityhubv1.Event {
	s, err := structpb.NewStruct(attrs)
	if err != nil {
		panic(err)
	}
	return &cityhubv1.Event{
		Id: "e1", Source: "iot", Type: typ,
		OccurredAt: timestamppb.New(time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)),
		Location:   &cityhubv1.Location{District: district, Street: street},
		Attrs:      s,
	}
}

func TestEval(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(compile(t, testPack), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker()

	got := w.Eval(event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 35}), nil)
	if len(got) != 2 {
		t.Fatalf("got %d results, want 2: %+v", len(got), got)
	}
	r := got[0]
	if r.Kind != Fire || r.Rule.Name() != "flood-control/deep-waterlogging" {
		t.Fatalf("first result %v %s", r.Kind, r.Rule.Name())
	}
	if r.Labels["district"] != "xuhui" || r.Labels["street"] != "tianping" || len(r.Labels) != 2 {
		t.Errorf("labels = %v", r.Labels)
	}
	if r.Fingerprint != Fingerprint("flood-control/deep-waterlogging", map[string]string{"district": "xuhui", "street": "tianping"}) {
		t.Error("fingerprint is not the hash of the rule and its labels")
	}
	if r.Title != "积水 35 cm：tianping" {
		t.Errorf("title = %q", r.Title)
	}
	var expl []string
	for _, x := range r.Explanation {
		expl = append(expl, x.Expr+" = "+x.Value)
	}
	wantExpl := []string{
		`event.type == "waterlogging" && event.attrs.water_depth_cm >= 30 = true`,
		`event.type = "waterlogging"`,
		`event.type == "waterlogging" = true`,
		`event.attrs.water_depth_cm = 35`,
		`event.attrs.water_depth_cm >= 30 = true`,
	}
	if strings.Join(expl, "\n") != strings.Join(wantExpl, "\n") {
		t.Errorf("explanation:\n%s\nwant:\n%s", strings.Join(expl, "\n"), strings.Join(wantExpl, "\n"))
	}
	// A title that fails at run time falls back to the rule's name.
	if got[1].Title != "flood-control/broken-title" {
		t.Errorf("broken title = %q", got[1].Title)
	}
	if v := testutil.ToFloat64(e.metrics.rules[1].titleErrors); v != 1 {
		t.Errorf("title errors = %v", v)
	}

	// Too shallow: nothing.
	if got := w.Eval(event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 10}), nil); len(got) != 0 {
		t.Errorf("shallow water matched: %+v", got)
	}

	// The clear event yields a Clear for the same alert.
	got = w.Eval(event("waterlogging_cleared", "xuhui", "tianping", nil), nil)
	if len(got) != 1 || got[0].Kind != Clear || got[0].Fingerprint != r.Fingerprint {
		t.Errorf("clear = %+v", got)
	}
}

func TestRunTimeErrorIsCountedAndOtherRulesStillSeeTheEvent(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(compile(t, testPack), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker()
	// water_depth_cm missing: nil >= 30 fails at run time.
	got := w.Eval(event("waterlogging", "huangpu", "nanjing-road", nil), nil)
	if len(got) != 1 || got[0].Rule.ID != "anything-in-huangpu" {
		t.Errorf("results = %+v", got)
	}
	want := `
# HELP cityhub_ruler_rule_errors_total Evaluations of a rule's condition that failed at run time, by rule; the event still reaches the other rules.
# TYPE cityhub_ruler_rule_errors_total counter
cityhub_ruler_rule_errors_total{rule="flood-control/anything-in-huangpu"} 0
cityhub_ruler_rule_errors_total{rule="flood-control/broken-title"} 1
cityhub_ruler_rule_errors_total{rule="flood-control/deep-waterlogging"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cityhub_ruler_rule_errors_total"); err != nil {
		t.Error(err)
	}
}

func TestIndexByType(t *testing.T) {
	e, err := New(compile(t, testPack), Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := func(idx []int) string {
		var s []string
		for _, i := range idx {
			s = append(s, e.rules[i].ID)
		}
		return strings.Join(s, ",")
	}
	if got := names(e.candidates["waterlogging"]); got != "deep-waterlogging,broken-title,anything-in-huangpu" {
		t.Errorf("candidates for waterlogging: %s", got)
	}
	if got := names(e.candidates["waterlogging_cleared"]); got != "deep-waterlogging,anything-in-huangpu" {
		t.Errorf("candidates for waterlogging_cleared: %s", got)
	}
	if got := names(e.anyType); got != "anything-in-huangpu" {
		t.Errorf("rules for any type: %s", got)
	}
	w := e.NewWorker()
	if got := w.Eval(event("gas_leak", "huangpu", "", nil), nil); len(got) != 1 || got[0].Labels["type"] != "gas_leak" {
		t.Errorf("an unindexed type: %+v", got)
	}
}

func TestFingerprint(t *testing.T) {
	base := Fingerprint("flood-control/deep-waterlogging", map[string]string{"district": "xuhui", "street": "tianping"})
	// Stable across runs and releases: alerts in Redis and on Kafka are
	// keyed by it.
	if base != "fe643ba20bd24181" {
		t.Errorf("fingerprint changed: %s", base)
	}
	if len(base) != 16 {
		t.Errorf("fingerprint %q is not 16 hex digits", base)
	}
	// Label order does not matter: rules grouping by the same labels in a
	// different order share alerts.
	for range 20 {
		m := map[string]string{}
		m["street"] = "tianping"
		m["district"] = "xuhui"
		if Fingerprint("flood-control/deep-waterlogging", m) != base {
			t.Fatal("fingerprint depends on map order")
		}
	}
	distinct := map[string][2]any{
		"other street":      {"flood-control/deep-waterlogging", map[string]string{"district": "xuhui", "street": "hengshan"}},
		"other rule":        {"flood-control/waterlogging", map[string]string{"district": "xuhui", "street": "tianping"}},
		"fewer labels":      {"flood-control/deep-waterlogging", map[string]string{"district": "xuhui"}},
		"value moved":       {"flood-control/deep-waterlogging", map[string]string{"district": "xuhuitianping", "street": ""}},
		"names and values":  {"flood-control/deep-waterlogging", map[string]string{"district": "street", "street": "xuhui"}},
		"no labels":         {"flood-control/deep-waterlogging", map[string]string{}},
		"rule absorbs name": {"flood-control/deep-waterloggingdistrict", map[string]string{"street": "tianping"}},
	}
	seen := map[string]string{base: "base"}
	for name, in := range distinct {
		fp := Fingerprint(in[0].(string), in[1].(map[string]string))
		if other, dup := seen[fp]; dup {
			t.Errorf("%s and %s share fingerprint %s", name, other, fp)
		}
		seen[fp] = name
	}
}

func TestGroupByOrderDoesNotChangeTheAlert(t *testing.T) {
	a := compile(t, "pack: p\nowner: o\nrules:\n  - {id: r, when: 'true', severity: minor, group_by: [district, street]}\n")
	b := compile(t, "pack: p\nowner: o\nrules:\n  - {id: r, when: 'true', severity: minor, group_by: [street, district]}\n")
	ev := event("waterlogging", "xuhui", "tianping", nil)
	ea, _ := New(a, Options{})
	eb, _ := New(b, Options{})
	ra, rb := ea.NewWorker().Eval(ev, nil), eb.NewWorker().Eval(ev, nil)
	if ra[0].Fingerprint != rb[0].Fingerprint {
		t.Error("group_by order changed the fingerprint")
	}
}

// TestMatchThenDescribeIsEval: describing Match's results afterwards, in
// any order and with other events evaluated in between, gives exactly
// Eval's results.
func TestMatchThenDescribeIsEval(t *testing.T) {
	cat := loadCatalog(t)
	packs, err := rulepack.LoadDir("../../../rules/packs", cat)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(append(packs, genPacks(t, cat, 200, 3)...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	events := genEvents(cat, 400, 4)
	w, eval := e.NewWorker(), e.NewWorker()
	type matched struct {
		ev *cityhubv1.Event
		r  Result
	}
	var all []matched
	for _, ev := range events {
		for _, r := range w.Match(ev, nil) {
			all = append(all, matched{ev, r})
		}
	}
	described := 0
	// Backwards, so that the worker's current event is never the one
	// described.
	for i := len(all) - 1; i >= 0; i-- {
		m := &all[i]
		if m.r.Kind != Clear && m.r.Title == "" && len(m.r.Explanation) == 0 {
			w.Describe(m.ev, &m.r)
			described++
		}
	}
	var want []Result
	for _, ev := range events {
		want = eval.Eval(ev, want)
	}
	if len(all) != len(want) {
		t.Fatalf("Match gave %d results, Eval %d", len(all), len(want))
	}
	for i, m := range all {
		got, w := m.r, want[i]
		if got.Kind != w.Kind || got.Rule != w.Rule || got.Fingerprint != w.Fingerprint || got.Title != w.Title ||
			got.Summary != w.Summary || got.Severity != w.Severity || got.Distinct != w.Distinct ||
			len(got.Explanation) != len(w.Explanation) {
			t.Fatalf("result %d:\n described %+v\n eval      %+v", i, got, w)
		}
		for j := range got.Explanation {
			if !proto.Equal(got.Explanation[j], w.Explanation[j]) {
				t.Fatalf("result %d, explanation %d: %v, Eval %v", i, j, got.Explanation[j], w.Explanation[j])
			}
		}
	}
	if described < 20 {
		t.Fatalf("only %d results described: the test does not exercise Describe", described)
	}
}
