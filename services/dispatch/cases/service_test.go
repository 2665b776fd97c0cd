package cases_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testCatalog = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
  - {code: huangpu, name: 黄浦区, centre: {lon: 121.49, lat: 31.23}}
departments:
  - {code: water-affairs, name: 水务局}
  - {code: traffic-police, name: 交警}
  - {code: gas, name: 燃气}
event_types:
  - {code: waterlogging, name: 道路积水, owner: water-affairs, class: urgent}
case_classes:
  urgent:   {accept: 10m, handle: 2h, in: natural}
`

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

// fixture is a Service on a real Redis whose published changes are kept.
type fixture struct {
	svc *cases.Service

	mu        sync.Mutex
	published []*cityhubv1.CaseChange
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	f.svc, err = cases.New(cases.Options{
		Store: casestore.New(redistest.Start(t).Client, cat.DistrictCodes()),
		Publisher: cases.PublisherFunc(func(_ context.Context, c *cityhubv1.CaseChange) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.published = append(f.published, c)
			return nil
		}),
		Catalog:  cat,
		Calendar: workcal.Default(),
		Now:      func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) last() *cityhubv1.CaseChange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.published[len(f.published)-1]
}

var (
	commander  = &auth.Principal{Subject: "chief", Role: auth.RoleCommander}
	dispatcher = &auth.Principal{Subject: "desk-1", Role: auth.RoleDispatcher, Districts: []string{"xuhui"}}
	water      = &auth.Principal{Subject: "li.wei", Role: auth.RoleDepartment, Dept: "water-affairs"}
)

// open opens a case in xuhui dispatched to water-affairs, at version 1.
func (f *fixture) open(t *testing.T, requestID string) cases.Case {
	t.Helper()
	c, created, err := f.svc.Create(context.Background(), dispatcher, cases.CreateRequest{
		Title: "积水", District: "xuhui", EventType: "waterlogging", Lead: "water-affairs", RequestID: requestID,
	})
	if err != nil || !created {
		t.Fatalf("Create: %v (created %v)", err, created)
	}
	return c
}

// An acknowledgement link in a notification accepts a department's part on
// behalf of the person it was sent to, and says so in the audit.
func TestActThroughAnotherChannel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.open(t, "open-1")
	id := c.Case.GetId()
	// The link was sent at version 1; a dispatcher commented meanwhile.
	if _, err := f.svc.Act(ctx, dispatcher, id, cases.ActRequest{Action: lifecycle.Comment, Note: "on its way", ExpectedVersion: 1, RequestID: "c1"}); err != nil {
		t.Fatal(err)
	}
	ack := cases.ActRequest{Action: lifecycle.Accept, ExpectedVersion: 1, RequestID: "ack-1", Via: "notify:sms"}
	_, err := f.svc.Act(ctx, water, id, ack)
	var conflict *cases.ConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, cases.ErrConflict) || conflict.Current.GetVersion() != 2 {
		t.Fatalf("acknowledging at a stale version: %v, want a conflict carrying version 2", err)
	}
	ack.ExpectedVersion = conflict.Current.GetVersion()
	got, err := f.svc.Act(ctx, water, id, ack)
	if err != nil {
		t.Fatal(err)
	}
	if got.Case.GetStatus() != cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED || got.Case.GetVersion() != 3 {
		t.Errorf("case %s v%d, want accepted v3", got.Case.GetStatus(), got.Case.GetVersion())
	}
	if e := f.last().GetChange(); e.GetActor() != "li.wei" || e.GetVia() != "notify:sms" || e.GetNote() != "" {
		t.Errorf("published entry by %q via %q with note %q, want li.wei via notify:sms", e.GetActor(), e.GetVia(), e.GetNote())
	}
	// Clicking the link again changes nothing and answers the same.
	again, err := f.svc.Act(ctx, water, id, ack)
	if err != nil || again.Case.GetVersion() != 3 {
		t.Errorf("repeated acknowledgement: v%d, %v; want v3 and no error", again.Case.GetVersion(), err)
	}

	withNote := cases.ActRequest{Action: lifecycle.Comment, Note: "pump on site", ExpectedVersion: 3, RequestID: "c2", Via: "notify:sms"}
	if _, err := f.svc.Act(ctx, water, id, withNote); err != nil {
		t.Fatal(err)
	}
	read, err := f.svc.Get(ctx, commander, id)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range read.History {
		notes = append(notes, e.GetNote()+"|"+e.GetVia())
	}
	if want := []string{"|", "on its way|", "|notify:sms", "pump on site|notify:sms"}; !slices.Equal(notes, want) {
		t.Errorf("notes|via %q, want %q", notes, want)
	}

	// A channel cannot stand in for a note the action needs.
	_, err = f.svc.Act(ctx, water, id, cases.ActRequest{Action: lifecycle.Comment, ExpectedVersion: 4, RequestID: "c3", Via: "notify:sms"})
	if !errors.Is(err, cases.ErrInvalid) {
		t.Errorf("comment with no note through a channel: %v, want invalid", err)
	}
	_, err = f.svc.Act(ctx, water, id, cases.ActRequest{Action: lifecycle.Comment, Note: "x", ExpectedVersion: 4, RequestID: "c4", Via: "SMS link!"})
	var inv *cases.InvalidError
	if !errors.As(err, &inv) || inv.Field != "via" {
		t.Errorf("a malformed channel: %v, want invalid via", err)
	}
}

// An Open311 adapter reads the status of the case a report became, in the
// scope of whoever asks.
func TestGet(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.open(t, "open-1").Case.GetId()
	for _, tc := range []struct {
		name string
		p    *auth.Principal
		id   string
		err  error
	}{
		{"a viewer of every district", &auth.Principal{Subject: "open311", Role: auth.RoleViewer}, id, nil},
		{"the lead department", water, id, nil},
		{"a viewer of another district", &auth.Principal{Subject: "v", Role: auth.RoleViewer, Districts: []string{"huangpu"}}, id, cases.ErrNotFound},
		{"a department with no part", &auth.Principal{Subject: "g", Role: auth.RoleDepartment, Dept: "gas"}, id, cases.ErrNotFound},
		{"a source", &auth.Principal{Subject: "s", Role: auth.RoleSource, Sources: []string{"iot"}}, id, cases.ErrNotFound},
		{"a case that does not exist", commander, casestore.NewID("xuhui", t0), cases.ErrNotFound},
		{"not a case id", commander, "../etc", cases.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.svc.Get(ctx, tc.p, tc.id)
			if !errors.Is(err, tc.err) || (err != nil && err != cases.ErrNotFound) {
				t.Fatalf("Get: %v, want %v", err, tc.err)
			}
			if err == nil && (c.Case.GetStatus() != cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED || len(c.History) != 1) {
				t.Errorf("case %s with %d entries, want dispatched with 1", c.Case.GetStatus(), len(c.History))
			}
		})
	}
}

func TestRefusalsByKind(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.open(t, "open-1").Case.GetId()
	viewer := &auth.Principal{Subject: "v", Role: auth.RoleViewer}
	yes := true
	for _, tc := range []struct {
		name  string
		p     *auth.Principal
		req   cases.ActRequest
		kind  error
		field string // of an *InvalidError
		says  string // a word of the message
	}{
		{"a role that may not act", viewer, cases.ActRequest{Action: lifecycle.Accept, ExpectedVersion: 1, RequestID: "r1"}, cases.ErrForbidden, "", "viewer"},
		{"not yet handled", dispatcher, cases.ActRequest{Action: lifecycle.Verify, Pass: &yes, ExpectedVersion: 1, RequestID: "r2"}, cases.ErrTransition, "", "dispatched"},
		{"no version", water, cases.ActRequest{Action: lifecycle.Accept, RequestID: "r3"}, cases.ErrInvalid, "expected_version", "version"},
		{"a hub request id", water, cases.ActRequest{Action: lifecycle.Accept, ExpectedVersion: 1, RequestID: "timer:x"}, cases.ErrInvalid, "request_id", "timer:"},
		{"outside the caller's scope", &auth.Principal{Subject: "g", Role: auth.RoleDepartment, Dept: "gas"}, cases.ActRequest{Action: lifecycle.Accept, ExpectedVersion: 1, RequestID: "r4"}, cases.ErrNotFound, "", "no such case"},
		{"merge into a case that is not there", dispatcher, cases.ActRequest{Action: lifecycle.Merge, Into: casestore.NewID("xuhui", t0.Add(time.Hour)), ExpectedVersion: 1, RequestID: "r5"}, cases.ErrInvalid, "into", "no such case"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Act(ctx, tc.p, id, tc.req)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Act: %v, want %v saying %q", err, tc.kind, tc.says)
			}
			var inv *cases.InvalidError
			if tc.field != "" && (!errors.As(err, &inv) || inv.Field != tc.field) {
				t.Errorf("Act: %v, want field %s", err, tc.field)
			}
		})
	}
	_, _, err := f.svc.Create(ctx, dispatcher, cases.CreateRequest{Title: "x", District: "huangpu", RequestID: "h1"})
	var forbidden *cases.ForbiddenError
	if !errors.As(err, &forbidden) || forbidden.Reason != "district huangpu is outside your scope" {
		t.Errorf("Create outside the caller's districts: %v", err)
	}
	if _, err := f.svc.Denials(ctx, dispatcher, id); !errors.Is(err, cases.ErrForbidden) {
		t.Errorf("Denials as a dispatcher: %v, want forbidden", err)
	}
	if _, err := f.svc.Stats(ctx, water, cases.StatsRequest{Department: "gas"}); !errors.Is(err, cases.ErrForbidden) {
		t.Errorf("gas's figures for water-affairs: %v, want forbidden", err)
	}
	// Nothing refused moved the case.
	if c, err := f.svc.Get(ctx, commander, id); err != nil || c.Case.GetVersion() != 1 {
		t.Errorf("case at v%d (%v), want v1", c.Case.GetVersion(), err)
	}
}

func TestMergeAndList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	target := f.open(t, "open-1").Case.GetId()
	dup := f.open(t, "open-2").Case.GetId()
	got, err := f.svc.Act(ctx, dispatcher, dup, cases.ActRequest{Action: lifecycle.Merge, Into: target, ExpectedVersion: 1, RequestID: "m1"})
	if err != nil || got.Case.GetMergedInto() != target {
		t.Fatalf("merge: %v, merged into %q", err, got.Case.GetMergedInto())
	}
	tc, err := f.svc.Get(ctx, commander, target)
	if err != nil || !slices.Equal(tc.Case.GetMerged(), []string{dup}) {
		t.Errorf("target lists %v (%v), want [%s]", tc.Case.GetMerged(), err, dup)
	}
	page, err := f.svc.List(ctx, water, cases.ListRequest{Open: true})
	if err != nil || len(page.Cases) != 1 || page.Cases[0].GetId() != target {
		t.Errorf("water's open cases: %d (%v), want the target", len(page.Cases), err)
	}
	page, err = f.svc.List(ctx, water, cases.ListRequest{Department: "gas"})
	if err != nil || len(page.Cases) != 0 {
		t.Errorf("water asking for gas's cases: %d (%v), want none", len(page.Cases), err)
	}
	var inv *cases.InvalidError
	if _, err := f.svc.List(ctx, commander, cases.ListRequest{District: "atlantis"}); !errors.As(err, &inv) || inv.Field != "district" {
		t.Errorf("an unknown district: %v, want invalid district", err)
	}
}
