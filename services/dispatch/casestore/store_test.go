package casestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

var (
	statusDispatched = cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED
	statusAccepted   = cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED
	statusClosed     = cityhubv1.CaseStatus_CASE_STATUS_CLOSED
)

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

func newStore(t *testing.T) (*Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	return New(srv.Client, []string{"xuhui", "huangpu", "pudong-new"}), srv
}

// alertCase returns a dispatched case opened by alert at created, and its
// creation entry.
func alertCase(district, alert string, created time.Time, lead string, assist ...string) (*cityhubv1.Case, *cityhubv1.AuditEntry) {
	c := &cityhubv1.Case{
		Id:            NewID(district, created),
		Version:       1,
		Status:        statusDispatched,
		Title:         "waterlogging on " + district,
		District:      district,
		Origin:        OriginAlert,
		AlertId:       alert,
		AlertStartsAt: timestamppb.New(created.Add(-time.Minute)),
		Lead:          lead,
		Assist:        assist,
		CreatedAt:     timestamppb.New(created),
		UpdatedAt:     timestamppb.New(created),
	}
	c.Parts = append(c.Parts, &cityhubv1.Part{Department: lead, Lead: true, Status: statusDispatched})
	for _, a := range assist {
		c.Parts = append(c.Parts, &cityhubv1.Part{Department: a, Status: statusDispatched})
	}
	e := &cityhubv1.AuditEntry{Version: 1, Action: "create", Actor: "rule:x", At: c.CreatedAt, RequestId: "alert:" + alert, To: statusDispatched}
	return c, e
}

func mustCreate(t *testing.T, s *Store, c *cityhubv1.Case, e *cityhubv1.AuditEntry) {
	t.Helper()
	if _, created, err := s.Create(context.Background(), c, e); err != nil || !created {
		t.Fatalf("Create(%s) = created %v, %v", c.GetId(), created, err)
	}
}

func setStatus(to cityhubv1.CaseStatus, note string) UpdateFunc {
	return func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		from := c.Status
		c.Status = to
		return &cityhubv1.AuditEntry{Action: "test", Note: note, From: from, To: to}, nil
	}
}

func TestNewIDAndDistrictOf(t *testing.T) {
	for _, d := range []string{"xuhui", "pudong-new", "a"} {
		id := NewID(d, t0)
		if got, ok := DistrictOf(id); !ok || got != d {
			t.Errorf("DistrictOf(%q) = %q, %v", id, got, ok)
		}
	}
	for _, bad := range []string{"", "xuhui", "xuhui-", "xuhui-01JD0000000000000000000000", "{x}-01jd0000000000000000000000", "-01jd0000000000000000000000", "xuhui_01jd0000000000000000000000"} {
		if d, ok := DistrictOf(bad); ok {
			t.Errorf("DistrictOf(%q) = %q, want not ok", bad, d)
		}
	}
}

func TestCreateOncePerOrigin(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs", "traffic-police")
	first, created, err := s.Create(ctx, c, e)
	if err != nil || !created {
		t.Fatalf("first Create: created %v, %v", created, err)
	}
	// The same firing again, as a redelivered alert would make it: a new id.
	again, e2 := alertCase("xuhui", "a1", t0.Add(time.Second), "water-affairs")
	again.AlertStartsAt = c.AlertStartsAt
	second, created, err := s.Create(ctx, again, e2)
	if err != nil || created {
		t.Fatalf("second Create: created %v, %v", created, err)
	}
	if !proto.Equal(first, second) {
		t.Errorf("second Create answered %v, want the first change %v", second, first)
	}
	page, err := s.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Cases) != 1 || page.Cases[0].GetId() != c.GetId() {
		t.Fatalf("List = %d cases, want only %s", len(page.Cases), c.GetId())
	}
	// A new firing of the same alert is a new case.
	next, e3 := alertCase("xuhui", "a1", t0.Add(time.Hour), "water-affairs")
	mustCreate(t, s, next, e3)
}

