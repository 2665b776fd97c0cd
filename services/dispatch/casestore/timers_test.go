package casestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// timed returns a dispatched case whose timer is due at due.
func timed(district, alert string, due time.Time) (*cityhubv1.Case, *cityhubv1.AuditEntry) {
	c, e := alertCase(district, alert, t0, "water-affairs")
	c.TimerAt = timestamppb.New(due)
	return c, e
}

func setTimer(at *time.Time, note string) UpdateFunc {
	return func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.TimerAt = nil
		if at != nil {
			c.TimerAt = timestamppb.New(*at)
		}
		return &cityhubv1.AuditEntry{Action: "test", Note: note}, nil
	}
}

func wantTimer(t *testing.T, s *Store, id string, want *time.Time) {
	t.Helper()
	got, ok, err := s.Timer(context.Background(), id)
	switch {
	case err != nil:
		t.Fatal(err)
	case want == nil && ok:
		t.Errorf("timer of %s armed at %v, want none", id, got)
	case want != nil && (!ok || !got.Equal(*want)):
		t.Errorf("timer of %s at %v (armed %v), want %v", id, got, ok, *want)
	}
}

// TestTimerFollowsTheCase checks that every write arms the timer the case
// asks for, in the same script: creation, a change, closing.
func TestTimerFollowsTheCase(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	due := t0.Add(8 * time.Minute)
	c, e := timed("xuhui", "a1", due)
	mustCreate(t, s, c, e)
	wantTimer(t, s, c.Id, &due)

	later := t0.Add(time.Hour)
	if _, err := s.Update(ctx, c.Id, 1, "r1", setTimer(&later, "moved")); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, c.Id, &later)
	if _, err := s.Update(ctx, c.Id, 2, "r2", func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.Status = statusClosed // a closed case runs no clock, whatever it says
		return &cityhubv1.AuditEntry{Action: "test"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, c.Id, nil)

	// Restoring into an empty Redis arms the timers again.
	c2, e2 := timed("huangpu", "a2", due)
	mustCreate(t, s, c2, e2)
	fresh, _ := newStore(t)
	latest, err := s.Latest(ctx, c2.Id)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Restore(ctx, latest); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, fresh, c2.Id, &due)
}

func TestClaimLeaseAndRelease(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		c, e := timed("xuhui", fmt.Sprint("a", i), t0.Add(time.Duration(i)*time.Minute))
		mustCreate(t, s, c, e)
		ids = append(ids, c.Id)
	}
	other, oe := timed("huangpu", "b", t0)
	mustCreate(t, s, other, oe)
	lease := time.Minute

	// At t0+2m three timers are due: a claim of two takes the earliest two.
	now := t0.Add(2 * time.Minute)
	got, err := s.Claim(ctx, "xuhui", now, lease, 2)
	if err != nil || len(got) != 2 || got[0] != (Claimed{ID: ids[0]}) || got[1] != (Claimed{ID: ids[1]}) {
		t.Fatalf("first claim = %v, %v", got, err)
	}
	got, _ = s.Claim(ctx, "xuhui", now, lease, 10)
	if len(got) != 1 || got[0].ID != ids[2] {
		t.Fatalf("second claim = %v, want only the third", got)
	}
	if got, _ := s.Claim(ctx, "xuhui", now, lease, 10); len(got) != 0 {
		t.Fatalf("third claim = %v, want nothing: the rest are leased or not due", got)
	}
	leased, err := s.Leased(ctx, "xuhui")
	if err != nil || len(leased) != 3 || !leased[ids[0]].Equal(now.Add(lease)) {
		t.Fatalf("leases %v, %v", leased, err)
	}
	wantTimer(t, s, ids[0], nil)

	// Releasing re-arms from the case itself; a back-off holds it later.
	if err := s.Release(ctx, ids[0], time.Time{}); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, ids[0], &t0)
	backoff := now.Add(time.Minute)
	if err := s.Release(ctx, ids[1], backoff); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, ids[1], &backoff)

	// The third one's sweeper died: after its lease it is claimed again,
	// marked as such, before any timer that is merely due.
	after := now.Add(lease + time.Second)
	// The fifth is due only at t0+4m.
	got, _ = s.Claim(ctx, "xuhui", after, lease, 10)
	if len(got) != 4 || got[0] != (Claimed{ID: ids[2], Reclaimed: true}) {
		t.Fatalf("claim after the lease ran out = %v, want the expired lease first", got)
	}
	var rest []string
	for _, c := range got[1:] {
		if c.Reclaimed {
			t.Errorf("%s marked reclaimed", c.ID)
		}
		rest = append(rest, c.ID)
	}
	if want := []string{ids[0], ids[1], ids[3]}; !slices.Equal(slices.Sorted(slices.Values(rest)), slices.Sorted(slices.Values(want))) {
		t.Errorf("claimed %v, want %v", rest, want)
	}
	// Another district's timers are its own.
	if got, _ := s.Claim(ctx, "huangpu", after, lease, 10); len(got) != 1 || got[0].ID != other.Id {
		t.Errorf("huangpu claim = %v", got)
	}
	// A released case that no longer exists drops out.
	if err := s.Release(ctx, "xuhui-01jz2g93z0ptff52h35j58yj80", time.Time{}); err != nil {
		t.Error(err)
	}
	if err := s.Release(ctx, "not-a-case", time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("release of a malformed id: %v", err)
	}
}

