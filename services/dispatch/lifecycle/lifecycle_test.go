package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

var (
	t0         = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC) // Tuesday 16:00 in Shanghai
	commander  = Actor{Subject: "chief", Role: auth.RoleCommander}
	dispatcher = Actor{Subject: "d1", Role: auth.RoleDispatcher}
	water      = Actor{Subject: "w1", Role: auth.RoleDepartment, Dept: "water-affairs"}
	traffic    = Actor{Subject: "t1", Role: auth.RoleDepartment, Dept: "traffic-police"}
	gas        = Actor{Subject: "g1", Role: auth.RoleDepartment, Dept: "gas"}
	viewer     = Actor{Subject: "v1", Role: auth.RoleViewer}
	system     = Actor{Subject: "rule:x", Role: RoleSystem}
	yes, no    = true, false
)

func spec() *cityhubv1.DispatchSpec {
	return &cityhubv1.DispatchSpec{
		Lead:   "water-affairs",
		Assist: []string{"traffic-police", "water-affairs", "traffic-police"},
		Sla:    &cityhubv1.Sla{Accept: durationpb.New(10 * time.Minute), Handle: durationpb.New(2 * time.Hour)},
	}
}

func dispatchedCase(t *testing.T) *cityhubv1.Case {
	t.Helper()
	c := &cityhubv1.Case{Id: "xuhui-01jz2g93z0ptff52h35j58yj80", District: "xuhui", Title: "积水"}
	entry, err := New(c, spec(), system, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if entry.GetTo() != dispatched || entry.GetAction() != "create" {
		t.Fatalf("creation entry %v", entry)
	}
	return c
}

// must applies req and fails the test on error.
func must(t *testing.T, c *cityhubv1.Case, req Request, by Actor, now time.Time) *cityhubv1.AuditEntry {
	t.Helper()
	e, err := Apply(c, req, by, now)
	if err != nil {
		t.Fatalf("%s by %s: %v", req.Action, by.Subject, err)
	}
	return e
}

func TestNewDispatchesWithDeadlines(t *testing.T) {
	c := dispatchedCase(t)
	if c.GetStatus() != dispatched || c.GetVersion() != 1 {
		t.Fatalf("status %s v%d", c.GetStatus().Name(), c.GetVersion())
	}
	if got := c.GetAcceptDueAt().AsTime(); !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("accept due %v", got)
	}
	if got := c.GetHandleDueAt().AsTime(); !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("handle due %v", got)
	}
	if len(c.GetParts()) != 2 || !c.GetParts()[0].GetLead() || c.GetParts()[1].GetDepartment() != "traffic-police" {
		t.Fatalf("parts %v, want the lead and one assist", c.GetParts())
	}
	for _, p := range c.GetParts() {
		a, h := p.GetAcceptDeadline(), p.GetHandleDeadline()
		if !a.GetWarnAt().AsTime().Equal(t0.Add(8*time.Minute)) || !a.GetFinalAt().AsTime().Equal(t0.Add(20*time.Minute)) ||
			!h.GetDueAt().AsTime().Equal(t0.Add(2*time.Hour)) || a.GetWorking() {
			t.Errorf("deadlines of %s: %v / %v", p.GetDepartment(), a, h)
		}
	}
	if !c.GetTimerAt().AsTime().Equal(t0.Add(8 * time.Minute)) {
		t.Errorf("timer at %v, want the accept warning", c.GetTimerAt().AsTime())
	}
	if _, err := New(&cityhubv1.Case{Id: "x", District: "x", Title: "t"}, nil, water, t0, nil); !errors.Is(err, ErrForbidden) {
		t.Errorf("a department creating: %v, want ErrForbidden", err)
	}
	manual := &cityhubv1.Case{Id: "x", District: "x", Title: "t"}
	if _, err := New(manual, nil, dispatcher, t0, nil); err != nil || manual.GetStatus() != new_ || manual.GetTimerAt() != nil {
		t.Errorf("undispatched creation: %s, %v", manual.GetStatus().Name(), err)
	}
}