func TestCreateRefusesMalformedCases(t *testing.T) {
	s, _ := newStore(t)
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	c.District = "huangpu"
	if _, _, err := s.Create(context.Background(), c, e); !errors.Is(err, ErrInvalid) {
		t.Errorf("district differing from the id: %v, want ErrInvalid", err)
	}
	c, e = alertCase("xuhui", "a1", t0, "water-affairs")
	c.AlertStartsAt = nil
	if _, _, err := s.Create(context.Background(), c, e); !errors.Is(err, ErrInvalid) {
		t.Errorf("alert case without start: %v, want ErrInvalid", err)
	}
}

func TestUpdateChecksVersionAndRequest(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)

	first, err := s.Update(ctx, c.Id, 1, "r-1", setStatus(statusAccepted, "first"))
	if err != nil {
		t.Fatal(err)
	}
	if first.GetCase().GetVersion() != 2 || first.GetChange().GetVersion() != 2 || first.GetChange().GetRequestId() != "r-1" {
		t.Fatalf("update produced %v", first)
	}
	calls := 0
	again, err := s.Update(ctx, c.Id, 1, "r-1", func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		calls++
		return setStatus(statusClosed, "second")(c)
	})
	if err != nil {
		t.Fatalf("repeated request: %v", err)
	}
	if calls != 0 || !proto.Equal(first, again) {
		t.Errorf("repeated request ran the change (%d calls) or answered differently: %v", calls, again)
	}
	if _, err := s.Update(ctx, c.Id, 1, "r-2", setStatus(statusClosed, "stale")); !errors.Is(err, ErrConflict) {
		t.Errorf("stale version: %v, want ErrConflict", err)
	}
	if _, err := s.Update(ctx, c.Id, 7, "r-3", setStatus(statusClosed, "future")); !errors.Is(err, ErrConflict) {
		t.Errorf("future version: %v, want ErrConflict", err)
	}
	if _, err := s.Update(ctx, NewID("xuhui", t0), 1, "r-4", setStatus(statusClosed, "")); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing case: %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, "nonsense", 1, "r-4", setStatus(statusClosed, "")); !errors.Is(err, ErrNotFound) {
		t.Errorf("malformed id: %v, want ErrNotFound", err)
	}
	boom := errors.New("boom")
	if _, err := s.Update(ctx, c.Id, 2, "r-5", func(*cityhubv1.Case) (*cityhubv1.AuditEntry, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("failing change: %v, want it returned", err)
	}
	got, hist, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetVersion() != 2 || got.GetStatus() != statusAccepted || len(hist) != 2 {
		t.Errorf("case at v%d %s with %d entries, want v2 accepted with 2", got.GetVersion(), got.GetStatus().Name(), len(hist))
	}
}

// TestScriptRunTwice replays the very same script call, as go-redis does
// when a reply is lost: the second run must change nothing and answer as
// the first.
func TestScriptRunTwice(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)

	next := proto.CloneOf(c)
	next.Version, next.Status = 2, statusAccepted
	entry := &cityhubv1.AuditEntry{Version: 2, Action: "accept", RequestId: "r-1"}
	w, err := newWrite(next, entry, 1)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.rdb.HGet(ctx, caseKey("xuhui", c.Id), "pb").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	w.remove, w.add, w.baseDigest = indexes(c), indexes(next), digestOf(stored)
	r1, err := w.run(ctx, s.rdb, updateScript)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := w.run(ctx, s.rdb, updateScript)
	if err != nil {
		t.Fatal(err)
	}
	if r1.status != "ok" || r2.status != "dup" || r1.value != r2.value {
		t.Errorf("runs answered %q then %q (same reply: %v)", r1.status, r2.status, r1.value == r2.value)
	}
	_, hist, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Errorf("history has %d entries, want 2", len(hist))
	}

	// The creation script run twice with the same origin: one case.
	c2, e2 := alertCase("xuhui", "a2", t0, "water-affairs")
	cw, err := newWrite(c2, e2, 0)
	if err != nil {
		t.Fatal(err)
	}
	cw.origin, _ = originKey(c2, e2)
	cw.setOrigin, cw.add = true, indexes(c2)
	for i, want := range []string{"ok", "exists"} {
		r, err := cw.run(ctx, s.rdb, createScript)
		if err != nil || r.status != want {
			t.Errorf("create run %d: %q, %v; want %q", i+1, r.status, err, want)
		}
	}
}

