package casestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/services/platform/redistest"
)

// countOf returns the count of actor's refusals of kind in log.
func countOf(log DenialLog, actor, kind string) int64 {
	for _, c := range log.Counts {
		if c.Actor == actor && c.Action == kind {
			return c.Count
		}
	}
	return 0
}

func itemsOf(log DenialLog, actor string) []Denial {
	var out []Denial
	for _, d := range log.Items {
		if d.Actor == actor {
			out = append(out, d)
		}
	}
	return out
}

func TestDenialsAreKeptPerActor(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	before, hist, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}

	if got, err := s.Denials(ctx, c.Id); err != nil || len(got.Items) != 0 || len(got.Counts) != 0 || len(got.Overflow) != 0 {
		t.Fatalf("Denials of an untouched case = %+v, %v; want none", got, err)
	}
	// B is refused once; then A floods the case with refusals.
	accept := Denial{At: t0, Actor: "dept-gas", Role: "department", Department: "gas", Action: "accept", Reason: "not yours", Status: 404}
	if err := s.RecordDenial(ctx, c.Id, accept, "accept"); err != nil {
		t.Fatal(err)
	}
	const flood = 250
	for i := range flood {
		d := Denial{
			At: t0.Add(time.Duration(i+1) * time.Second), Actor: "viewer-1", Role: "viewer",
			Action: "comment", Reason: fmt.Sprint("attempt ", i), Status: 403,
		}
		if err := s.RecordDenial(ctx, c.Id, d, "comment"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Denials(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if b := itemsOf(got, "dept-gas"); len(b) != 1 || b[0] != accept {
		t.Errorf("the flood pushed out another actor's refusal: %+v", b)
	}
	a := itemsOf(got, "viewer-1")
	if len(a) != MaxDenialsPerActor || a[0].Reason != fmt.Sprint("attempt ", flood-1) || a[len(a)-1].Reason != fmt.Sprint("attempt ", flood-MaxDenialsPerActor) {
		t.Errorf("the flooding actor keeps %d refusals, %q … %q; want its newest %d", len(a), a[0].Reason, a[len(a)-1].Reason, MaxDenialsPerActor)
	}
	if got.Items[0].Actor != "viewer-1" || got.Items[len(got.Items)-1] != accept {
		t.Errorf("items are not newest first: %+v … %+v", got.Items[0], got.Items[len(got.Items)-1])
	}
	if n := countOf(got, "viewer-1", "comment"); n != flood {
		t.Errorf("count of the flood %d, want %d", n, flood)
	}
	if n := countOf(got, "dept-gas", "accept"); n != 1 {
		t.Errorf("count of the other actor %d, want 1", n)
	}
	if len(got.Counts) != 2 || got.Counts[0].Actor != "dept-gas" {
		t.Errorf("counts %+v, want one per actor and kind, first refused first", got.Counts)
	}

	// The case itself did not move.
	after, hist2, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, after) || len(hist2) != len(hist) {
		t.Errorf("recording denials changed the case: version %d → %d, history %d → %d",
			before.Version, after.Version, len(hist), len(hist2))
	}
	// Bounded fields: a huge action name is clipped, not stored whole, and
	// a kind that is no short word is counted as other.
	if err := s.RecordDenial(ctx, c.Id, Denial{At: t0.Add(time.Hour), Actor: "viewer-1", Action: strings.Repeat("x", 10_000), Status: 403}, strings.Repeat("x", 10_000)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Denials(ctx, c.Id)
	if len(got.Items[0].Action) != maxDenialField {
		t.Errorf("action stored with %d bytes, want %d", len(got.Items[0].Action), maxDenialField)
	}
	if countOf(got, "viewer-1", OtherKind) != 1 || len(got.Counts) != 3 {
		t.Errorf("a made-up kind was counted as %+v", got.Counts)
	}

	// Made-up ids create nothing.
	ghost := NewID("xuhui", t0)
	if err := s.RecordDenial(ctx, ghost, Denial{Actor: "a", Action: "accept"}, "accept"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordDenial on a missing case = %v, want ErrNotFound", err)
	}
	if err := s.RecordDenial(ctx, "not-an-id", Denial{}, "accept"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordDenial on a malformed id = %v, want ErrNotFound", err)
	}
	if _, err := s.Denials(ctx, ghost); !errors.Is(err, ErrNotFound) {
		t.Errorf("Denials of a missing case = %v, want ErrNotFound", err)
	}
	if keys, err := redistest.Keys(ctx, srv.Client, "*"+ghost+"*"); err != nil || len(keys) != 0 {
		t.Errorf("keys exist for a missing case: %v, %v", keys, err)
	}
}

// TestDenialActorsAreBounded checks that a case keeps the refusals of at
// most MaxDenialActors actors, the first ones, and only counts the rest.
func TestDenialActorsAreBounded(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	refuse := func(actor, kind string, i int) {
		t.Helper()
		d := Denial{At: t0.Add(time.Duration(i) * time.Second), Actor: actor, Role: "viewer", Action: kind, Status: 403}
		if err := s.RecordDenial(ctx, c.Id, d, kind); err != nil {
			t.Fatal(err)
		}
	}
	for i := range MaxDenialActors {
		refuse(fmt.Sprint("early-", i), "accept", i)
	}
	const late = 30
	for i := range late {
		refuse(fmt.Sprint("late-", i), "comment", MaxDenialActors+i)
		refuse(fmt.Sprint("late-", i), "read", MaxDenialActors+i)
	}
	refuse("early-0", "accept", 1000) // a known actor is still recorded

	got, err := s.Denials(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxDenialActors {
		actor := fmt.Sprint("early-", i)
		want := int64(1)
		if i == 0 {
			want = 2
		}
		if n := countOf(got, actor, "accept"); n != want || len(itemsOf(got, actor)) != int(want) {
			t.Errorf("%s: count %d, %d items; want %d", actor, n, len(itemsOf(got, actor)), want)
		}
	}
	if got.Overflow["comment"] != late || got.Overflow["read"] != late || len(got.Overflow) != 2 {
		t.Errorf("overflow %v, want %d comments and %d reads", got.Overflow, late, late)
	}
	if len(got.Counts) != MaxDenialActors || len(got.Items) != MaxDenialActors+1 {
		t.Errorf("%d counts and %d items, want only the first %d actors'", len(got.Counts), len(got.Items), MaxDenialActors)
	}
	keys, err := redistest.Keys(ctx, srv.Client, deniedActorKey("xuhui", c.Id, "")+"*")
	if err != nil || len(keys) != MaxDenialActors {
		t.Errorf("%d actor lists, want %d (%v)", len(keys), MaxDenialActors, err)
	}
}

// TestLegacyDenialsAreStillShown checks that refusals kept in the one list
// of all actors, before each had its own, are still read.
func TestLegacyDenialsAreStillShown(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	old := `{"at":"2025-07-01T07:00:00Z","actor":"dept-gas","role":"department","department":"gas","action":"accept","reason":"outside","status":404}`
	if err := srv.Client.LPush(ctx, legacyDeniedKey("xuhui", c.Id), old).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDenial(ctx, c.Id, Denial{At: t0, Actor: "viewer-1", Action: "comment", Status: 403}, "comment"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Denials(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 2 || got.Items[0].Actor != "viewer-1" || got.Items[1].Actor != "dept-gas" || !got.Items[1].At.Equal(t0.Add(-time.Hour)) {
		t.Errorf("items %+v, want the new refusal, then the old one", got.Items)
	}
}