// TestWorkingTimeDeadlines dispatches on the Shanghai calendar late on a
// Friday: the clock runs on over the weekend only in working time.
func TestWorkingTimeDeadlines(t *testing.T) {
	cal := workcal.Default()
	fri := time.Date(2025, 7, 4, 17, 0, 0, 0, cal.Location())
	c := &cityhubv1.Case{Id: "xuhui-01jz2g93z0ptff52h35j58yj80", District: "xuhui", Title: "垃圾满溢"}
	s := &cityhubv1.DispatchSpec{Lead: "water-affairs", Sla: &cityhubv1.Sla{
		Accept: durationpb.New(2 * time.Hour), Handle: durationpb.New(21 * time.Hour),
		AcceptWorking: true, HandleWorking: true, CaseClass: "standard",
	}}
	if _, err := New(c, s, dispatcher, fri, cal); err != nil {
		t.Fatal(err)
	}
	at := func(day, hh, mm int) time.Time { return time.Date(2025, 7, day, hh, mm, 0, 0, cal.Location()) }
	a, h := c.GetParts()[0].GetAcceptDeadline(), c.GetParts()[0].GetHandleDeadline()
	for name, got := range map[string][2]time.Time{
		"accept warn":  {a.GetWarnAt().AsTime(), at(7, 10, 6)},   // 30m Friday, 66m Monday
		"accept due":   {a.GetDueAt().AsTime(), at(7, 10, 30)},   // 30m Friday, 90m Monday
		"accept final": {a.GetFinalAt().AsTime(), at(7, 14, 0)},  // two working hours later, over lunch
		"handle due":   {h.GetDueAt().AsTime(), at(9, 17, 0)},    // 30m Friday, then 7h Monday and Tuesday, 6h30m Wednesday
		"handle final": {h.GetFinalAt().AsTime(), at(14, 17, 0)}, // three working days more
	} {
		if !got[0].Equal(got[1]) {
			t.Errorf("%s = %s, want %s", name, got[0].In(cal.Location()), got[1])
		}
	}
	if c.GetSla().GetCaseClass() != "standard" || !a.GetWorking() {
		t.Errorf("sla %v", c.GetSla())
	}
}

// TestClosedLoop walks a case through the whole loop, one step at a time,
// checking the status after each and that refused steps change nothing.
func TestClosedLoop(t *testing.T) {
	c := dispatchedCase(t)
	steps := []struct {
		name    string
		by      Actor
		req     Request
		wantErr error
		want    cityhubv1.CaseStatus
	}{
		{"viewer may not accept", viewer, Request{Action: Accept}, ErrForbidden, dispatched},
		{"gas has no part", gas, Request{Action: Accept}, ErrForbidden, dispatched},
		{"water may not accept for traffic", water, Request{Action: Accept, Department: "traffic-police"}, ErrForbidden, dispatched},
		{"nothing to handle yet", water, Request{Action: Handle, Note: "x"}, ErrForbiddenTransition, dispatched},
		{"assist accepts first", traffic, Request{Action: Accept}, nil, dispatched},
		{"assist accepts twice", traffic, Request{Action: Accept}, ErrForbiddenTransition, dispatched},
		{"a signed part may not return", traffic, Request{Action: Return, Note: "not ours"}, ErrForbiddenTransition, dispatched},
		{"return needs a reason", water, Request{Action: Return}, ErrInvalid, dispatched},
		{"no suspending before signing", water, Request{Action: Suspend, Note: "rain"}, ErrForbiddenTransition, dispatched},
		{"lead accepts", water, Request{Action: Accept}, nil, accepted},
		{"return only before accepting", water, Request{Action: Return, Note: "x"}, ErrForbiddenTransition, accepted},
		{"verify needs a handled case", dispatcher, Request{Action: Verify, Pass: &yes}, ErrForbiddenTransition, accepted},
		{"lead handles", water, Request{Action: Handle, Note: "pumped out"}, nil, accepted},
		{"a department may not verify", water, Request{Action: Verify, Pass: &yes}, ErrForbidden, accepted},
		{"assist handles", traffic, Request{Action: Handle, Note: "traffic diverted"}, nil, handled},
		{"verify needs an outcome", dispatcher, Request{Action: Verify}, ErrInvalid, handled},
		{"verification fails", dispatcher, Request{Action: Verify, Pass: &no, Note: "still flooded"}, nil, accepted},
		{"lead handles again", water, Request{Action: Handle, Note: "pumped again"}, nil, accepted},
		{"commander handles for traffic", commander, Request{Action: Handle, Department: "traffic-police", Note: "done"}, nil, handled},
		{"comment needs a note", dispatcher, Request{Action: Comment}, ErrInvalid, handled},
		{"dispatcher comments", dispatcher, Request{Action: Comment, Note: "checking"}, nil, handled},
		{"verification passes", dispatcher, Request{Action: Verify, Pass: &yes}, nil, closed},
		{"no cancelling a closed case", dispatcher, Request{Action: Cancel, Note: "x"}, ErrForbiddenTransition, closed},
		{"no escalating a closed case", dispatcher, Request{Action: Escalate, Note: "x"}, ErrForbiddenTransition, closed},
		{"gas may not comment", gas, Request{Action: Comment, Note: "hi"}, ErrForbidden, closed},
		{"unknown action", commander, Request{Action: "explode"}, ErrInvalid, closed},
		{"create is not an action", commander, Request{Action: Create}, ErrInvalid, closed},
	}
	for _, st := range steps {
		before := proto.CloneOf(c)
		entry, err := Apply(c, st.req, st.by, t0.Add(time.Minute))
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
		}
		if err != nil && !proto.Equal(before, c) {
			t.Fatalf("%s: a refused step changed the case", st.name)
		}
		if err == nil && (entry.GetFrom() != before.GetStatus() || entry.GetTo() != c.GetStatus() || entry.GetActor() != st.by.Subject) {
			t.Fatalf("%s: entry %v", st.name, entry)
		}
		if c.GetStatus() != st.want {
			t.Fatalf("%s: status %s, want %s", st.name, c.GetStatus().Name(), st.want.Name())
		}
	}
	if c.GetClosedAt() == nil || c.GetReworkCount() != 1 || c.GetTimerAt() != nil {
		t.Errorf("closed case: closed_at %v, rework %d, timer %v", c.GetClosedAt(), c.GetReworkCount(), c.GetTimerAt())
	}
}