func TestRaceOnOneVersion(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := s.Update(ctx, c.Id, 1, fmt.Sprintf("r-%d", i), setStatus(statusAccepted, fmt.Sprint(i)))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 49 {
		t.Errorf("%d won and %d conflicted, want 1 and 49", wins.Load(), conflicts.Load())
	}
	_, hist, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Errorf("history has %d entries, want 2", len(hist))
	}
}

func TestIndexesFollowTheCase(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs", "traffic-police")
	mustCreate(t, s, c, e)
	if _, err := s.Update(ctx, c.Id, 1, "r-1", func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.Status = statusClosed
		c.Assist = nil
		c.Parts = c.Parts[:1]
		return &cityhubv1.AuditEntry{Action: "verify:pass"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		indexAll("xuhui"):                        true,
		indexOpen("xuhui"):                       false,
		indexStatus("xuhui", statusDispatched):   false,
		indexStatus("xuhui", statusClosed):       true,
		indexDept("xuhui", "water-affairs"):      true,
		indexDeptOpen("xuhui", "water-affairs"):  false,
		indexDept("xuhui", "traffic-police"):     false,
		indexDeptOpen("xuhui", "traffic-police"): false,
	} {
		_, err := srv.Client.ZScore(ctx, key, c.Id).Result()
		if got := err == nil; got != want {
			t.Errorf("%s holds the case: %v, want %v", key, got, want)
		}
	}
	open, err := s.OpenCases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 0 {
		t.Errorf("OpenCases = %d cases, want none", len(open))
	}
}

func TestListPagesAndFilters(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var all []*cityhubv1.Case
	for i := range 23 {
		district := []string{"xuhui", "huangpu", "pudong-new"}[i%3]
		// Three cases share every creation millisecond, across and within districts.
		created := t0.Add(time.Duration(i/3) * time.Minute)
		lead := "water-affairs"
		if i%2 == 1 {
			lead = "gas"
		}
		c, e := alertCase(district, fmt.Sprintf("a%d", i), created, lead)
		if i%5 == 0 {
			c.Status = statusClosed
		}
		mustCreate(t, s, c, e)
		all = append(all, c)
	}
	// A few in one district at exactly the same millisecond.
	for i := range 4 {
		c, e := alertCase("xuhui", fmt.Sprintf("tie%d", i), t0.Add(time.Hour), "gas")
		mustCreate(t, s, c, e)
		all = append(all, c)
	}
	order := func(cs []*cityhubv1.Case) []string {
		ps := make([]position, len(cs))
		for i, c := range cs {
			ps[i] = position{c.GetCreatedAt().AsTime().UnixMilli(), c.GetId()}
		}
		slices.SortFunc(ps, func(a, b position) int {
			if a.before(b) {
				return -1
			}
			return 1
		})
		ids := make([]string, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		return ids
	}
	ids := func(cs []*cityhubv1.Case) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.GetId()
		}
		return out
	}
	filter := func(keep func(*cityhubv1.Case) bool) []*cityhubv1.Case {
		return slices.DeleteFunc(slices.Clone(all), func(c *cityhubv1.Case) bool { return !keep(c) })
	}
	tests := []struct {
		name string
		f    Filter
		want []*cityhubv1.Case
	}{
		{"everything", Filter{}, all},
		{"one district", Filter{Districts: []string{"xuhui"}}, filter(func(c *cityhubv1.Case) bool { return c.District == "xuhui" })},
		{"no district", Filter{Districts: []string{}}, nil},
		{"open", Filter{Open: true}, filter(func(c *cityhubv1.Case) bool { return c.Status.Open() })},
		{"closed", Filter{Status: statusClosed}, filter(func(c *cityhubv1.Case) bool { return c.Status == statusClosed })},
		{"gas", Filter{Department: "gas"}, filter(func(c *cityhubv1.Case) bool { return c.Lead == "gas" })},
		{"gas open in two districts", Filter{Department: "gas", Open: true, Districts: []string{"xuhui", "pudong-new"}}, filter(func(c *cityhubv1.Case) bool {
			return c.Lead == "gas" && c.Status.Open() && c.District != "huangpu"
		})},
		{"gas closed", Filter{Department: "gas", Status: statusClosed}, filter(func(c *cityhubv1.Case) bool { return c.Lead == "gas" && c.Status == statusClosed })},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 2, 4, 7, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				f := tt.f
				f.Limit = limit
				var got []*cityhubv1.Case
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatal("paging does not end")
					}
					page, err := s.List(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(page.Cases) > limit {
						t.Fatalf("page of %d cases, limit %d", len(page.Cases), limit)
					}
					got = append(got, page.Cases...)
					if page.NextCursor == "" {
						break
					}
					f.Cursor = page.NextCursor
				}
				if want := order(tt.want); !slices.Equal(ids(got), want) {
					t.Errorf("listed\n%v\nwant\n%v", ids(got), want)
				}
			})
		}
	}
	if _, err := s.List(ctx, Filter{Cursor: "not a cursor"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
}

func TestRestoreKeepsTheHighestVersion(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	var changes []*cityhubv1.CaseChange
	changes = append(changes, &cityhubv1.CaseChange{Case: c, Change: e})
	for i, st := range []cityhubv1.CaseStatus{statusAccepted, statusClosed} {
		ch, err := s.Update(ctx, c.Id, int64(i+1), fmt.Sprintf("r-%d", i), setStatus(st, ""))
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, ch)
	}
	wantCase, wantHist, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}

	empty, _ := newStore(t)
	// Out of order and twice over: the result must be the same.
	for _, i := range []int{2, 0, 1, 2, 0} {
		if err := empty.Restore(ctx, changes[i]); err != nil {
			t.Fatal(err)
		}
	}
	gotCase, gotHist, err := empty.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(gotCase, wantCase) {
		t.Errorf("restored case\n%v\nwant\n%v", gotCase, wantCase)
	}
	if len(gotHist) != len(wantHist) {
		t.Fatalf("restored history has %d entries, want %d", len(gotHist), len(wantHist))
	}
	for i := range gotHist {
		if !proto.Equal(gotHist[i], wantHist[i]) {
			t.Errorf("history entry %d: %v, want %v", i, gotHist[i], wantHist[i])
		}
	}
	page, err := empty.List(ctx, Filter{Status: statusClosed})
	if err != nil || len(page.Cases) != 1 {
		t.Errorf("closed cases after restore: %d, %v", len(page.Cases), err)
	}
	page, err = empty.List(ctx, Filter{Open: true})
	if err != nil || len(page.Cases) != 0 {
		t.Errorf("open cases after restore: %d, %v", len(page.Cases), err)
	}
	// The restored request log and origin keep their promises.
	again, err := empty.Update(ctx, c.Id, 1, "r-0", setStatus(statusClosed, ""))
	if err != nil || !proto.Equal(again, changes[1]) {
		t.Errorf("repeated request after restore: %v, %v", again, err)
	}
	dup, _ := alertCase("xuhui", "a1", t0.Add(time.Second), "water-affairs")
	dup.AlertStartsAt = c.AlertStartsAt
	if _, created, err := empty.Create(ctx, dup, e); err != nil || created {
		t.Errorf("redelivered alert after restore: created %v, %v", created, err)
	}
}

