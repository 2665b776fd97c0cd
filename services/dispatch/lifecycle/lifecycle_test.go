package lifecycle

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

var (
	t0         = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)
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
	entry, err := New(c, spec(), system, t0)
	if err != nil {
		t.Fatal(err)
	}
	if entry.GetTo() != dispatched || entry.GetAction() != "create" {
		t.Fatalf("creation entry %v", entry)
	}
	return c
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
		t.Errorf("parts %v, want the lead and one assist", c.GetParts())
	}
	if _, err := New(&cityhubv1.Case{Id: "x", District: "x", Title: "t"}, nil, water, t0); !errors.Is(err, ErrForbidden) {
		t.Errorf("a department creating: %v, want ErrForbidden", err)
	}
	manual := &cityhubv1.Case{Id: "x", District: "x", Title: "t"}
	if _, err := New(manual, nil, dispatcher, t0); err != nil || manual.GetStatus() != new_ {
		t.Errorf("undispatched creation: %s, %v", manual.GetStatus().Name(), err)
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
		{"an assist may not return", traffic, Request{Action: Return, Note: "not ours"}, ErrForbidden, dispatched},
		{"return needs a reason", water, Request{Action: Return}, ErrInvalid, dispatched},
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
		{"gas may not comment", gas, Request{Action: Comment, Note: "hi"}, ErrForbidden, closed},
		{"unknown action", commander, Request{Action: "explode"}, ErrInvalid, closed},
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
	if c.GetClosedAt() == nil {
		t.Error("closed case has no closed_at")
	}
}

func TestReturnAndRedispatch(t *testing.T) {
	c := dispatchedCase(t)
	if _, err := Apply(c, Request{Action: Return, Note: "sewer is not ours"}, water, t0); err != nil {
		t.Fatal(err)
	}
	if c.GetStatus() != new_ || c.GetLead() != "" || len(c.GetParts()) != 0 || c.GetAcceptDueAt() != nil {
		t.Fatalf("returned case: %v", c)
	}
	if _, err := Apply(c, Request{Action: Dispatch}, dispatcher, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("dispatch without lead: %v", err)
	}
	if _, err := Apply(c, Request{Action: Dispatch, Dispatch: &cityhubv1.DispatchSpec{Lead: "gas"}}, water, t0); !errors.Is(err, ErrForbidden) {
		t.Errorf("a department dispatching: %v", err)
	}
	if _, err := Apply(c, Request{Action: Dispatch, Dispatch: &cityhubv1.DispatchSpec{Lead: "gas"}}, dispatcher, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c.GetStatus() != dispatched || c.GetLead() != "gas" || !c.GetDispatchedAt().AsTime().Equal(t0.Add(time.Hour)) {
		t.Errorf("redispatched case: %v", c)
	}
	if _, err := Apply(c, Request{Action: Cancel, Note: "duplicate"}, dispatcher, t0); err != nil || c.GetStatus() != cancelled {
		t.Errorf("cancel: %s, %v", c.GetStatus().Name(), err)
	}
}

func TestTableIsComplete(t *testing.T) {
	for _, a := range []Action{Create, Dispatch, Accept, Return, Handle, Verify, Suspend, Resume, Cancel, Merge, Comment, Escalate} {
		if !Known(a) {
			t.Errorf("action %s has no row", a)
		}
	}
	for _, row := range Table() {
		if len(row.From) == 0 || len(row.Roles) == 0 {
			t.Errorf("row %s %s has no start or no roles", row.Action, row.Outcome)
		}
		if !row.Implemented() {
			c := dispatchedCase(t)
			if _, err := Apply(c, Request{Action: row.Action, Note: "x"}, commander, t0); !errors.Is(err, ErrNotImplemented) {
				t.Errorf("%s: %v, want ErrNotImplemented", row.Action, err)
			}
		}
	}
}
