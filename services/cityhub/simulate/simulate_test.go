package simulate

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

const catalogPath = "../../../rules/catalog.yaml"

// TestGeneratedEventsAreValid runs the generator's output through intake's
// own validation against the real catalog.
func TestGeneratedEventsAreValid(t *testing.T) {
	cat, err := catalog.Load(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGenerator(cat, 42)
	if len(g.kinds) < 8 {
		t.Fatalf("the catalog declares only %d of the simulated kinds", len(g.kinds))
	}
	now := time.Now()
	d := &events.Decoder{Catalog: cat, Now: func() time.Time { return now }}
	types := map[string]int{}
	for range 2000 {
		in := g.Next(now)
		if _, errs := d.Validate(&in); len(errs) > 0 {
			t.Fatalf("generated an invalid event %+v: %v", in, errs)
		}
		types[in.Type]++
	}
	if types["waterlogging"] == 0 || len(types) < 8 {
		t.Errorf("event types generated: %v", types)
	}
}

// TestRunPostsAtTheRate runs the simulator against a stand-in intake and
// counts what arrives.
func TestRunPostsAtTheRate(t *testing.T) {
	var mu sync.Mutex
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		var batch []events.Input
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got += len(batch)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	err := Run(context.Background(), Options{URL: srv.URL, Token: "tok", Rate: 50, Duration: time.Second, CatalogPath: catalogPath, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got < 10 || got > 60 {
		t.Errorf("posted %d events in a second at 50/s", got)
	}
}

func TestRunStopsOnRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"unauthenticated"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	err := Run(context.Background(), Options{URL: srv.URL, Token: "bad", Rate: 10, Duration: 5 * time.Second, CatalogPath: catalogPath})
	if err == nil {
		t.Fatal("Run kept going after the hub refused its token")
	}
}