// TestRacingClaims has many claimers take the same due timers at once:
// each is claimed exactly once.
func TestRacingClaims(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	const cases = 200
	for i := range cases {
		c, e := timed("xuhui", fmt.Sprint("a", i), t0)
		mustCreate(t, s, c, e)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				got, err := s.Claim(ctx, "xuhui", t0, time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					seen[c.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != cases {
		t.Errorf("%d cases claimed, want %d", len(seen), cases)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}

func TestLatest(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	for i := range 3 {
		if _, err := s.Update(ctx, c.Id, int64(i+1), fmt.Sprint("r", i), setStatus(statusAccepted, fmt.Sprint("step ", i))); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := s.Latest(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if latest.GetCase().GetVersion() != 4 || latest.GetChange().GetVersion() != 4 || latest.GetChange().GetNote() != "step 2" {
		t.Errorf("latest = %v", latest)
	}
	cur, _, _ := s.Get(ctx, c.Id)
	if !proto.Equal(cur, latest.GetCase()) {
		t.Error("latest case differs from the stored one")
	}
	if _, err := s.Latest(ctx, "xuhui-01jz2g93z0ptff52h35j58yj80"); !errors.Is(err, ErrNotFound) {
		t.Errorf("latest of a missing case: %v", err)
	}
}

func TestArbitrationIndex(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	flagged, e := alertCase("xuhui", "a1", t0, "water-affairs")
	flagged.Status, flagged.Arbitration = cityhubv1.CaseStatus_CASE_STATUS_NEW, true
	mustCreate(t, s, flagged, e)
	plain, e2 := alertCase("xuhui", "a2", t0.Add(time.Second), "water-affairs")
	mustCreate(t, s, plain, e2)
	list := func() []string {
		t.Helper()
		page, err := s.List(ctx, Filter{Arbitration: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range page.Cases {
			ids = append(ids, c.Id)
		}
		return ids
	}
	if got := list(); !slices.Equal(got, []string{flagged.Id}) {
		t.Errorf("arbitration list %v, want only %s", got, flagged.Id)
	}
	// Dispatching settles it: the case leaves the index.
	if _, err := s.Update(ctx, flagged.Id, 1, "settle", func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.Arbitration, c.Status = false, statusDispatched
		return &cityhubv1.AuditEntry{Action: "dispatch"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 0 {
		t.Errorf("arbitration list after dispatch %v", got)
	}
}

// TestTimerKeysShareTheTag extends the hash-tag check to the timer keys
// every write and every claim touches.
func TestTimerKeysShareTheTag(t *testing.T) {
	c, _ := timed("pudong-new", "a1", t0)
	c.Arbitration, c.Status = true, cityhubv1.CaseStatus_CASE_STATUS_NEW
	keys := append([]string{timersKey(c.District), leasesKey(c.District)}, indexes(c)...)
	if !slices.Contains(keys, indexArbitration(c.District)) {
		t.Fatal("a flagged open case is not in the arbitration index")
	}
	for _, k := range keys {
		if !strings.Contains(k, "{pudong-new}") || strings.Count(k, "{") != 1 {
			t.Errorf("key %q does not carry exactly the hash tag {pudong-new}", k)
		}
	}
}

// TestEveryScriptKeySharesTheTag checks the KEYS of real writes (a
// creation from an alert, one by hand, a change of a flagged case with
// several departments) and of the timer scripts: one hash tag each.
func TestEveryScriptKeySharesTheTag(t *testing.T) {
	c, e := alertCase("pudong-new", "a1", t0, "water-affairs", "traffic-police", "gas")
	c.TimerAt = timestamppb.New(t0)
	next := proto.CloneOf(c)
	next.Version, next.Status, next.Arbitration = 2, cityhubv1.CaseStatus_CASE_STATUS_NEW, true
	manual := proto.CloneOf(c)
	manual.Origin = OriginManual
	var all [][]string
	for _, tc := range []struct {
		c     *cityhubv1.Case
		e     *cityhubv1.AuditEntry
		old   *cityhubv1.Case
		setOr bool
	}{{c, e, nil, true}, {manual, &cityhubv1.AuditEntry{Version: 1, RequestId: "req-1"}, nil, true}, {next, &cityhubv1.AuditEntry{Version: 2}, c, false}} {
		w, err := newWrite(tc.c, tc.e, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tc.setOr {
			if w.origin, err = originKey(tc.c, tc.e); err != nil {
				t.Fatal(err)
			}
		}
		if tc.old != nil {
			w.remove = indexes(tc.old)
		}
		w.add = indexes(tc.c)
		all = append(all, w.keys())
	}
	all = append(all, []string{timersKey("pudong-new"), leasesKey("pudong-new")},
		[]string{caseKey("pudong-new", c.Id), timersKey("pudong-new"), leasesKey("pudong-new")})
	for _, keys := range all {
		for _, k := range keys {
			if open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}'); open < 0 || end < open || k[open+1:end] != "pudong-new" {
				t.Errorf("key %q does not carry the hash tag {pudong-new}", k)
			}
		}
	}
}

// TestMergedDuplicateIsFollowedUp checks the one timer of a closed case: a
// merged duplicate's, MergeFollowUp after its merge, until Disarm.
func TestMergedDuplicateIsFollowedUp(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := timed("xuhui", "a1", t0.Add(time.Hour))
	mustCreate(t, s, c, e)
	merged := func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.Status, c.MergedInto = cityhubv1.CaseStatus_CASE_STATUS_CANCELLED, NewID("huangpu", t0)
		c.ClosedAt = timestamppb.New(t0)
		return &cityhubv1.AuditEntry{Action: "merge"}, nil
	}
	change, err := s.Update(ctx, c.Id, 1, "m1", merged)
	if err != nil {
		t.Fatal(err)
	}
	due := t0.Add(MergeFollowUp)
	wantTimer(t, s, c.Id, &due)
	if got, err := s.Answered(ctx, c.Id, "m1"); err != nil || !proto.Equal(got, change) {
		t.Errorf("Answered(m1) = %v, %v; want the merge", got, err)
	}
	if got, err := s.Answered(ctx, c.Id, "m2"); got != nil || err != nil {
		t.Errorf("Answered(m2) = %v, %v; want nothing", got, err)
	}

	if got, _ := s.Claim(ctx, "xuhui", due, time.Minute, 10); len(got) != 1 {
		t.Fatalf("claim = %v, want the duplicate", got)
	}
	// A case that moved on since the sweeper looked is released, not
	// disarmed: the next sweep decides on what it is now.
	if err := s.Disarm(ctx, c.Id, 1); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, c.Id, &due)
	if got, _ := s.Claim(ctx, "xuhui", due, time.Minute, 10); len(got) != 1 {
		t.Fatalf("claim = %v, want the duplicate again", got)
	}
	if err := s.Disarm(ctx, c.Id, 2); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, c.Id, nil)
	if leased, _ := s.Leased(ctx, "xuhui"); len(leased) != 0 {
		t.Errorf("leases after Disarm: %v", leased)
	}
	if err := s.Release(ctx, c.Id, time.Time{}); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, c.Id, nil) // Release does not arm it again
	// The next write asks for the follow-up again.
	if _, err := s.Update(ctx, c.Id, 2, "c1", setStatus(cityhubv1.CaseStatus_CASE_STATUS_CANCELLED, "a comment")); err != nil {
		t.Fatal(err)
	}
	wantTimer(t, s, c.Id, &due)
}
