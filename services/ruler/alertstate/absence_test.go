package alertstate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// absenceStore is what a ruler does with absences, on a Store or a Memory.
type absenceStore interface {
	Signal(ctx context.Context, signals []Signal) ([]string, []int, error)
	Describe(ctx context.Context, signals []Signal) error
	Silent(ctx context.Context, now time.Time, limit int) ([]Update, error)
	Unindex(ctx context.Context, fired []Update) error
	Apply(ctx context.Context, now time.Time, updates []Update) ([]Result, error)
	Get(ctx context.Context, id string) (*cityhubv1.Alert, error)
}

// TestAbsencesMatchMemory runs random sequences of signs of life (new
// ones, late ones, ones sent again), sweeps (some cut short between firing
// and unindexing, as a ruler that dies there leaves them) and resolutions
// on a real redis-server and on Memory, and requires the same answers and
// the same alerts after every step.
func TestAbsencesMatchMemory(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	var total struct{ fired, resolved, stale, cut, described int }
	for seed := range uint64(60) {
		if err := redistest.Flush(ctx, srv.Client); err != nil {
			t.Fatal(err)
		}
		store, err := New(Options{Client: srv.Client})
		if err != nil {
			t.Fatal(err)
		}
		stores := []absenceStore{store, NewMemory(Options{})}
		rnd := rand.New(rand.NewPCG(seed, 0xab5e))
		const wait = 10 * time.Minute
		t0 := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
		now := t0
		groups := []string{"g0", "g1", "g2", "g3"}
		last := map[string]time.Time{}
		for step := range 80 {
			where := fmt.Sprintf("seed %d step %d", seed, step)
			now = now.Add(time.Duration(rnd.IntN(6)) * time.Minute)
			switch op := rnd.IntN(10); {
			case op < 5: // signs of life
				var signals []Signal
				for range 1 + rnd.IntN(3) {
					g := groups[rnd.IntN(len(groups))]
					at := now
					if _, ok := last[g]; ok && rnd.IntN(4) == 0 {
						at = last[g].Add(-time.Duration(rnd.IntN(5)) * time.Minute) // late, or sent again
						total.stale++
					}
					if at.After(last[g]) {
						last[g] = at
					}
					signals = append(signals, Signal{
						ID: g, Alert: &cityhubv1.Alert{Id: g, Rule: "p/silent", Title: fmt.Sprintf("silent %s since %s", g, at.Format(time.TimeOnly)), Labels: map[string]string{"gauge": g}},
						EventID: fmt.Sprintf("iot/%s@%d", g, at.Unix()), EventTime: at, For: wait,
					})
				}
				var answers [2][]string
				for i, s := range stores {
					firing, bare, err := s.Signal(ctx, slices.Clone(signals))
					if err != nil {
						t.Fatalf("%s: signal: %v", where, err)
					}
					var described []Signal
					for _, j := range bare {
						described = append(described, signals[j])
					}
					if err := s.Describe(ctx, described); err != nil {
						t.Fatalf("%s: describe: %v", where, err)
					}
					total.described += len(described)
					slices.Sort(firing)
					answers[i] = append(firing, fmt.Sprint("bare ", bare))
					var resolve []Update
					for _, id := range firing {
						resolve = append(resolve, Update{Op: Resolve, Alert: &cityhubv1.Alert{Id: id}})
					}
					if _, err := s.Apply(ctx, now, resolve); err != nil {
						t.Fatalf("%s: resolve: %v", where, err)
					}
				}
				if !slices.Equal(answers[1], answers[0]) {
					t.Fatalf("%s: Signal: Redis answered %q, Memory %q", where, answers[0], answers[1])
				}
				total.resolved += len(answers[0]) - 1
			default: // a sweep
				cut, limit := rnd.IntN(5) == 0, 2+rnd.IntN(3)
				var answers [2][]string
				for i, s := range stores {
					due, err := s.Silent(ctx, now, limit)
					if err != nil {
						t.Fatalf("%s: silent: %v", where, err)
					}
					for _, u := range due {
						answers[i] = append(answers[i], fmt.Sprintf("%s %s %s", u.Alert.GetId(), u.EventID, u.EventTime.Format(time.TimeOnly)))
					}
					if _, err := s.Apply(ctx, now, due); err != nil {
						t.Fatalf("%s: fire: %v", where, err)
					}
					if !cut {
						if err := s.Unindex(ctx, due); err != nil {
							t.Fatalf("%s: unindex: %v", where, err)
						}
					}
				}
				if !slices.Equal(answers[1], answers[0]) {
					t.Fatalf("%s: Silent: Redis answered %q, Memory %q", where, answers[0], answers[1])
				}
				total.fired += len(answers[0])
				if cut && len(answers[0]) > 0 {
					total.cut++
				}
			}
			for _, g := range groups {
				var alerts [2]*cityhubv1.Alert
				for i, s := range stores {
					a, err := s.Get(ctx, g)
					if err != nil && err != ErrNotFound {
						t.Fatalf("%s: get %s: %v", where, g, err)
					}
					alerts[i] = a
				}
				if !proto.Equal(alerts[1], alerts[0]) {
					t.Fatalf("%s: alert %s: Redis holds\n%v\nMemory\n%v", where, g, alerts[0], alerts[1])
				}
			}
		}
	}
	t.Logf("%+v", total)
	for what, n := range map[string]int{"silences fired": total.fired, "silences ended": total.resolved, "late signs of life": total.stale, "sweeps cut short": total.cut, "alerts described": total.described} {
		if n < 20 {
			t.Errorf("only %d %s: the sequences do not exercise absences", n, what)
		}
	}
}

