package cases_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
)

// TestLink links a street case into a district case: both record it and
// are published, the street case's first; linking again changes and
// publishes nothing; a closed case, or a closed target, is left alone; the
// linked case goes on being worked.
func TestLink(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	street, district := f.open(t, "street").Case.GetId(), f.open(t, "district").Case.GetId()
	before := len(f.published)
	if err := f.svc.Link(ctx, street, district); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := f.published[before:]
	f.mu.Unlock()
	if len(got) != 2 || got[0].GetCase().GetId() != street || got[0].GetChange().GetAction() != string(lifecycle.Link) ||
		got[1].GetCase().GetId() != district || got[1].GetChange().GetAction() != string(lifecycle.Attach) {
		t.Fatalf("published %v, want the link on the street case, then its record on the district case", got)
	}
	if s := got[0].GetCase(); s.GetLinkedInto() != district || s.GetStatus().Name() != "dispatched" {
		t.Errorf("street case %v", s)
	}
	if d := got[1].GetCase(); !slices.Equal(d.GetLinked(), []string{street}) {
		t.Errorf("district case lists %v", d.GetLinked())
	}

	// Every update of an inhibited alert asks again: nothing happens.
	if err := f.svc.Link(ctx, street, district); err != nil || len(f.published) != before+2 {
		t.Errorf("linking again: %v, %d more changes published", err, len(f.published)-before-2)
	}

	// The street case is worked on as before.
	c, err := f.svc.Act(ctx, water, street, cases.ActRequest{Action: lifecycle.Accept, ExpectedVersion: got[0].GetCase().GetVersion(), RequestID: "acc"})
	if err != nil || c.Case.GetStatus().Name() != "accepted" {
		t.Errorf("accepting the linked case: %v, %v", c.Case.GetStatus(), err)
	}

	// A target that is over takes no more cases; a missing one is an error.
	other := f.open(t, "other").Case.GetId()
	if _, err := f.svc.Act(ctx, dispatcher, district, cases.ActRequest{Action: lifecycle.Cancel, Note: "over", ExpectedVersion: 2, RequestID: "end"}); err != nil {
		t.Fatal(err)
	}
	n := len(f.published)
	if err := f.svc.Link(ctx, other, district); err != nil || len(f.published) != n {
		t.Errorf("linking into a cancelled case: %v, %d changes", err, len(f.published)-n)
	}
	if err := f.svc.Link(ctx, other, "xuhui-nosuchcase"); !errors.Is(err, casestore.ErrNotFound) {
		t.Errorf("linking into a missing case: %v, want ErrNotFound", err)
	}
}
