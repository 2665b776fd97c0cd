package alerting_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/ruler/alerting"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

const (
	pending  = cityhubv1.AlertState_ALERT_STATE_PENDING
	firing   = cityhubv1.AlertState_ALERT_STATE_FIRING
	resolved = cityhubv1.AlertState_ALERT_STATE_RESOLVED
)

// harness runs a processor over packs written inline, against a real
// Redis, on a clock the test moves.
type harness struct {
	t     *testing.T
	proc  *alerting.Processor
	store *alertstate.Store
	n     int
}

func newHarness(t *testing.T, packs ...string) *harness {
	t.Helper()
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i, p := range packs {
		f := fmt.Sprintf("%s/p%d.yaml", dir, i)
		if err := os.WriteFile(f, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	loaded, err := rulepack.LoadFiles(cat, files...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(loaded, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := alertstate.New(alertstate.Options{Client: redistest.Start(t).Client})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, proc: alerting.New(e, s), store: s}
}

// at sweeps at t0+d, then processes evs there, and returns what a ruler
// would publish.
func (h *harness) at(d time.Duration, evs ...*cityhubv1.Event) []*cityhubv1.Alert {
	h.t.Helper()
	now := t0.Add(d)
	swept, err := h.proc.Sweep(context.Background(), now)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Id == "" {
			h.n++
			ev.Id = fmt.Sprintf("ev-%d", h.n)
		}
		ev.OccurredAt = timestamppb.New(now)
	}
	got, err := h.proc.Process(context.Background(), now, evs)
	if err != nil {
		h.t.Fatal(err)
	}
	return append(swept, got...)
}

// alert returns the stored alert of rule with labels.
func (h *harness) alert(rule string, labels map[string]string) *cityhubv1.Alert {
	h.t.Helper()
	a, err := h.store.Get(context.Background(), engine.Fingerprint(rule, labels))
	if err != nil {
		h.t.Fatalf("%s %v: %v", rule, labels, err)
	}
	return a
}

func ev(typ, source, district, street string, attrs map[string]any) *cityhubv1.Event {
	s, err := structpb.NewStruct(attrs)
	if err != nil {
		panic(err)
	}
	return &cityhubv1.Event{
		Source: source, Type: typ, Attrs: s,
		Location: &cityhubv1.Location{District: district, Street: street, Lon: 121.437, Lat: 31.196},
	}
}

func depth(cm float64, street string) *cityhubv1.Event {
	return ev("waterlogging", "iot", "xuhui", street, map[string]any{"water_depth_cm": cm})
}

const floodPack = `
pack: flood
owner: water-affairs
rules:
  - id: waterlogging
    when: event.type == "waterlogging" && (event.attrs.water_depth_cm ?? 0) >= 15
    severity: minor
    escalate:
      - {when: event.attrs.water_depth_cm >= 50, severity: severe}
      - {when: event.attrs.water_depth_cm >= 30, severity: moderate}
    group_by: [district, street]
    resolve_after: 1h
    clear_when: >-
      event.type == "waterlogging_cleared"
      || (event.type == "waterlogging" && (event.attrs.water_depth_cm ?? 0) < 5)
    dispatch: default
`

func TestEscalationAndHysteresis(t *testing.T) {
	h := newHarness(t, floodPack)
	labels := map[string]string{"district": "xuhui", "street": "tianping"}
	steps := []struct {
		at       time.Duration
		cm       float64
		state    cityhubv1.AlertState
		severity cityhubv1.Severity
		prev     cityhubv1.Severity
		version  int64
	}{
		{0, 20, firing, cityhubv1.Severity_SEVERITY_MINOR, 0, 1},
		{5 * time.Minute, 35, firing, cityhubv1.Severity_SEVERITY_MODERATE, cityhubv1.Severity_SEVERITY_MINOR, 2},
		{10 * time.Minute, 55, firing, cityhubv1.Severity_SEVERITY_SEVERE, cityhubv1.Severity_SEVERITY_MODERATE, 3},
		{15 * time.Minute, 25, firing, cityhubv1.Severity_SEVERITY_MINOR, cityhubv1.Severity_SEVERITY_SEVERE, 4},
		// Between the clear level and the alert level: nothing changes
		// (hysteresis), and the resolve_after clock is not reset.
		{20 * time.Minute, 10, firing, cityhubv1.Severity_SEVERITY_MINOR, cityhubv1.Severity_SEVERITY_SEVERE, 4},
		// Below the clear level: resolved.
		{25 * time.Minute, 3, resolved, cityhubv1.Severity_SEVERITY_MINOR, cityhubv1.Severity_SEVERITY_SEVERE, 5},
	}
	var id string
	for _, s := range steps {
		got := h.at(s.at, depth(s.cm, "tianping"))
		a := h.alert("flood/waterlogging", labels)
		if a.State != s.state || a.Severity != s.severity || a.PreviousSeverity != s.prev || a.Version != s.version {
			t.Errorf("at %s, %v cm: %s %s (was %s) v%d; want %s %s (was %s) v%d", s.at, s.cm,
				a.State.Name(), a.Severity.Name(), a.PreviousSeverity.Name(), a.Version,
				s.state.Name(), s.severity.Name(), s.prev.Name(), s.version)
		}
		if id != "" && a.Id != id {
			t.Errorf("at %s: a new alert %s", s.at, a.Id)
		}
		id = a.Id
		if s.cm == 10 && len(got) != 0 {
			t.Errorf("an event in the dead band published %v", got)
		}
	}
	if d := h.alert("flood/waterlogging", labels).Dispatch; d.GetLead() != "water-affairs" || d.GetCaseClass() != "priority" {
		t.Errorf("dispatch: default = %v", d)
	}

	// resolve_after ends an alert that gets no more events, counted from
	// the last event that matched when, not from the dead-band one.
	h.at(2*time.Hour, depth(40, "hengshan"))
	h.at(2*time.Hour+30*time.Minute, depth(10, "hengshan"))
	h.at(3*time.Hour - time.Second)
	other := map[string]string{"district": "xuhui", "street": "hengshan"}
	if a := h.alert("flood/waterlogging", other); a.State != firing {
		t.Fatalf("resolved early: %v", a)
	}
	h.at(3 * time.Hour)
	if a := h.alert("flood/waterlogging", other); a.State != resolved || !a.EndsAt.AsTime().Equal(t0.Add(3*time.Hour)) {
		t.Errorf("after resolve_after: %s ends %v", a.State.Name(), a.EndsAt.AsTime())
	}
}

const pendingPack = `
pack: flood
owner: water-affairs
rules:
  - id: standing-water
    when: event.type == "waterlogging" && (event.attrs.water_depth_cm ?? 0) >= 15
    severity: moderate
    group_by: [district, street]
    for: 20m
    resolve_after: 15m
    clear_when: event.type == "waterlogging_cleared"
    dispatch: default
`

func TestForKeepsAnAlertPending(t *testing.T) {
	h := newHarness(t, pendingPack)
	at := func(d time.Duration, street string, cm float64) {
		h.t.Helper()
		h.at(d, depth(cm, street))
	}
	state := func(street string) cityhubv1.AlertState {
		return h.alert("flood/standing-water", map[string]string{"district": "xuhui", "street": street}).State
	}

	// Holds for 20 minutes (readings every 10): fires on the sweep at 20m.
	at(0, "a", 20)
	at(10*time.Minute, "a", 22)
	if s := state("a"); s != pending {
		t.Fatalf("a at 10m: %s", s.Name())
	}
	got := h.at(20 * time.Minute)
	if s := state("a"); s != firing || len(got) != 1 || got[0].State != firing {
		t.Errorf("a at 20m: %s, published %v", s.Name(), got)
	}

	// A reading past the 20 minutes fires it at once, without a sweep.
	at(time.Hour, "b", 20)
	at(time.Hour+12*time.Minute, "b", 20)
	got, err := h.proc.Process(context.Background(), t0.Add(time.Hour+21*time.Minute), []*cityhubv1.Event{depth(20, "b")})
	if err != nil || len(got) != 1 || got[0].State != firing {
		t.Errorf("b: %v, %v", got, err)
	}

	// Cleared while pending: resolved, and never fires.
	at(2*time.Hour, "c", 20)
	h.at(2*time.Hour+5*time.Minute, ev("waterlogging_cleared", "iot", "xuhui", "c", nil))
	h.at(3 * time.Hour)
	if s := state("c"); s != resolved {
		t.Errorf("c: %s", s.Name())
	}

	// One reading, then none: resolve_after (15m) runs out before for
	// (20m), and the alert never fires, however late the sweep.
	at(4*time.Hour, "d", 20)
	got = h.at(5 * time.Hour)
	a := h.alert("flood/standing-water", map[string]string{"district": "xuhui", "street": "d"})
	if a.State != resolved || !a.EndsAt.AsTime().Equal(t0.Add(4*time.Hour+15*time.Minute)) || slices.ContainsFunc(got, func(x *cityhubv1.Alert) bool { return x.State == firing }) {
		t.Errorf("d: %s ends %v, published %v", a.State.Name(), a.EndsAt.AsTime(), got)
	}

	// Readings at 0 and 10m keep it holding past 20m, until 25m. A sweep
	// that comes late still publishes both: it fired at 20m and resolved
	// at 25m.
	at(6*time.Hour, "e", 20)
	at(6*time.Hour+10*time.Minute, "e", 20)
	got = h.at(7 * time.Hour)
	var states []string
	for _, x := range got {
		states = append(states, x.State.Name())
	}
	a = h.alert("flood/standing-water", map[string]string{"district": "xuhui", "street": "e"})
	if !slices.Equal(states, []string{"firing", "resolved"}) || !a.EndsAt.AsTime().Equal(t0.Add(6*time.Hour+25*time.Minute)) {
		t.Errorf("e: published %v, ends %v", states, a.EndsAt.AsTime())
	}
}

const mutePacks = `
pack: flood
owner: water-affairs
rules:
  - id: street
    when: event.type == "waterlogging" && (event.attrs.water_depth_cm ?? 0) >= 15
    severity: moderate
    group_by: [district, street]
    clear_when: event.type == "waterlogging_cleared"
    dispatch: default
  - id: district-flood
    when: event.type == "rainfall" && (event.attrs.rain_mm_h ?? 0) >= 50
    severity: severe
    group_by: [district]
    clear_when: event.type == "rainfall" && (event.attrs.rain_mm_h ?? 0) < 10
    dispatch: default
  - id: trial-flood
    when: event.type == "rainfall" && (event.attrs.rain_mm_h ?? 0) >= 20
    severity: severe
    group_by: [district]
    shadow: true
inhibit:
  - source: {rule: [flood/district-flood, flood/trial-flood]}
    target: {rule: flood/street}
    equal: [district]
silences:
  - name: tianping-works
    matchers: {rule: flood/street, street: tianping}
    starts: 2025-07-01T08:30:00Z
    ends: 2025-07-01T09:00:00Z
    reason: 天平路排水管道改造
    created_by: road-administration
`

func TestInhibition(t *testing.T) {
	h := newHarness(t, mutePacks)
	street := func(name string) *cityhubv1.Alert {
		return h.alert("flood/street", map[string]string{"district": "xuhui", "street": name})
	}
	rain := func(mm float64, district string) *cityhubv1.Event {
		return ev("rainfall", "iot", district, "", map[string]any{"rain_mm_h": mm})
	}
	// A street alert fires alone; a shadow rule's alert inhibits nothing.
	h.at(0, depth(20, "hengshan"), rain(30, "xuhui"))
	if a := street("hengshan"); a.State != firing || a.InhibitedBy != nil {
		t.Fatalf("hengshan: %v", a)
	}
	// The district floods: the firing street alert is inhibited and
	// republished, and a new street alert is inhibited from its first
	// version on.
	got := h.at(5*time.Minute, rain(60, "xuhui"))
	src := h.alert("flood/district-flood", map[string]string{"district": "xuhui"})
	if a := street("hengshan"); !slices.Equal(a.InhibitedBy, []string{src.Id}) || a.Version != 2 {
		t.Errorf("hengshan after the district flood: inhibited by %v, v%d", a.InhibitedBy, a.Version)
	}
	if !slices.ContainsFunc(got, func(a *cityhubv1.Alert) bool { return a.Rule == "flood/street" && len(a.InhibitedBy) == 1 }) {
		t.Errorf("the inhibited street alert was not published: %v", got)
	}
	got = h.at(6*time.Minute, depth(25, "wukang"))
	if len(got) != 1 || got[0].Version != 1 || !slices.Equal(got[0].InhibitedBy, []string{src.Id}) {
		t.Errorf("wukang: %v", got)
	}
	// Another district is not inhibited.
	other := ev("waterlogging", "iot", "huangpu", "nanjing-road", map[string]any{"water_depth_cm": 30.0})
	h.at(7*time.Minute, other)
	if a := h.alert("flood/street", map[string]string{"district": "huangpu", "street": "nanjing-road"}); a.InhibitedBy != nil {
		t.Errorf("huangpu inhibited by %v", a.InhibitedBy)
	}
	// The rain stops: the district alert resolves and the street alerts
	// are no longer inhibited.
	h.at(40*time.Minute, rain(2, "xuhui"))
	for _, s := range []string{"hengshan", "wukang"} {
		if a := street(s); a.InhibitedBy != nil || a.State != firing {
			t.Errorf("%s after the rain: %s inhibited by %v", s, a.State.Name(), a.InhibitedBy)
		}
	}
	// Source and target in one batch: the target ends up inhibited, and
	// only its inhibited version is published.
	got = h.at(time.Hour, rain(70, "xuhui"), depth(30, "yongjia"))
	var versions []string
	for _, a := range got {
		if a.Rule == "flood/street" && a.Labels["street"] == "yongjia" {
			versions = append(versions, fmt.Sprintf("v%d inhibited=%d", a.Version, len(a.InhibitedBy)))
		}
	}
	if len(versions) != 1 || versions[0] != "v2 inhibited=1" {
		t.Errorf("yongjia published as %v", versions)
	}
}

func TestSilence(t *testing.T) {
	h := newHarness(t, mutePacks)
	labels := map[string]string{"district": "xuhui", "street": "tianping"}
	h.at(0, depth(20, "tianping"))
	if a := h.alert("flood/street", labels); a.SilencedBy != nil {
		t.Fatalf("silenced before the works start: %v", a.SilencedBy)
	}
	// The works start: the sweep marks the open alert.
	got := h.at(30 * time.Minute)
	if a := h.alert("flood/street", labels); !slices.Equal(a.SilencedBy, []string{"tianping-works"}) || len(got) != 1 {
		t.Errorf("at 30m: silenced by %v, published %v", a.SilencedBy, got)
	}
	// New events keep it silenced; other streets are not.
	h.at(40*time.Minute, depth(30, "tianping"), depth(30, "hengshan"))
	if a := h.alert("flood/street", labels); !slices.Equal(a.SilencedBy, []string{"tianping-works"}) || a.State != firing {
		t.Errorf("at 40m: %s silenced by %v", a.State.Name(), a.SilencedBy)
	}
	if a := h.alert("flood/street", map[string]string{"district": "xuhui", "street": "hengshan"}); a.SilencedBy != nil {
		t.Errorf("hengshan silenced by %v", a.SilencedBy)
	}
	// The works end: the mark goes.
	h.at(time.Hour)
	if a := h.alert("flood/street", labels); a.SilencedBy != nil {
		t.Errorf("after the works: silenced by %v", a.SilencedBy)
	}
}

func TestShadowAlertsAreMarked(t *testing.T) {
	h := newHarness(t, mutePacks)
	got := h.at(0, ev("rainfall", "iot", "xuhui", "", map[string]any{"rain_mm_h": 30.0}))
	if len(got) != 1 || !got[0].Shadow || got[0].Rule != "flood/trial-flood" || got[0].State != firing {
		t.Errorf("published %v", got)
	}
}

func TestCountDistinctCallers(t *testing.T) {
	h := newHarness(t, `
pack: hotline
owner: water-affairs
rules:
  - id: callers
    when: event.type == "waterlogging" && event.source == "hotline"
    severity: moderate
    group_by: [district, street]
    count: {at_least: 3, within: 30m, distinct: event.location.address}
    resolve_after: 1h
`)
	call := func(address string) *cityhubv1.Event {
		e := ev("waterlogging", "hotline", "xuhui", "tianping", nil)
		e.Location.Address = address
		return e
	}
	h.at(0, call("天平路1号"))
	h.at(5*time.Minute, call("天平路1号"))
	h.at(8*time.Minute, call("天平路1号"))
	h.at(9*time.Minute, call("天平路9号"))
	if got := h.at(10 * time.Minute); len(got) != 0 {
		t.Fatalf("two addresses fired: %v", got)
	}
	got := h.at(12*time.Minute, call("天平路20号"))
	if len(got) != 1 || got[0].State != firing || got[0].EventCount != 5 {
		t.Errorf("three addresses: %v", got)
	}
}

// Ids are the sources' own idempotency keys: the same id from two sources
// is two events, while a source's redelivered event still counts once.
func TestEventIDsArePerSource(t *testing.T) {
	h := newHarness(t, `
pack: reports
owner: water-affairs
rules:
  - id: corroborated
    when: event.type == "waterlogging"
    severity: moderate
    group_by: [district, street]
    count: {at_least: 2, within: 30m}
    resolve_after: 1h
`)
	report := func(source string) *cityhubv1.Event {
		e := ev("waterlogging", source, "xuhui", "tianping", nil)
		e.Id = "r-1"
		return e
	}
	h.at(0, report("hotline"))
	if got := h.at(time.Minute, report("hotline")); len(got) != 0 {
		t.Fatalf("a redelivered report fired: %v", got)
	}
	got := h.at(2*time.Minute, report("video"))
	if len(got) != 1 || got[0].State != firing || got[0].EventCount != 2 {
		t.Fatalf("the same id from a second source: %v", got)
	}
	if want := []string{"hotline/r-1", "video/r-1"}; !slices.Equal(got[0].EventIds, want) {
		t.Errorf("event ids %v, want %v", got[0].EventIds, want)
	}
}