func TestReturnsAndArbitration(t *testing.T) {
	c := dispatchedCase(t)
	redispatch := func(lead string, assist ...string) {
		t.Helper()
		must(t, c, Request{Action: Dispatch, Dispatch: &cityhubv1.DispatchSpec{Lead: lead, Assist: assist}}, dispatcher, t0)
	}
	if e := must(t, c, Request{Action: Return, Note: "sewer is not ours"}, water, t0); e.GetEffect() != "" || e.GetTo() != new_ {
		t.Errorf("first return: %v", e)
	}
	if c.GetStatus() != new_ || c.GetLead() != "" || len(c.GetParts()) != 0 || c.GetAcceptDueAt() != nil || c.GetTimerAt() != nil {
		t.Fatalf("returned case: %v", c)
	}
	if _, err := Apply(c, Request{Action: Dispatch}, dispatcher, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("dispatch without lead: %v", err)
	}
	if _, err := Apply(c, Request{Action: Dispatch, Dispatch: &cityhubv1.DispatchSpec{Lead: "gas"}}, water, t0); !errors.Is(err, ErrForbidden) {
		t.Errorf("a department dispatching: %v", err)
	}
	// The same department returning twice is no dispute.
	redispatch("water-affairs")
	must(t, c, Request{Action: Return, Note: "still not ours"}, water, t0)
	if c.GetArbitration() {
		t.Fatal("one department returning twice called for arbitration")
	}
	// An assist returns: a second department disputes the case.
	redispatch("gas", "traffic-police")
	e := must(t, c, Request{Action: Return, Note: "no traffic impact"}, traffic, t0)
	if !c.GetArbitration() || c.GetArbitrationReason() != "returned by water-affairs, traffic-police" ||
		!strings.Contains(e.GetEffect(), "arbitration") || !slices.Equal(c.GetReturnedBy(), []string{"water-affairs", "traffic-police"}) {
		t.Fatalf("after two departments returned: %v, entry %v", c, e)
	}
	// The district centre decides by dispatching again.
	e = must(t, c, Request{Action: Dispatch, Dispatch: &cityhubv1.DispatchSpec{Lead: "drainage"}}, dispatcher, t0.Add(time.Hour))
	if c.GetArbitration() || !strings.Contains(e.GetEffect(), "arbitration settled") || c.GetStatus() != dispatched || c.GetLead() != "drainage" {
		t.Errorf("after arbitration: %v, entry %v", c, e)
	}
	if !c.GetDispatchedAt().AsTime().Equal(t0.Add(time.Hour)) {
		t.Errorf("redispatched at %v", c.GetDispatchedAt().AsTime())
	}
	if _, err := Apply(c, Request{Action: Cancel, Note: "duplicate"}, dispatcher, t0); err != nil || c.GetStatus() != cancelled {
		t.Errorf("cancel: %s, %v", c.GetStatus().Name(), err)
	}
}

