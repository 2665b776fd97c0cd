package alertstate_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

func newStore(t *testing.T, opts alertstate.Options) *alertstate.Store {
	t.Helper()
	opts.Client = redistest.Start(t).Client
	s, err := alertstate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func alert(id string) *cityhubv1.Alert {
	return &cityhubv1.Alert{
		Id: id, Rule: "flood-control/deep-waterlogging", Pack: "flood-control",
		Severity: cityhubv1.Severity_SEVERITY_SEVERE, Title: "积水 35 cm",
		Labels: map[string]string{"district": "xuhui", "street": "tianping"}, District: "xuhui",
		Dispatch: &cityhubv1.DispatchSpec{Lead: "water-affairs"},
	}
}

func fire(id, event string, at time.Time) alertstate.Update {
	return alertstate.Update{Op: alertstate.Fire, Alert: alert(id), EventID: event, EventTime: at}
}

func apply(t *testing.T, s *alertstate.Store, now time.Time, u ...alertstate.Update) []alertstate.Result {
	t.Helper()
	r, err := s.Apply(context.Background(), now, u)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func check(t *testing.T, r alertstate.Result, changed bool, state cityhubv1.AlertState, version int64, ids ...string) {
	t.Helper()
	if r.Alert == nil {
		t.Fatalf("no alert; want %s v%d", state.Name(), version)
	}
	a := r.Alert
	if r.Changed != changed || a.State != state || a.Version != version || !slices.Equal(a.EventIds, ids) {
		t.Errorf("got changed=%v %s v%d %v; want changed=%v %s v%d %v", r.Changed, a.State.Name(), a.Version, a.EventIds, changed, state.Name(), version, ids)
	}
}

func TestLifecycleAndRedelivery(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, alertstate.Options{})
	const fp = "fp1"
	firing, resolved := cityhubv1.AlertState_ALERT_STATE_FIRING, cityhubv1.AlertState_ALERT_STATE_RESOLVED

	r := apply(t, s, t0.Add(time.Second), fire(fp, "e1", t0))
	check(t, r[0], true, firing, 1, "e1")
	a := r[0].Alert
	if !a.StartsAt.AsTime().Equal(t0) || !a.UpdatedAt.AsTime().Equal(t0.Add(time.Second)) || a.EventCount != 1 {
		t.Errorf("times/count: starts %v updated %v count %d", a.StartsAt.AsTime(), a.UpdatedAt.AsTime(), a.EventCount)
	}
	if a.Title != "积水 35 cm" || a.Labels["street"] != "tianping" || a.Dispatch.GetLead() != "water-affairs" {
		t.Errorf("descriptive fields lost: %v", a)
	}

	// Redelivery: nothing changes, the current alert comes back.
	r = apply(t, s, t0.Add(time.Minute), fire(fp, "e1", t0))
	check(t, r[0], false, firing, 1, "e1")
	if !r[0].Alert.UpdatedAt.AsTime().Equal(t0.Add(time.Second)) {
		t.Error("redelivery moved updated_at")
	}

	// Two events in one batch, one of them redelivered: one result for
	// the alert.
	r = apply(t, s, t0.Add(2*time.Minute), fire(fp, "e2", t0.Add(time.Minute)), fire(fp, "e2", t0.Add(time.Minute)))
	if len(r) != 1 {
		t.Fatalf("%d results for one alert", len(r))
	}
	check(t, r[0], true, firing, 2, "e1", "e2")
	if r[0].Alert.EventCount != 2 {
		t.Errorf("event_count = %d", r[0].Alert.EventCount)
	}

	got, err := s.Firing(ctx)
	if err != nil || len(got) != 1 || got[0].Id != fp || got[0].Version != 2 {
		t.Fatalf("Firing = %v, %v", got, err)
	}

	r = apply(t, s, t0.Add(time.Hour), alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: fp}})
	check(t, r[0], true, resolved, 3, "e1", "e2")
	if !r[0].Alert.EndsAt.AsTime().Equal(t0.Add(time.Hour)) {
		t.Errorf("ends_at = %v", r[0].Alert.EndsAt.AsTime())
	}
	r = apply(t, s, t0.Add(2*time.Hour), alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: fp}})
	check(t, r[0], false, resolved, 3, "e1", "e2")
	if got, _ := s.Firing(ctx); len(got) != 0 {
		t.Errorf("Firing after resolution = %v", got)
	}

	// An old event redelivered after the resolution does not reopen it.
	r = apply(t, s, t0.Add(3*time.Hour), fire(fp, "e2", t0.Add(time.Minute)))
	check(t, r[0], false, resolved, 3, "e1", "e2")

	// A new event starts a new episode.
	r = apply(t, s, t0.Add(4*time.Hour), fire(fp, "e3", t0.Add(4*time.Hour)))
	check(t, r[0], true, firing, 4, "e3")
	if !r[0].Alert.StartsAt.AsTime().Equal(t0.Add(4*time.Hour)) || r[0].Alert.EndsAt != nil || r[0].Alert.EventCount != 1 {
		t.Errorf("new episode: %v", r[0].Alert)
	}

	// Resolving an alert that never existed yields nothing.
	r = apply(t, s, t0, alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: "nope"}})
	if r[0].Alert != nil || r[0].Changed {
		t.Errorf("resolving nothing = %+v", r[0])
	}
	if _, err := s.Get(ctx, "nope"); err != alertstate.ErrNotFound {
		t.Errorf("Get = %v", err)
	}
}