// TestOneHashTagPerScript checks what lets the scripts run on Redis Cluster:
// every key of one write carries the same hash tag.
func TestOneHashTagPerScript(t *testing.T) {
	c, e := alertCase("pudong-new", "a1", t0, "water-affairs", "traffic-police", "gas")
	origin, err := originKey(c, e)
	if err != nil {
		t.Fatal(err)
	}
	keys := append([]string{caseKey(c.District, c.Id), historyKey(c.District, c.Id), requestsKey(c.District, c.Id), origin}, indexes(c)...)
	keys = append(keys, requestOriginKey(c.District, "req-1"), timersKey(c.District), leasesKey(c.District))
	// The refusal keys, with an actor whose name holds braces of its own.
	keys = append(keys, deniedActorsKey(c.District, c.Id), deniedActorKey(c.District, c.Id, "{evil}x"),
		deniedCountsKey(c.District, c.Id), deniedOverflowKey(c.District, c.Id), legacyDeniedKey(c.District, c.Id))
	for _, k := range keys {
		open := strings.IndexByte(k, '{')
		end := strings.IndexByte(k, '}')
		if open < 0 || end < open || k[open+1:end] != "pudong-new" {
			t.Errorf("key %q does not carry the hash tag {pudong-new}", k)
		}
	}
}