func TestRework(t *testing.T) {
	c := dispatchedCase(t)
	for _, by := range []Actor{water, traffic} {
		must(t, c, Request{Action: Accept}, by, t0.Add(time.Minute))
		must(t, c, Request{Action: Handle, Note: "done"}, by, t0.Add(time.Hour))
	}
	later := t0.Add(5 * time.Hour) // past the original handle deadline
	e := must(t, c, Request{Action: Verify, Pass: &no, Note: "water still standing"}, dispatcher, later)
	if e.GetAction() != "verify:fail" || c.GetStatus() != accepted || c.GetReworkCount() != 1 || e.GetEffect() != "rework 1" {
		t.Fatalf("after failed verification: %v, %v", c, e)
	}
	for _, p := range c.GetParts() {
		if p.GetStatus() != accepted || p.GetHandledAt() != nil || p.GetReworkNote() != "water still standing" ||
			!p.GetHandleDeadline().GetDueAt().AsTime().Equal(later.Add(2*time.Hour)) || p.GetNote() != "done" {
			t.Errorf("part after rework: %v", p)
		}
	}
	if c.GetOverdue() || c.GetWarned() {
		t.Error("a fresh handle deadline is neither warned nor overdue")
	}
}

func TestSuspendAndResume(t *testing.T) {
	cal := workcal.Default()
	at := func(day, hh, mm int) time.Time { return time.Date(2025, 7, day, hh, mm, 0, 0, cal.Location()) }
	c := &cityhubv1.Case{Id: "xuhui-01jz2g93z0ptff52h35j58yj80", District: "xuhui", Title: "井盖"}
	s := &cityhubv1.DispatchSpec{Lead: "water-affairs", Assist: []string{"traffic-police"},
		Sla: &cityhubv1.Sla{Handle: durationpb.New(21 * time.Hour), HandleWorking: true}}
	if _, err := New(c, s, dispatcher, at(1, 10, 0), cal); err != nil { // Tuesday 10:00
		t.Fatal(err)
	}
	lead := func() *cityhubv1.Part { return c.GetParts()[0] }
	if due := lead().GetHandleDeadline().GetDueAt().AsTime(); !due.Equal(at(4, 10, 0)) {
		t.Fatalf("handle due %s, want Friday 10:00", due.In(cal.Location()))
	}
	must(t, c, Request{Action: Accept}, water, at(1, 10, 30))
	must(t, c, Request{Action: Accept}, traffic, at(1, 10, 30))
	if _, err := Apply(c, Request{Action: Suspend}, water, at(1, 11, 0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("suspend without a reason: %v", err)
	}
	if _, err := Apply(c, Request{Action: Suspend, Note: "x", Department: "water-affairs"}, dispatcher, at(1, 11, 0)); !errors.Is(err, ErrForbidden) {
		t.Errorf("a dispatcher suspending: %v", err)
	}
	if _, err := Apply(c, Request{Action: Resume}, water, at(1, 11, 0)); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("resume before suspend: %v", err)
	}
	must(t, c, Request{Action: Suspend, Note: "waiting for the pump truck", Calendar: cal}, water, at(1, 11, 0))
	if lead().GetSuspendReason() != "waiting for the pump truck" || lead().GetSuspendedAt() == nil {
		t.Fatalf("suspended part %v", lead())
	}
	for _, req := range []Request{{Action: Suspend, Note: "again"}, {Action: Handle, Note: "done"}} {
		if _, err := Apply(c, req, water, at(1, 12, 0)); !errors.Is(err, ErrForbiddenTransition) {
			t.Errorf("%s while suspended: %v", req.Action, err)
		}
	}
	// Only water's part is suspended: the case's next look is traffic's.
	if tr := c.GetParts()[1].GetHandleDeadline().GetWarnAt(); !c.GetTimerAt().AsTime().Equal(tr.AsTime()) {
		t.Errorf("timer at %v, want traffic's warning %v", c.GetTimerAt().AsTime(), tr.AsTime())
	}
	// A day later: seven working hours suspended move the deadline from
	// Friday 10:00 to Monday 10:00.
	e := must(t, c, Request{Action: Resume, Calendar: cal}, water, at(2, 11, 0))
	if due := lead().GetHandleDeadline().GetDueAt().AsTime(); !due.Equal(at(7, 10, 0)) {
		t.Errorf("handle due after resume %s, want Monday 10:00", due.In(cal.Location()))
	}
	if lead().GetSuspendedAt() != nil || lead().GetSuspendedTotal().AsDuration() != 24*time.Hour || !strings.Contains(e.GetEffect(), "moved") {
		t.Errorf("resumed part %v, entry %v", lead(), e)
	}
	if due := c.GetParts()[1].GetHandleDeadline().GetDueAt().AsTime(); !due.Equal(at(4, 10, 0)) {
		t.Errorf("traffic's deadline moved too: %s", due)
	}
	must(t, c, Request{Action: Handle, Note: "pumped"}, water, at(2, 12, 0))
}

