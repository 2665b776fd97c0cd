package alertstate_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

// TestRestoreRebuildsLatestState replays an alert's published versions, out
// of order and twice, into an empty Redis and expects the latest state back,
// behaving afterwards as the original did.
func TestRestoreRebuildsLatestState(t *testing.T) {
	ctx := context.Background()
	orig := newStore(t, alertstate.Options{})
	v1 := apply(t, orig, t0, fire("fp1", "e1", t0))[0].Alert
	v2 := apply(t, orig, t0.Add(time.Minute), fire("fp1", "e2", t0.Add(time.Minute)))[0].Alert

	srv := redistest.Start(t)
	rebuilt, err := alertstate.New(alertstate.Options{Client: srv.Client})
	if err != nil {
		t.Fatal(err)
	}
	resolveAt := t0.Add(time.Hour)
	for i, a := range []*cityhubv1.Alert{v2, v1, v2} {
		wrote, err := rebuilt.Restore(ctx, a, resolveAt)
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 0; wrote != want {
			t.Errorf("restore %d (v%d) wrote=%v, want %v", i, a.Version, wrote, want)
		}
	}
	got, err := rebuilt.Get(ctx, "fp1")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, v2) {
		t.Errorf("rebuilt %v\nwant %v", got, v2)
	}
	firing, err := rebuilt.Firing(ctx)
	if err != nil || len(firing) != 1 || firing[0].GetId() != "fp1" {
		t.Errorf("firing = %v, %v", firing, err)
	}
	// The rebuilt alert knows its events: a redelivery changes nothing, a
	// new event continues the same episode.
	check(t, apply(t, rebuilt, t0.Add(2*time.Minute), fire("fp1", "e2", t0.Add(time.Minute)))[0], false, cityhubv1.AlertState_ALERT_STATE_FIRING, 2, "e1", "e2")
	r := apply(t, rebuilt, t0.Add(3*time.Minute), fire("fp1", "e3", t0.Add(3*time.Minute)))[0]
	check(t, r, true, cityhubv1.AlertState_ALERT_STATE_FIRING, 3, "e1", "e2", "e3")
	if !r.Alert.GetStartsAt().AsTime().Equal(v1.GetStartsAt().AsTime()) {
		t.Errorf("the episode restarted: starts_at %v, was %v", r.Alert.GetStartsAt().AsTime(), v1.GetStartsAt().AsTime())
	}
	if _, err := rebuilt.Restore(ctx, &cityhubv1.Alert{Id: "x"}, time.Time{}); err == nil {
		t.Error("Restore accepted an alert without a version")
	}
}
