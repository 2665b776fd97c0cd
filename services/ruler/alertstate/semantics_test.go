package alertstate_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

const (
	pending  = cityhubv1.AlertState_ALERT_STATE_PENDING
	firing   = cityhubv1.AlertState_ALERT_STATE_FIRING
	resolved = cityhubv1.AlertState_ALERT_STATE_RESOLVED
)

func TestSeverityChangesKeepTheAlert(t *testing.T) {
	s := newStore(t, alertstate.Options{})
	at := func(event string, sev cityhubv1.Severity, min int) *cityhubv1.Alert {
		u := fire("fp", event, t0.Add(time.Duration(min)*time.Minute))
		u.Alert.Severity = sev
		return apply(t, s, t0.Add(time.Duration(min)*time.Minute), u)[0].Alert
	}
	a := at("e1", cityhubv1.Severity_SEVERITY_MODERATE, 0)
	if a.PreviousSeverity != 0 || a.SeverityChangedAt != nil {
		t.Errorf("a new alert has a previous severity: %v", a)
	}
	a = at("e2", cityhubv1.Severity_SEVERITY_SEVERE, 5)
	if a.Version != 2 || a.Severity != cityhubv1.Severity_SEVERITY_SEVERE || a.PreviousSeverity != cityhubv1.Severity_SEVERITY_MODERATE ||
		!a.SeverityChangedAt.AsTime().Equal(t0.Add(5*time.Minute)) || !a.StartsAt.AsTime().Equal(t0) {
		t.Errorf("escalated: %v", a)
	}
	// The same severity again records no change.
	a = at("e3", cityhubv1.Severity_SEVERITY_SEVERE, 7)
	if a.PreviousSeverity != cityhubv1.Severity_SEVERITY_MODERATE || !a.SeverityChangedAt.AsTime().Equal(t0.Add(5*time.Minute)) {
		t.Errorf("no change recorded as one: %v", a)
	}
	a = at("e4", cityhubv1.Severity_SEVERITY_MODERATE, 9)
	if a.Version != 4 || a.Severity != cityhubv1.Severity_SEVERITY_MODERATE || a.PreviousSeverity != cityhubv1.Severity_SEVERITY_SEVERE || a.State != firing {
		t.Errorf("de-escalated: %v", a)
	}
}

func TestCountDistinct(t *testing.T) {
	s := newStore(t, alertstate.Options{})
	call := func(event, caller string, min int) alertstate.Result {
		u := fire("fp", event, t0.Add(time.Duration(min)*time.Minute))
		u.AtLeast, u.Within, u.CountDistinct, u.Distinct = 3, 30*time.Minute, true, caller
		return apply(t, s, t0.Add(time.Duration(min)*time.Minute), u)[0]
	}
	// One caller three times, an anonymous call, and a redelivery: not
	// three callers.
	for i, c := range []struct{ event, caller string }{{"c1", "alice"}, {"c2", "alice"}, {"c3", "alice"}, {"c4", ""}, {"c5", "bob"}, {"c5", "bob"}} {
		if r := call(c.event, c.caller, i); r.Alert != nil {
			t.Fatalf("call %s from %q: alert %v", c.event, c.caller, r.Alert)
		}
	}
	r := call("c6", "carol", 10)
	check(t, r, true, firing, 1, "c1", "c2", "c3", "c5", "c6")
	if r.Alert.EventCount != 5 || !r.Alert.StartsAt.AsTime().Equal(t0) {
		t.Errorf("count %d, starts %v", r.Alert.EventCount, r.Alert.StartsAt.AsTime())
	}
}

func pendingUpdate(event string, at time.Time) alertstate.Update {
	u := fire("fp", event, at)
	u.For, u.ResolveAfter = 10*time.Minute, 30*time.Minute
	return u
}

func TestPendingFiresOnAnEventOrASweep(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, alertstate.Options{})
	r := apply(t, s, t0, pendingUpdate("e1", t0))[0]
	check(t, r, true, pending, 1, "e1")
	if !r.Alert.FiresAt.AsTime().Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("fires_at = %v", r.Alert.FiresAt.AsTime())
	}
	if f, _ := s.Firing(ctx); len(f) != 0 {
		t.Errorf("a pending alert is firing: %v", f)
	}
	if p, err := s.Pending(ctx); err != nil || len(p) != 1 {
		t.Errorf("Pending = %v, %v", p, err)
	}
	// Another event before the time: still pending.
	r = apply(t, s, t0.Add(5*time.Minute), pendingUpdate("e2", t0.Add(5*time.Minute)))[0]
	check(t, r, true, pending, 2, "e1", "e2")
	if got, _ := s.Promote(ctx, t0.Add(9*time.Minute), 10); len(got) != 0 {
		t.Errorf("promoted early: %v", got)
	}
	// An event after the time fires it at once.
	r = apply(t, s, t0.Add(11*time.Minute), pendingUpdate("e3", t0.Add(11*time.Minute)))[0]
	check(t, r, true, firing, 3, "e1", "e2", "e3")
	if !r.Alert.StartsAt.AsTime().Equal(t0) {
		t.Errorf("starts_at = %v: the episode began with the first event", r.Alert.StartsAt.AsTime())
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Errorf("still indexed as pending: %v", p)
	}

	// A second alert fires from the sweep.
	s2 := newStore(t, alertstate.Options{})
	apply(t, s2, t0, pendingUpdate("e1", t0))
	got, err := s2.Promote(ctx, t0.Add(10*time.Minute), 10)
	if err != nil || len(got) != 1 || got[0].State != firing || got[0].Version != 2 {
		t.Fatalf("Promote = %v, %v", got, err)
	}
	if got, _ := s2.Promote(ctx, t0.Add(11*time.Minute), 10); len(got) != 0 {
		t.Errorf("promoted twice: %v", got)
	}
	if f, _ := s2.Firing(ctx); len(f) != 1 {
		t.Errorf("Firing after promotion = %v", f)
	}
}