func TestExtension(t *testing.T) {
	cal := workcal.Default()
	at := func(day, hh, mm int) time.Time { return time.Date(2025, 7, day, hh, mm, 0, 0, cal.Location()) }
	c := &cityhubv1.Case{Id: "xuhui-01jz2g93z0ptff52h35j58yj80", District: "xuhui", Title: "路面塌陷"}
	s := &cityhubv1.DispatchSpec{Lead: "water-affairs", Sla: &cityhubv1.Sla{Handle: durationpb.New(7 * time.Hour), HandleWorking: true}}
	if _, err := New(c, s, dispatcher, at(1, 10, 0), cal); err != nil {
		t.Fatal(err)
	}
	p := c.GetParts()[0]
	must(t, c, Request{Action: Accept}, water, at(1, 10, 5))
	refused := []struct {
		name string
		by   Actor
		req  Request
		want error
	}{
		{"no reason", water, Request{Action: RequestExtension, ExtendBy: time.Hour}, ErrInvalid},
		{"neither by nor until", water, Request{Action: RequestExtension, Note: "x"}, ErrInvalid},
		{"both by and until", water, Request{Action: RequestExtension, Note: "x", ExtendBy: time.Hour, Until: at(9, 9, 0)}, ErrInvalid},
		{"until before the deadline", water, Request{Action: RequestExtension, Note: "x", Until: at(1, 17, 0)}, ErrInvalid},
		{"a dispatcher requesting", dispatcher, Request{Action: RequestExtension, Note: "x", ExtendBy: time.Hour}, ErrForbidden},
		{"nothing to grant", dispatcher, Request{Action: GrantExtension}, ErrForbiddenTransition},
		{"nothing to refuse", dispatcher, Request{Action: RefuseExtension, Note: "no"}, ErrForbiddenTransition},
	}
	for _, r := range refused {
		if _, err := Apply(c, r.req, r.by, at(1, 11, 0)); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	must(t, c, Request{Action: RequestExtension, Note: "parts on order", ExtendBy: 7 * time.Hour, ExtendWorking: true}, water, at(1, 11, 0))
	if e := p.GetExtension(); e != nil {
		t.Fatal("Apply changed the case it was given a pointer into") // p is the part before the copy
	}
	p = c.GetParts()[0]
	if e := p.GetExtension(); e.GetState() != ExtensionPending || e.GetExtendBy().AsDuration() != 7*time.Hour || e.GetRequestedBy() != "w1" {
		t.Fatalf("extension %v", e)
	}
	// The clock runs while the request waits.
	if c.GetTimerAt() == nil {
		t.Error("a pending extension stopped the clock")
	}
	if _, err := Apply(c, Request{Action: RequestExtension, Note: "more", ExtendBy: time.Hour}, water, at(1, 11, 0)); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("second request while one is pending: %v", err)
	}
	if _, err := Apply(c, Request{Action: GrantExtension}, water, at(1, 11, 0)); !errors.Is(err, ErrForbidden) {
		t.Errorf("a department granting: %v", err)
	}
	// Granted the next morning: one working day more from the old deadline
	// (Wednesday 10:00), whatever the time the decision took.
	e := must(t, c, Request{Action: GrantExtension, Note: "ok", Calendar: cal}, dispatcher, at(2, 9, 30))
	p = c.GetParts()[0]
	if due := p.GetHandleDeadline().GetDueAt().AsTime(); !due.Equal(at(3, 10, 0)) {
		t.Errorf("due after the extension %s, want Thursday 10:00", due.In(cal.Location()))
	}
	if p.GetExtension().GetState() != ExtensionGranted || p.GetExtension().GetDecidedBy() != "d1" || !strings.Contains(e.GetEffect(), "moved") {
		t.Errorf("granted extension %v, entry %v", p.GetExtension(), e)
	}
	// A second request, refused, changes no deadline.
	must(t, c, Request{Action: RequestExtension, Note: "again", Until: at(10, 17, 0)}, water, at(2, 10, 0))
	must(t, c, Request{Action: RefuseExtension, Note: "no more"}, dispatcher, at(2, 10, 5))
	if p := c.GetParts()[0]; p.GetExtension().GetState() != ExtensionRefused || !p.GetHandleDeadline().GetDueAt().AsTime().Equal(at(3, 10, 0)) {
		t.Errorf("after refusal: %v", p)
	}

	// Natural-time deadlines refuse working units.
	nat := dispatchedCase(t)
	must(t, nat, Request{Action: Accept}, water, t0)
	if _, err := Apply(nat, Request{Action: RequestExtension, Note: "x", ExtendBy: time.Hour, ExtendWorking: true}, water, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("working units on a natural deadline: %v", err)
	}
	must(t, nat, Request{Action: RequestExtension, Note: "x", ExtendBy: 90 * time.Minute}, water, t0)
	must(t, nat, Request{Action: GrantExtension}, commander, t0.Add(time.Hour))
	if due := nat.GetParts()[0].GetHandleDeadline().GetDueAt().AsTime(); !due.Equal(t0.Add(3*time.Hour + 30*time.Minute)) {
		t.Errorf("natural extension: due %v", due)
	}
}

