package alertstate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

// TestBatchMatchesOneByOne applies the same generated updates to three
// redis-servers: one update per Apply on the first, a whole batch per
// Apply on the second, and on the third a whole batch per Tally followed
// by an Apply of what Tally left, sweeping all between batches. After
// every batch the alerts, their count windows and the indexes must be
// identical; what the batch returns must be what one-by-one application
// would publish with the same-state versions in between left out (its
// latest version, and the last version before every change of state); and
// Tally then Apply must return exactly what Apply alone does.
func TestBatchMatchesOneByOne(t *testing.T) {
	ctx := context.Background()
	one, many, tallied := redistest.Start(t).Client, redistest.Start(t).Client, redistest.Start(t).Client
	s1, err := alertstate.New(alertstate.Options{Client: one, MaxEventIDs: 4})
	if err != nil {
		t.Fatal(err)
	}
	sN, err := alertstate.New(alertstate.Options{Client: many, MaxEventIDs: 4})
	if err != nil {
		t.Fatal(err)
	}
	sT, err := alertstate.New(alertstate.Options{Client: tallied, MaxEventIDs: 4})
	if err != nil {
		t.Fatal(err)
	}

	// Four alerts, each of a rule with other features.
	type ruleOf struct {
		atLeast  int
		within   time.Duration
		distinct bool
		forDur   time.Duration
		resolve  time.Duration
	}
	rules := map[string]ruleOf{
		"plain":    {resolve: 20 * time.Minute},
		"window":   {atLeast: 3, within: 10 * time.Minute, resolve: 15 * time.Minute},
		"distinct": {atLeast: 2, within: 10 * time.Minute, distinct: true},
		"for":      {forDur: 5 * time.Minute, resolve: 8 * time.Minute},
	}
	fps := []string{"plain", "window", "distinct", "for"}
	sevs := []cityhubv1.Severity{cityhubv1.Severity_SEVERITY_MINOR, cityhubv1.Severity_SEVERITY_SEVERE}

	rnd := rand.New(rand.NewPCG(7, 11))
	now := t0
	var nextEvent int
	var seen []string // event ids already used, to redeliver
	transitions, settled := 0, 0
	for batch := range 300 {
		now = now.Add(time.Duration(rnd.IntN(180)) * time.Second)
		for _, s := range []*alertstate.Store{s1, sN, sT} {
			if _, err := s.Promote(ctx, now, 100); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ResolveDue(ctx, now, 100); err != nil {
				t.Fatal(err)
			}
		}
		n := 1 + rnd.IntN(10)
		var updates []func() alertstate.Update
		for range n {
			fp := fps[rnd.IntN(len(fps))]
			rule := rules[fp]
			switch k := rnd.IntN(20); {
			case k < 2:
				updates = append(updates, func() alertstate.Update {
					return alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: fp}}
				})
			case k < 3:
				marks := []string{fmt.Sprintf("works-%d", rnd.IntN(2))}
				updates = append(updates, func() alertstate.Update {
					return alertstate.Update{Op: alertstate.Mute, Alert: &cityhubv1.Alert{Id: fp, SilencedBy: marks}}
				})
			default:
				id := fmt.Sprintf("e%d", nextEvent)
				if len(seen) > 0 && rnd.IntN(6) == 0 {
					// Redelivered: mostly one of the last few, which an
					// alert or a window may still hold.
					id = seen[len(seen)-1-rnd.IntN(min(len(seen), 12))]
				} else {
					nextEvent++
					seen = append(seen, id)
				}
				at := now.Add(-time.Duration(rnd.IntN(120)) * time.Second)
				sev := sevs[rnd.IntN(len(sevs))]
				caller := []string{"", "alice", "bob", "carol"}[rnd.IntN(4)]
				var inhibited []string
				if rnd.IntN(4) == 0 {
					inhibited = []string{"district-flood"}
				}
				title := fmt.Sprintf("report %s", id)
				updates = append(updates, func() alertstate.Update {
					a := alert(fp)
					a.Severity, a.Title, a.InhibitedBy = sev, title, inhibited
					return alertstate.Update{
						Op: alertstate.Fire, Alert: a, EventID: id, EventTime: at,
						AtLeast: rule.atLeast, Within: rule.within, CountDistinct: rule.distinct, Distinct: caller,
						For: rule.forDur, ResolveAfter: rule.resolve,
					}
				})
			}
		}

		// One by one: what each update publishes, per alert.
		published := map[string][]version{}
		for _, u := range updates {
			res, err := s1.Apply(ctx, now, []alertstate.Update{u()})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Alert != nil {
					published[r.Alert.Id] = append(published[r.Alert.Id], version{r.Alert, r.Changed})
				}
			}
		}
		// As a batch.
		var all []alertstate.Update
		for _, u := range updates {
			all = append(all, u())
		}
		res, err := sN.Apply(ctx, now, all)
		if err != nil {
			t.Fatal(err)
		}
		// Tallied first, the rest applied.
		var fresh, left []alertstate.Update
		for _, u := range updates {
			fresh = append(fresh, u())
		}
		need, err := sT.Tally(ctx, fresh)
		if err != nil {
			t.Fatal(err)
		}
		for i, u := range fresh {
			if need[i] {
				left = append(left, u)
			}
		}
		resT, err := sT.Apply(ctx, now, left)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) < len(fresh) {
			settled += len(fresh) - len(left)
		}
		byID := map[string]alertstate.Result{}
		for _, r := range resT {
			if r.Alert != nil {
				byID[r.Alert.Id] = r
			}
		}
		for _, r := range res {
			if r.Alert == nil {
				continue
			}
			rt, ok := byID[r.Alert.Id]
			if !ok {
				t.Fatalf("batch %d, alert %s: Apply publishes v%d, Tally then Apply nothing", batch, r.Alert.Id, r.Alert.Version)
			}
			delete(byID, r.Alert.Id)
			got := append(append([]*cityhubv1.Alert(nil), rt.Earlier...), rt.Alert)
			want := append(append([]*cityhubv1.Alert(nil), r.Earlier...), r.Alert)
			if versions(got) != versions(want) || rt.Changed != r.Changed {
				t.Fatalf("batch %d, alert %s: Tally then Apply publish %s (changed %v), Apply %s (changed %v)", batch, r.Alert.Id, versions(got), rt.Changed, versions(want), r.Changed)
			}
			for i := range got {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("batch %d, alert %s, version %d:\n tallied %v\n applied %v", batch, r.Alert.Id, got[i].Version, got[i], want[i])
				}
			}
		}
		for id := range byID {
			t.Fatalf("batch %d, alert %s: Tally then Apply publish it, Apply alone nothing", batch, id)
		}
		for _, r := range res {
			if r.Alert == nil {
				continue
			}
			id := r.Alert.Id
			got := append(append([]*cityhubv1.Alert(nil), r.Earlier...), r.Alert)
			want := statesOf(published[id])
			if len(want) > 1 {
				transitions++
			}
			if len(got) != len(want) {
				for _, u := range all {
					if u.Alert.Id == id {
						t.Logf("op %d event %s at %v", u.Op, u.EventID, u.EventTime)
					}
				}
				t.Fatalf("batch %d, alert %s: published %s, one by one %s", batch, id, versions(got), versions(want))
			}
			for i := range got {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("batch %d, alert %s, version %d:\n batch      %v\n one by one %v", batch, id, got[i].Version, got[i], want[i])
				}
			}
		}
		for _, fp := range fps {
			a1, err1 := s1.Get(ctx, fp)
			aN, errN := sN.Get(ctx, fp)
			aT, errT := sT.Get(ctx, fp)
			if err1 != errN || !proto.Equal(a1, aN) {
				t.Fatalf("batch %d, alert %s:\n batch      %v (%v)\n one by one %v (%v)", batch, fp, aN, errN, a1, err1)
			}
			if err1 != errT || !proto.Equal(a1, aT) {
				t.Fatalf("batch %d, alert %s:\n tallied    %v (%v)\n one by one %v (%v)", batch, fp, aT, errT, a1, err1)
			}
			window := "cityhub:alert:{" + fp + "}:window"
			w1, wN, wT := members(t, one, window), members(t, many, window), members(t, tallied, window)
			if w1 != wN || w1 != wT {
				t.Fatalf("batch %d, window of %s: one by one %s, batch %s, tallied %s", batch, fp, w1, wN, wT)
			}
		}
		for _, key := range []string{alertstate.FiringKey, alertstate.PendingKey, alertstate.ResolveKey, alertstate.RuleKey("flood-control/deep-waterlogging")} {
			i1, iN, iT := members(t, one, key), members(t, many, key), members(t, tallied, key)
			if i1 != iN || i1 != iT {
				t.Fatalf("batch %d, index %s: one by one %s, batch %s, tallied %s", batch, key, i1, iN, iT)
			}
		}
	}
	if transitions < 10 {
		t.Errorf("only %d batches changed an alert's state twice: the test does not exercise what it should", transitions)
	}
	if settled < 50 {
		t.Errorf("Tally settled only %d updates: the test does not exercise it", settled)
	}
}

type version struct {
	alert   *cityhubv1.Alert
	changed bool
}

// statesOf returns what a batch publishes of an alert that went through
// versions one update at a time: the latest, and before it each version
// the batch made that a change of state (or a new episode) followed.
func statesOf(versions []version) []*cityhubv1.Alert {
	var out []*cityhubv1.Alert
	for i, v := range versions {
		if i == len(versions)-1 {
			out = append(out, v.alert)
			break
		}
		if !v.changed {
			continue
		}
		// The next version made, if any: updates that changed nothing
		// return the same one again.
		for _, w := range versions[i+1:] {
			next := w.alert
			if next.Version == v.alert.Version {
				continue
			}
			if next.State != v.alert.State || !next.StartsAt.AsTime().Equal(v.alert.StartsAt.AsTime()) {
				out = append(out, v.alert)
			}
			break
		}
	}
	return out
}

func versions(as []*cityhubv1.Alert) string {
	s := ""
	for _, a := range as {
		s += fmt.Sprintf(" v%d:%s", a.Version, a.State.Name())
	}
	return s
}

func members(t *testing.T, c redis.UniversalClient, key string) string {
	t.Helper()
	z, err := c.ZRangeWithScores(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(z)
}
