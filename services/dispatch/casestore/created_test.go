package casestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func TestEachCreatedWalksARange(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	// More cases than a page, many sharing a millisecond, so that the walk
	// must continue across pages at one score.
	var ids []string
	for i := range 2*scanPage + 37 {
		at := t0.Add(time.Duration(i/100) * time.Millisecond)
		c, e := alertCase("xuhui", fmt.Sprint("a", i), at, "water-affairs")
		mustCreate(t, s, c, e)
		ids = append(ids, c.Id)
	}
	other, e := alertCase("huangpu", "elsewhere", t0, "gas")
	mustCreate(t, s, other, e)
	late, e := alertCase("xuhui", "late", t0.Add(time.Hour), "water-affairs")
	mustCreate(t, s, late, e)

	seen := map[string]int{}
	err := s.EachCreated(ctx, "xuhui", t0, t0.Add(time.Hour), func(c *cityhubv1.Case, hist []*cityhubv1.AuditEntry) error {
		seen[c.Id]++
		if len(hist) != 1 || hist[0].GetAction() != "create" {
			t.Errorf("history of %s: %v", c.Id, hist)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(ids) {
		t.Errorf("walked %d cases, want %d", len(seen), len(ids))
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("case %s walked %d times", id, seen[id])
		}
	}
	if seen[late.Id] != 0 {
		t.Error("the range's end is inclusive, want exclusive")
	}
	n, err := s.CountCreated(ctx, []string{"xuhui", "huangpu", "BAD KEY"}, t0, t0.Add(time.Hour))
	if err != nil || n != int64(len(ids))+1 {
		t.Errorf("CountCreated = %d, %v; want %d", n, err, len(ids)+1)
	}
}