func TestMerge(t *testing.T) {
	dup, target := dispatchedCase(t), dispatchedCase(t)
	target.Id = "xuhui-01jz2g93z0ptff52h35j58yj81"
	for _, r := range []struct {
		name string
		by   Actor
		req  Request
		want error
	}{
		{"no target", dispatcher, Request{Action: Merge}, ErrInvalid},
		{"into itself", dispatcher, Request{Action: Merge, Into: dup.GetId()}, ErrInvalid},
		{"a department merging", water, Request{Action: Merge, Into: target.GetId()}, ErrForbidden},
	} {
		if _, err := Apply(dup, r.req, r.by, t0); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	e, err := RecordMerge(target, dup.GetId(), dispatcher, t0)
	if err != nil || e.GetAction() != string(Absorb) || !slices.Equal(target.GetMerged(), []string{dup.GetId()}) {
		t.Fatalf("RecordMerge: %v, %v; merged %v", e, err, target.GetMerged())
	}
	if _, err := RecordMerge(target, dup.GetId(), dispatcher, t0); err != nil || len(target.GetMerged()) != 1 {
		t.Errorf("RecordMerge again: %v, merged %v", err, target.GetMerged())
	}
	e = must(t, dup, Request{Action: Merge, Into: target.GetId()}, dispatcher, t0)
	if dup.GetStatus() != cancelled || dup.GetMergedInto() != target.GetId() || dup.GetTimerAt() != nil || !strings.Contains(e.GetEffect(), target.GetId()) {
		t.Errorf("merged duplicate: %v, entry %v", dup, e)
	}
	// What is checked before either case is written.
	for _, r := range []struct {
		name string
		by   Actor
		into string
		want error
	}{
		{"a dispatcher", dispatcher, target.GetId(), nil},
		{"a department", water, target.GetId(), ErrForbidden},
		{"into itself", dispatcher, dup.GetId(), ErrInvalid},
		{"into nothing", dispatcher, "", ErrInvalid},
	} {
		if err := CheckMerge(dup.GetId(), Request{Action: Merge, Into: r.into}, r.by); !errors.Is(err, r.want) {
			t.Errorf("CheckMerge, %s: %v, want %v", r.name, err, r.want)
		}
	}
	if err := CheckMergeTarget(dup); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("CheckMergeTarget of a cancelled case: %v", err)
	}
	if err := CheckMergeTarget(target); err != nil {
		t.Errorf("CheckMergeTarget of an open case: %v", err)
	}
	// Once the duplicate is cancelled, the target records it whatever
	// became of the target meanwhile.
	other := "xuhui-01jz2g93z0ptff52h35j58yj82"
	if e, err := RecordMerge(dup, other, dispatcher, t0); err != nil || e.GetFrom() != cancelled || !slices.Contains(dup.GetMerged(), other) {
		t.Errorf("recording a merge on a cancelled case: %v, %v", e, err)
	}
	if _, err := RecordMerge(target, target.GetId(), dispatcher, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("recording a case on itself: %v", err)
	}
}

func TestManualEscalation(t *testing.T) {
	c := dispatchedCase(t)
	if _, err := Apply(c, Request{Action: Escalate, Note: "x"}, water, t0); !errors.Is(err, ErrForbidden) {
		t.Errorf("a department escalating: %v", err)
	}
	if _, err := Apply(c, Request{Action: Escalate, Note: "x"}, system, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("the system escalating without a deadline: %v", err)
	}
	if _, err := Apply(c, Request{Action: Warn, Note: "x"}, system, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("the system warning without a deadline: %v", err)
	}
	for i, want := range []string{"district centre", "city centre"} {
		e := must(t, c, Request{Action: Escalate, Note: "residents calling again"}, dispatcher, t0)
		if c.GetEscalationLevel() != int32(i+1) || !strings.Contains(e.GetEffect(), want) {
			t.Errorf("escalation %d: level %d, entry %v", i+1, c.GetEscalationLevel(), e)
		}
	}
	if _, err := Apply(c, Request{Action: Escalate, Note: "x"}, commander, t0); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("escalating past the city centre: %v", err)
	}
}

