package load

import (
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

const catalogPath = "../../../rules/catalog.yaml"

// maxBody is intake's limit on a request body.
const maxBody = 1 << 20

// TestBatchesAreValidEvents runs what the encoder posts, for each mix and
// for a marker, through intake's own decoding and validation against the
// real catalog, with a token that speaks for exactly Sources.
func TestBatchesAreValidEvents(t *testing.T) {
	cat, err := catalog.Load(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, mix := range []Mix{MixCity, MixStorm, MixDay} {
		t.Run(string(mix), func(t *testing.T) {
			sources, err := Sources(catalogPath, mix)
			if err != nil {
				t.Fatal(err)
			}
			p := auth.Principal{Role: auth.RoleSource, Sources: sources}
			dec := &events.Decoder{Catalog: cat, Now: func() time.Time { return now }, SpeaksFor: p.SpeaksFor}
			g, err := newGenerator(mix, cat, 7)
			if err != nil {
				t.Fatal(err)
			}
			pl, err := newPool(g, 500, now)
			if err != nil {
				t.Fatal(err)
			}
			enc := newEncoder(pl, "load-test-0-", 0)
			ids := map[string]bool{}
			types := map[string]bool{}
			for _, n := range []int{1, 300, maxBatch} { // wraps around the pool
				body := enc.batch(n, now)
				if len(body) > maxBody {
					t.Fatalf("a batch of %d is %d bytes, over intake's %d", n, len(body), maxBody)
				}
				evs, err := dec.DecodeBody(body) // as intake decodes a POST
				if err != nil {
					t.Fatalf("intake would refuse a batch of %d: %v\n%.300s", n, err, body)
				}
				if len(evs) != n {
					t.Fatalf("batch of %d holds %d events", n, len(evs))
				}
				for _, ev := range evs {
					if ids[ev.GetId()] {
						t.Fatalf("id %s twice", ev.GetId())
					}
					ids[ev.GetId()] = true
					types[ev.GetType()] = true
					if got := ev.GetOccurredAt().AsTime(); !got.Equal(now.Truncate(time.Nanosecond)) {
						t.Fatalf("occurred_at %v, want %v", got, now)
					}
				}
			}
			if len(types) < 8 {
				t.Errorf("only %d event types in %d events: %v", len(types), len(ids), types)
			}
			marker := markerEvent("load-test-m1", cat.Districts[0].Code, now)
			if _, err := dec.DecodeInputs([]*events.Input{&marker}); err != nil {
				t.Errorf("intake would refuse a marker: %v", err)
			}
		})
	}
}

// TestStormCoversTheCatalog checks that the storm, as the ruler
// benchmark's uniform mix, draws every event type of the catalog.
func TestStormCoversTheCatalog(t *testing.T) {
	cat, err := catalog.Load(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	s := newStorm(cat, 1)
	seen := map[string]int{}
	n := 200 * len(cat.EventTypes)
	for range n {
		seen[s.Next(time.Now()).Type]++
	}
	for _, et := range cat.EventTypes {
		if c := seen[et.Code]; c < 100 || c > 300 {
			t.Errorf("%s drawn %d times of %d, want about 200", et.Code, c, n)
		}
	}
}
