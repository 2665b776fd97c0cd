package casestore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// replica is a store with its own client whose round trips are counted,
// as another process of the service would be.
type replica struct {
	*Store
	rt *roundTrips
}

func newReplica(t *testing.T, srv *redistest.Server) replica {
	t.Helper()
	rdb, err := redisclient.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	rt := &roundTrips{}
	rdb.AddHook(rt)
	return replica{New(rdb, []string{"xuhui"}), rt}
}

func (r replica) trips() int64 { return r.rt.cmds.Load() + r.rt.pipelines.Load() }

func setTitle(title string) UpdateFunc {
	return func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.Title = title
		return &cityhubv1.AuditEntry{Action: "test", Note: title, From: c.Status, To: c.Status}, nil
	}
}

// A copy of a case that another replica made stale can cost a conflict or
// a second round trip, and never loses the other replica's change: the
// update script checks the version and the digest of the case the change
// was computed from, and the request id before both.
func TestStaleCopyNeverWins(t *testing.T) {
	ctx := context.Background()
	errRefused := errors.New("refused")

	// setup opens a case through a, moves it to version 2, lets b read it
	// there, then moves it to version 3 through a (title "by a"): b holds a
	// stale copy at version 2.
	setup := func(t *testing.T) (a, b replica, id string, srv *redistest.Server) {
		srv = redistest.Start(t)
		a, b = newReplica(t, srv), newReplica(t, srv)
		c, e := alertCase("xuhui", "a1", t0, "water-affairs", "traffic-police")
		mustCreate(t, a.Store, c, e)
		if _, err := a.Update(ctx, c.Id, 1, "a-1", comment("a", t0)); err != nil {
			t.Fatal(err)
		}
		if cur, err := b.Recent(ctx, c.Id); err != nil || cur.GetVersion() != 2 {
			t.Fatalf("b reads version %d, %v", cur.GetVersion(), err)
		}
		if _, err := a.Update(ctx, c.Id, 2, "a-2", setTitle("by a")); err != nil {
			t.Fatal(err)
		}
		return a, b, c.Id, srv
	}

	t.Run("a stale copy conflicts in one round trip, and the retry keeps the other change", func(t *testing.T) {
		_, b, id, _ := setup(t)
		before := b.trips()
		_, err := b.Update(ctx, id, 2, "b-1", setStatus(statusAccepted, "by b"))
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("update from the stale copy: %v, want ErrConflict", err)
		}
		if d := b.trips() - before; d != 1 {
			t.Errorf("the conflict cost %d round trips, want 1 (the script answers with the case)", d)
		}
		// Decide again on what the store holds now, as a caller that
		// retries does: the conflict brought the current case along.
		cur, err := b.Recent(ctx, id)
		if err != nil || cur.GetVersion() != 3 || cur.GetTitle() != "by a" {
			t.Fatalf("after the conflict b holds version %d %q, %v; want 3 \"by a\"", cur.GetVersion(), cur.GetTitle(), err)
		}
		before = b.trips()
		if _, err := b.Update(ctx, id, cur.GetVersion(), "b-1", setStatus(statusAccepted, "by b")); err != nil {
			t.Fatal(err)
		}
		if d := b.trips() - before; d != 1 {
			t.Errorf("the retry cost %d round trips, want 1", d)
		}
		got, _, err := b.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetTitle() != "by a" || got.GetStatus() != statusAccepted {
			t.Errorf("case is %q %s, want a's title and b's status", got.GetTitle(), got.GetStatus().Name())
		}
		checkHistory(t, b.Store, id, 4)
	})

	t.Run("a refusal computed from a stale copy is not the answer", func(t *testing.T) {
		_, b, id, _ := setup(t)
		refuseOld := func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
			if c.GetTitle() != "by a" {
				return nil, errRefused
			}
			return comment("b", t0)(c)
		}
		// Expected version 2 is stale: a read-first update answers a
		// conflict without running the change, and so must this one.
		if _, err := b.Update(ctx, id, 2, "b-1", refuseOld); !errors.Is(err, ErrConflict) {
			t.Errorf("stale expected version: %v, want ErrConflict", err)
		}
		// At the right version, the change sees the case as it is.
		if _, err := b.Update(ctx, id, 3, "b-2", refuseOld); err != nil {
			t.Errorf("current version: %v", err)
		}
		checkHistory(t, b.Store, id, 4)
	})

	t.Run("a repeated request through a stale copy answers as the first time", func(t *testing.T) {
		a, b, id, _ := setup(t)
		// a-2 moved the case from 2 to 3; b, holding 2, sees it again.
		first, err := a.Update(ctx, id, 2, "a-2", setTitle("never"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.Update(ctx, id, 2, "a-2", setTitle("by b"))
		if err != nil {
			t.Fatalf("repeat through b: %v, want the first answer", err)
		}
		if !proto.Equal(first, again) || again.GetCase().GetTitle() != "by a" {
			t.Errorf("repeat answered %v, want %v", again, first)
		}
		checkHistory(t, b.Store, id, 3)
	})

	t.Run("a copy of a version Redis lost never wins over the version written since", func(t *testing.T) {
		a, _, id, srv := setup(t)
		// Redis loses everything (a failover to an empty replica), and the
		// case is restored from an earlier record and moved on to version
		// 3 again by someone else, differently: a's copy of version 3 (the
		// title "by a") names another case than Redis holds now.
		first, hist, err := a.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c := newReplica(t, srv)
		if err := redistest.Flush(ctx, srv.Client); err != nil {
			t.Fatal(err)
		}
		v1 := proto.CloneOf(first)
		v1.Version, v1.Title, v1.Status = 1, "waterlogging on xuhui", statusDispatched
		mustCreate(t, c.Store, v1, proto.CloneOf(hist[0]))
		if _, err := c.Update(ctx, id, 1, "c-1", comment("c", t0)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Update(ctx, id, 2, "c-2", setStatus(statusAccepted, "by c")); err != nil {
			t.Fatal(err)
		}

		if _, err := a.Update(ctx, id, 3, "a-3", setTitle("by a, again")); err != nil {
			t.Fatalf("update over the lost version: %v", err)
		}
		got, _, err := a.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetVersion() != 4 || got.GetStatus() != statusAccepted || got.GetTitle() != "by a, again" {
			t.Errorf("case is v%d %s %q, want v4 accepted (c's change kept) \"by a, again\"", got.GetVersion(), got.GetStatus().Name(), got.GetTitle())
		}
		// The indexes followed the case Redis held, not a's copy.
		for key, want := range map[string]bool{
			indexStatus("xuhui", statusAccepted):   true,
			indexStatus("xuhui", statusDispatched): false,
		} {
			_, err := srv.Client.ZScore(ctx, key, id).Result()
			if got := err == nil; got != want {
				t.Errorf("%s holds the case: %v, want %v", key, got, want)
			}
		}
		checkHistory(t, a.Store, id, 4)
	})
}

// Many replicas, each with its own cache, race read-modify-write loops on
// one case: every change lands once, on top of the one before.
func TestReplicasRaceWithTheirCopies(t *testing.T) {
	const (
		replicas = 4
		each     = 25
	)
	srv := redistest.Start(t)
	ctx := context.Background()
	rs := make([]replica, replicas)
	for i := range rs {
		rs[i] = newReplica(t, srv)
	}
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, rs[0].Store, c, e)

	done := make(chan error, replicas)
	for i, r := range rs {
		go func() {
			for n := range each {
				rid := fmt.Sprintf("r%d-%d", i, n)
				var err error
				for range 1000 {
					var cur *cityhubv1.Case
					if cur, err = r.Recent(ctx, c.Id); err != nil {
						break
					}
					if _, err = r.Update(ctx, c.Id, cur.GetVersion(), rid, comment(rid, t0)); !errors.Is(err, ErrConflict) {
						break
					}
				}
				if err != nil {
					done <- fmt.Errorf("%s: %w", rid, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range replicas {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	hist := checkHistory(t, rs[0].Store, c.Id, 1+replicas*each)
	seen := map[string]bool{}
	for v := int64(2); v <= 1+replicas*each; v++ {
		if seen[hist[v]] {
			t.Errorf("request %s applied twice", hist[v])
		}
		seen[hist[v]] = true
	}
}

// The change a script keeps and publishes is put together from the
// encodings of its parts; it must be what encoding it whole gives.
func TestChangeEncoding(t *testing.T) {
	c, e := alertCase("xuhui", "a1", t0, "water-affairs", "traffic-police")
	c.Labels = map[string]string{"street": "tianping", "district": "xuhui", "a": "b"}
	w, err := newWrite(c, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := proto.MarshalOptions{Deterministic: true}.Marshal(&cityhubv1.CaseChange{Case: c, Change: e})
	if err != nil {
		t.Fatal(err)
	}
	if string(w.changeB) != string(whole) {
		t.Errorf("change encoded from its parts differs from the whole:\n%x\n%x", w.changeB, whole)
	}
}

func TestCacheIsBounded(t *testing.T) {
	l := newLRU(3)
	put := func(id string, v int64) { l.put(seen{c: &cityhubv1.Case{Id: id, Version: v}}) }
	put("a", 1)
	put("b", 1)
	put("c", 1)
	l.get("a") // a is now the most recent
	put("d", 1)
	if _, ok := l.get("b"); ok {
		t.Error("the least recently used case was kept")
	}
	for _, id := range []string{"a", "c", "d"} {
		if _, ok := l.get(id); !ok {
			t.Errorf("%s was dropped", id)
		}
	}
	put("a", 5)
	put("a", 4) // an older report, arriving late
	if s, _ := l.get("a"); s.c.GetVersion() != 5 {
		t.Errorf("cache went back to version %d", s.c.GetVersion())
	}
	if l.order.Len() != 3 || len(l.items) != 3 {
		t.Errorf("cache holds %d/%d entries, want 3", l.order.Len(), len(l.items))
	}
}