func TestPendingNeverFiresWhenClearedOrExpiredFirst(t *testing.T) {
	ctx := context.Background()
	// Cleared while pending: resolved, never fired.
	s := newStore(t, alertstate.Options{})
	apply(t, s, t0, pendingUpdate("e1", t0))
	r := apply(t, s, t0.Add(5*time.Minute), alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: "fp"}})[0]
	check(t, r, true, resolved, 2, "e1")
	if got, _ := s.Promote(ctx, t0.Add(time.Hour), 10); len(got) != 0 {
		t.Errorf("a cleared alert fired: %v", got)
	}

	// resolve_after shorter than for, and no event keeps it alive: the
	// sweep resolves it at its resolve time, however late it comes.
	s = newStore(t, alertstate.Options{})
	u := pendingUpdate("e1", t0)
	u.ResolveAfter = 5 * time.Minute
	apply(t, s, t0, u)
	late := t0.Add(time.Hour)
	if got, _ := s.Promote(ctx, late, 10); len(got) != 0 {
		t.Errorf("an expired alert fired: %v", got)
	}
	got, err := s.ResolveDue(ctx, late, 10)
	if err != nil || len(got) != 1 || got[0].State != resolved || !got[0].EndsAt.AsTime().Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("ResolveDue = %v, %v", got, err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Errorf("still pending: %v", p)
	}
}

func TestMuteAndRuleIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, alertstate.Options{})
	u := fire("fp", "e1", t0)
	u.Alert.SilencedBy = []string{"roadworks"}
	a := apply(t, s, t0, u)[0].Alert
	if !slices.Equal(a.SilencedBy, []string{"roadworks"}) || a.InhibitedBy != nil {
		t.Errorf("marks = %v %v", a.SilencedBy, a.InhibitedBy)
	}
	mute := func(silenced, inhibited []string) alertstate.Result {
		return apply(t, s, t0.Add(time.Minute), alertstate.Update{Op: alertstate.Mute,
			Alert: &cityhubv1.Alert{Id: "fp", SilencedBy: silenced, InhibitedBy: inhibited}})[0]
	}
	r := mute(nil, []string{"aaaa", "bbbb"})
	check(t, r, true, firing, 2, "e1")
	if r.Alert.SilencedBy != nil || !slices.Equal(r.Alert.InhibitedBy, []string{"aaaa", "bbbb"}) {
		t.Errorf("after mute: %v %v", r.Alert.SilencedBy, r.Alert.InhibitedBy)
	}
	check(t, mute(nil, []string{"aaaa", "bbbb"}), false, firing, 2, "e1")

	of, err := s.OfRule(ctx, "flood-control/deep-waterlogging", 10)
	if err != nil || len(of) != 1 || of[0].Id != "fp" {
		t.Errorf("OfRule = %v, %v", of, err)
	}
	apply(t, s, t0.Add(time.Hour), alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: "fp"}})
	if of, _ := s.OfRule(ctx, "flood-control/deep-waterlogging", 10); len(of) != 0 {
		t.Errorf("a resolved alert is open: %v", of)
	}
	// A resolved alert keeps its marks, and muting it changes nothing.
	check(t, mute(nil, nil), false, resolved, 3, "e1")
}

func TestRestoreKeepsTheNewFields(t *testing.T) {
	ctx := context.Background()
	orig := newStore(t, alertstate.Options{})
	apply(t, orig, t0, pendingUpdate("e1", t0))
	u := pendingUpdate("e2", t0.Add(time.Minute))
	u.Alert.Severity = cityhubv1.Severity_SEVERITY_EXTREME
	u.Alert.InhibitedBy = []string{"src"}
	v2 := apply(t, orig, t0.Add(time.Minute), u)[0].Alert

	rebuilt, err := alertstate.New(alertstate.Options{Client: redistest.Start(t).Client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rebuilt.Restore(ctx, v2, t0.Add(31*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := rebuilt.Get(ctx, "fp")
	if err != nil || !proto.Equal(got, v2) {
		t.Fatalf("rebuilt %v, %v\nwant %v", got, err, v2)
	}
	// Still pending, and the sweep fires it when its time comes.
	fired, err := rebuilt.Promote(ctx, t0.Add(10*time.Minute), 10)
	if err != nil || len(fired) != 1 || fired[0].State != firing {
		t.Errorf("Promote after restore = %v, %v", fired, err)
	}
}