// TestDeadlineMoments follows the clocks of a case no one touches: each
// moment comes once, in order, on the lead's and the assist's parts alike.
func TestDeadlineMoments(t *testing.T) {
	c := dispatchedCase(t)
	if _, _, ok := Due(c, t0.Add(7*time.Minute)); ok {
		t.Fatal("something due before the first warning")
	}
	type fired struct {
		action, dept, stage string
		level               int32
	}
	var got []fired
	ids := map[string]bool{}
	now := t0.Add(5 * time.Hour)
	for range 100 {
		req, id, ok := Due(c, now)
		if !ok {
			break
		}
		if ids[id] {
			t.Fatalf("request id %s came twice", id)
		}
		ids[id] = true
		e := must(t, c, req, System, now)
		got = append(got, fired{e.GetAction(), e.GetDepartment(), strings.Split(id, ":")[2], c.GetEscalationLevel()})
	}
	want := []fired{
		{"warn", "water-affairs", "accept", 0}, {"warn", "traffic-police", "accept", 0},
		{"escalate", "water-affairs", "accept", 1}, {"escalate", "traffic-police", "accept", 1},
		{"escalate", "water-affairs", "accept", 2}, {"escalate", "traffic-police", "accept", 2},
		{"warn", "water-affairs", "handle", 2}, {"warn", "traffic-police", "handle", 2},
		{"escalate", "water-affairs", "handle", 2}, {"escalate", "traffic-police", "handle", 2},
		{"escalate", "water-affairs", "handle", 2}, {"escalate", "traffic-police", "handle", 2},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("moments\n got %v\nwant %v", got, want)
	}
	if !c.GetWarned() || !c.GetOverdue() || c.GetTimerAt() != nil {
		t.Errorf("after every moment: warned %v overdue %v timer %v", c.GetWarned(), c.GetOverdue(), c.GetTimerAt())
	}
}

func TestStaleTimerIsRefused(t *testing.T) {
	c := dispatchedCase(t)
	req, _, ok := Due(c, t0.Add(9*time.Minute))
	if !ok || req.Action != Warn {
		t.Fatalf("Due = %v, %v", req, ok)
	}
	stale := proto.CloneOf(c)
	e := must(t, c, req, System, t0.Add(9*time.Minute))
	if !c.GetWarned() || e.GetRole() != string(RoleSystem) || !strings.Contains(e.GetEffect(), "near") {
		t.Errorf("after the warning: warned %v, entry %v", c.GetWarned(), e)
	}
	// The same moment again: refused, it fired.
	if _, err := Apply(c, req, System, t0.Add(9*time.Minute)); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("a moment fired twice: %v", err)
	}
	// The department signs before the sweeper acts on its copy.
	must(t, stale, Request{Action: Accept}, water, t0.Add(9*time.Minute))
	if _, err := Apply(stale, req, System, t0.Add(9*time.Minute)); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("a moment of a deadline met: %v", err)
	}
	// Signing for the part ends the accept deadline and its warning.
	must(t, c, Request{Action: Accept}, water, t0.Add(9*time.Minute))
	must(t, c, Request{Action: Accept}, traffic, t0.Add(9*time.Minute))
	if c.GetWarned() || !c.GetTimerAt().AsTime().Equal(t0.Add(96*time.Minute)) {
		t.Errorf("after signing: warned %v, timer %v", c.GetWarned(), c.GetTimerAt().AsTime())
	}
}

func TestTableIsComplete(t *testing.T) {
	for _, a := range []Action{Create, Dispatch, Accept, Return, Handle, Verify, Suspend, Resume, RequestExtension,
		GrantExtension, RefuseExtension, Cancel, Merge, Comment, Escalate, Warn} {
		if !Known(a) {
			t.Errorf("action %s has no row", a)
		}
	}
	for _, row := range Table() {
		if len(row.From) == 0 || len(row.Roles) == 0 || row.Summary == "" || row.apply == nil {
			t.Errorf("row %s %s has no start, roles, summary or effect", row.Action, row.Outcome)
		}
	}
	if Known(Absorb) {
		t.Error("absorb is a row; it is only the other half of merge")
	}
}