// TestSilenceFiresOnce has two rulers sweep the same silent groups at the
// same moment, on one Redis: each group's alert fires once, at the moment
// its wait ended, with its last sign of life as the event behind it.
func TestSilenceFiresOnce(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, _ := New(Options{Client: srv.Client})
	b, _ := New(Options{Client: srv.Client})
	t0 := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	var signals []Signal
	for i := range 50 {
		id := fmt.Sprintf("g%02d", i)
		signals = append(signals, Signal{
			ID: id, Alert: &cityhubv1.Alert{Id: id, Rule: "p/silent"},
			EventID: fmt.Sprintf("iot/r-%d", i), EventTime: t0.Add(time.Duration(i) * time.Second), For: 30 * time.Minute,
		})
	}
	if _, bare, err := a.Signal(ctx, signals); err != nil || len(bare) != len(signals) {
		t.Fatalf("Signal: %d bare, %v; want all %d", len(bare), err, len(signals))
	}
	if err := b.Describe(ctx, signals); err != nil {
		t.Fatal(err)
	}
	if _, bare, err := b.Signal(ctx, signals); err != nil || len(bare) != 0 {
		t.Fatalf("Signal again: %d bare, %v; want none: the waits hold their alerts", len(bare), err)
	}
	now := t0.Add(31 * time.Minute)
	fired := map[string]int{}
	for _, s := range []*Store{a, b, a} {
		due, err := s.Silent(ctx, now, 1000)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Apply(ctx, now, due)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Changed {
				fired[r.Alert.GetId()]++
			}
		}
		// The first sweeper dies before unindexing: the others find the
		// alerts fired, and put the index right.
		if s == b {
			if err := s.Unindex(ctx, due); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, sg := range signals {
		id := sg.Alert.GetId()
		if fired[id] != 1 {
			t.Errorf("%s fired %d times, want once", id, fired[id])
		}
		got, err := a.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantStart := t0.Add(time.Duration(i)*time.Second + 30*time.Minute)
		if got.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING || !got.GetStartsAt().AsTime().Equal(wantStart) ||
			!slices.Equal(got.GetEventIds(), []string{sg.EventID}) {
			t.Errorf("%s: %s from %v with %v, want firing from %v with [%s]", id, got.GetState(), got.GetStartsAt().AsTime(), got.GetEventIds(), wantStart, sg.EventID)
		}
	}
	if n, err := srv.Client.ZCard(ctx, AbsentKey).Result(); err != nil || n != 0 {
		t.Errorf("%d waits still indexed (%v), want none", n, err)
	}
}
