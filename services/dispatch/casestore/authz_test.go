package casestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

func TestDenialsAreKeptBesideTheCase(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)
	before, hist, err := s.Get(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}

	if got, err := s.Denials(ctx, c.Id); err != nil || len(got) != 0 {
		t.Fatalf("Denials of an untouched case = %v, %v; want none", got, err)
	}
	for i := range MaxDenials + 5 {
		d := Denial{
			At: t0.Add(time.Duration(i) * time.Second), Actor: "dept-gas", Role: "department", Department: "gas",
			Action: "accept", Reason: fmt.Sprint("attempt ", i), Status: 404,
		}
		if err := s.RecordDenial(ctx, c.Id, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Denials(ctx, c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxDenials {
		t.Fatalf("%d denials kept, want the newest %d", len(got), MaxDenials)
	}
	if got[0].Reason != fmt.Sprint("attempt ", MaxDenials+4) || got[len(got)-1].Reason != "attempt 5" {
		t.Errorf("kept %q … %q, want the newest first", got[0].Reason, got[len(got)-1].Reason)
	}
	if want := t0.Add(time.Duration(MaxDenials+4) * time.Second); !got[0].At.Equal(want) || got[0].Department != "gas" || got[0].Status != 404 {
		t.Errorf("newest denial %+v", got[0])
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
	// Bounded fields: a huge action name is clipped, not stored whole.
	if err := s.RecordDenial(ctx, c.Id, Denial{Action: strings.Repeat("x", 10_000), Status: 403}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Denials(ctx, c.Id); len(got[0].Action) != maxDenialField {
		t.Errorf("action stored with %d bytes, want %d", len(got[0].Action), maxDenialField)
	}

	// Made-up ids create nothing.
	ghost := NewID("xuhui", t0)
	if err := s.RecordDenial(ctx, ghost, Denial{Action: "accept"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordDenial on a missing case = %v, want ErrNotFound", err)
	}
	if err := s.RecordDenial(ctx, "not-an-id", Denial{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordDenial on a malformed id = %v, want ErrNotFound", err)
	}
	if _, err := s.Denials(ctx, ghost); !errors.Is(err, ErrNotFound) {
		t.Errorf("Denials of a missing case = %v, want ErrNotFound", err)
	}
	if n, err := srv.Client.Exists(ctx, deniedKey("xuhui", ghost)).Result(); err != nil || n != 0 {
		t.Errorf("a denial list exists for a missing case (%d, %v)", n, err)
	}
}