// Each change says what it means to the people who must hear of it.
func TestHappenings(t *testing.T) {
	text := func(hs []*cityhubv1.Happening) string {
		var b []string
		for _, h := range hs {
			b = append(b, h.GetKind()+":"+h.GetDepartment())
		}
		return strings.Join(b, " ")
	}
	c := &cityhubv1.Case{Id: "xuhui-01jz2g93z0ptff52h35j58yj80", District: "xuhui", Title: "积水"}
	entry, err := New(c, spec(), system, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(entry.GetHappened()); got != "opened: dispatched:water-affairs dispatched:traffic-police" {
		t.Errorf("creation: %s", got)
	}
	var moments []string
	for now := t0.Add(11 * time.Minute); ; {
		req, _, ok := Due(c, now)
		if !ok || len(moments) == 4 {
			break
		}
		moments = append(moments, text(must(t, c, req, System, now).GetHappened()))
	}
	want := []string{"warned:water-affairs", "warned:traffic-police", "overdue:water-affairs escalated:district-centre", "overdue:traffic-police"}
	if !slices.Equal(moments, want) {
		t.Errorf("deadline moments:\n got %q\nwant %q", moments, want)
	}
	for _, step := range []struct {
		req  Request
		by   Actor
		want string
	}{
		{Request{Action: Comment, Note: "on my way"}, water, ""},
		{Request{Action: Accept}, water, "accepted:water-affairs"},
		{Request{Action: Accept}, traffic, "accepted:traffic-police"},
		{Request{Action: Escalate, Note: "needs the city"}, dispatcher, "escalated:city-centre"},
		{Request{Action: Handle, Note: "pumped out"}, water, "handled:water-affairs"},
		{Request{Action: Handle, Note: "road open"}, traffic, "handled:traffic-police"},
		{Request{Action: Verify, Pass: &no, Note: "still wet"}, dispatcher, "verify_failed:water-affairs verify_failed:traffic-police"},
		{Request{Action: Handle, Note: "dry now"}, water, "handled:water-affairs"},
		{Request{Action: Handle, Note: "open"}, traffic, "handled:traffic-police"},
		{Request{Action: Verify, Pass: &yes}, dispatcher, "closed:"},
	} {
		if got := text(must(t, c, step.req, step.by, t0.Add(time.Hour)).GetHappened()); got != step.want {
			t.Errorf("%s by %s: %q, want %q", step.req.Action, step.by.Subject, got, step.want)
		}
	}
}

// TestLink checks that a link changes nothing of a case's work: its
// status, parts and clocks stay; only the system links; and the target
// records the linked case once.
func TestLink(t *testing.T) {
	c, target := dispatchedCase(t), dispatchedCase(t)
	target.Id = "xuhui-01jz2g93z0ptff52h35j58yj81"
	for _, r := range []struct {
		name string
		by   Actor
		req  Request
		want error
	}{
		{"no target", System, Request{Action: Link}, ErrInvalid},
		{"into itself", System, Request{Action: Link, Into: c.GetId()}, ErrInvalid},
		{"a dispatcher linking", dispatcher, Request{Action: Link, Into: target.GetId()}, ErrForbidden},
	} {
		if _, err := Apply(c, r.req, r.by, t0); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	before := proto.CloneOf(c)
	e := must(t, c, Request{Action: Link, Into: target.GetId()}, System, t0)
	if c.GetLinkedInto() != target.GetId() || c.GetStatus() != before.GetStatus() || !proto.Equal(c.GetParts()[0], before.GetParts()[0]) ||
		!proto.Equal(c.GetTimerAt(), before.GetTimerAt()) {
		t.Errorf("linked case: %v, want %v linked into %s", c, before, target.GetId())
	}
	if len(e.GetHappened()) != 1 || e.GetHappened()[0].GetKind() != HappenedLinked || !strings.Contains(e.GetEffect(), target.GetId()) {
		t.Errorf("link entry = %v", e)
	}
	if _, err := Apply(c, Request{Action: Link, Into: target.GetId()}, System, t0); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("linking again: %v, want ErrForbiddenTransition", err)
	}
	e, err := RecordLink(target, c.GetId(), System, t0)
	if err != nil || e.GetAction() != string(Attach) || !slices.Equal(target.GetLinked(), []string{c.GetId()}) {
		t.Fatalf("RecordLink: %v, %v; linked %v", e, err, target.GetLinked())
	}
	if _, err := RecordLink(target, c.GetId(), System, t0); err != nil || len(target.GetLinked()) != 1 {
		t.Errorf("RecordLink again: %v, linked %v", err, target.GetLinked())
	}
	closedCase := dispatchedCase(t)
	closedCase.Status = cancelled
	if _, err := Apply(closedCase, Request{Action: Link, Into: target.GetId()}, System, t0); !errors.Is(err, ErrForbiddenTransition) {
		t.Errorf("linking a cancelled case: %v, want ErrForbiddenTransition", err)
	}
}