func TestEventIDsAreBounded(t *testing.T) {
	s := newStore(t, alertstate.Options{MaxEventIDs: 3})
	var last alertstate.Result
	for i := range 5 {
		last = apply(t, s, t0, fire("fp", fmt.Sprint("e", i), t0))[0]
	}
	check(t, last, true, cityhubv1.AlertState_ALERT_STATE_FIRING, 5, "e2", "e3", "e4")
	if last.Alert.EventCount != 5 {
		t.Errorf("event_count = %d, want 5", last.Alert.EventCount)
	}
}

func TestCountWindow(t *testing.T) {
	s := newStore(t, alertstate.Options{})
	win := func(event string, at time.Duration) alertstate.Update {
		u := fire("fp", event, t0.Add(at))
		u.AtLeast, u.Within = 3, 30*time.Minute
		return u
	}
	// 0m, then 40m: the first has left the window by the third event.
	for _, step := range []struct {
		event string
		at    time.Duration
	}{{"a", 0}, {"a", 0}, {"b", 40 * time.Minute}, {"b", 40 * time.Minute}, {"c", 45 * time.Minute}} {
		r := apply(t, s, t0.Add(step.at), win(step.event, step.at))[0]
		if r.Alert != nil || r.Changed {
			t.Fatalf("%s at %s: %+v, want nothing yet", step.event, step.at, r)
		}
	}
	r := apply(t, s, t0.Add(50*time.Minute), win("d", 50*time.Minute))[0]
	check(t, r, true, cityhubv1.AlertState_ALERT_STATE_FIRING, 1, "b", "c", "d")
	if r.Alert.EventCount != 3 || !r.Alert.StartsAt.AsTime().Equal(t0.Add(40*time.Minute)) {
		t.Errorf("count %d, starts %v", r.Alert.EventCount, r.Alert.StartsAt.AsTime())
	}
	// Once firing, each new event adds to it.
	r = apply(t, s, t0.Add(55*time.Minute), win("e", 55*time.Minute))[0]
	check(t, r, true, cityhubv1.AlertState_ALERT_STATE_FIRING, 2, "b", "c", "d", "e")
	r = apply(t, s, t0.Add(56*time.Minute), win("c", 45*time.Minute))[0]
	check(t, r, false, cityhubv1.AlertState_ALERT_STATE_FIRING, 2, "b", "c", "d", "e")
}

func TestResolveDue(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, alertstate.Options{})
	u := fire("fp", "e1", t0)
	u.ResolveAfter = time.Hour
	apply(t, s, t0, u)
	other := fire("forever", "x", t0) // no resolve_after: never due
	apply(t, s, t0, other)

	due := func(at time.Duration) []*cityhubv1.Alert {
		t.Helper()
		got, err := s.ResolveDue(ctx, t0.Add(at), 100)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := due(30 * time.Minute); len(got) != 0 {
		t.Fatalf("resolved early: %v", got)
	}
	// A matching event 50 minutes in pushes the deadline to 1h50m.
	u.EventID, u.EventTime = "e2", t0.Add(50*time.Minute)
	apply(t, s, t0.Add(50*time.Minute), u)
	if got := due(70 * time.Minute); len(got) != 0 {
		t.Fatalf("resolved before the extended deadline: %v", got)
	}
	got := due(2 * time.Hour)
	if len(got) != 1 || got[0].Id != "fp" || got[0].State != cityhubv1.AlertState_ALERT_STATE_RESOLVED || got[0].Version != 3 {
		t.Fatalf("due at 2h = %v", got)
	}
	if got := due(3 * time.Hour); len(got) != 0 {
		t.Errorf("resolved twice: %v", got)
	}
	firing, err := s.Firing(ctx)
	if err != nil || len(firing) != 1 || firing[0].Id != "forever" {
		t.Errorf("Firing = %v, %v", firing, err)
	}
}

func TestScriptsReloadAfterRedisLosesThem(t *testing.T) {
	srv := redistest.Start(t)
	s, err := alertstate.New(alertstate.Options{Client: srv.Client})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, t0, fire("fp", "e1", t0))
	if err := srv.Client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	r := apply(t, s, t0, fire("fp", "e2", t0))
	check(t, r[0], true, cityhubv1.AlertState_ALERT_STATE_FIRING, 2, "e1", "e2")
}
