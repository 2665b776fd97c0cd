package load_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/cityhub/load"
	"github.com/cityhub/cityhub/services/platform/auth"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const rulesDir = "../../../rules"

// startHub runs an all-embedded hub on free ports and stops it when the
// test ends.
func startHub(t *testing.T) hub.Info {
	t.Helper()
	ready := make(chan hub.Info, 1)
	o := hub.Options{
		HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0", RedisAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		RulesDir: rulesDir, DataDir: t.TempDir(),
		OnReady: func(i hub.Info) { ready <- i },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub.Run returned %v after shutdown", err)
		}
	})
	select {
	case info := <-ready:
		return info
	case err := <-done:
		t.Fatalf("hub.Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the hub did not start within 60s")
	}
	return hub.Info{}
}

func sign(t *testing.T, key ed25519.PrivateKey, p auth.Principal) string {
	t.Helper()
	tok, err := auth.NewSigner(key).Sign(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokens returns a source token for the mix and the markers, and a
// commander token, signed with the key of the hub's data directory.
func tokens(t *testing.T, info hub.Info, mix load.Mix) (source, watch string) {
	t.Helper()
	key, err := auth.LoadOrCreateKey(info.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	sources, err := load.Sources(rulesDir+"/catalog.yaml", mix)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, key, auth.Principal{Subject: "load", Role: auth.RoleSource, Sources: sources}),
		sign(t, key, auth.Principal{Subject: "load", Role: auth.RoleCommander})
}

// TestRunAgainstAnEmbeddedHub drives a real hub for two small steps of
// each mix and checks that every figure of the report was measured.
func TestRunAgainstAnEmbeddedHub(t *testing.T) {
	info := startHub(t)
	for _, mix := range []load.Mix{load.MixCity, load.MixStorm} {
		t.Run(string(mix), func(t *testing.T) {
			source, watch := tokens(t, info, mix)
			var rows []load.Step
			// The storm counts a server process's CPU: this one, which
			// runs the hub.
			var servers []int
			if mix == load.MixStorm {
				servers = []int{os.Getpid()}
			}
			rep, err := load.Run(context.Background(), load.Options{
				URL: info.URL, Token: source, WatchToken: watch, CatalogPath: rulesDir + "/catalog.yaml",
				Mix: mix, Seed: 1, Rates: []float64{200, 400}, Step: 2 * time.Second, Conns: 2,
				MarkerRate: 5, MarkerWait: 45 * time.Second, ServerPIDs: servers,
				OnStep: func(s load.Step) { rows = append(rows, s) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Steps) == 0 || len(rows) != len(rep.Steps) {
				t.Fatalf("%d steps in the report, %d reported as they settled", len(rep.Steps), len(rows))
			}
			if rep.Saturated == "" && len(rep.Steps) != 2 {
				t.Errorf("ran %d steps of 2 without saturating", len(rep.Steps))
			}
			for i, s := range rep.Steps {
				if s.Accepted <= 0 || s.AcceptedRate <= 0 {
					t.Errorf("step %d: accepted %d (%v/s)", i, s.Accepted, s.AcceptedRate)
				}
				if s.HubCPUSeconds == nil || *s.HubCPUSeconds <= 0 || s.HubCPUPer1k == nil || *s.HubCPUPer1k <= 0 || s.HubCores == nil {
					t.Errorf("step %d: no hub CPU figures: %+v", i, s)
				}
				if (s.ServerCores != nil && *s.ServerCores > 0) != (servers != nil) {
					t.Errorf("step %d: server cores %v, counted for %v", i, s.ServerCores, servers)
				}
				m := s.Markers
				if m.Sent == 0 || m.Alerts == 0 || m.Cases == 0 {
					t.Errorf("step %d: markers sent %d, seen as alerts %d, as cases %d", i, m.Sent, m.Alerts, m.Cases)
				}
				for name, l := range map[string]load.Latency{"alert": m.AlertLatency, "case": m.CaseLatency} {
					if l.P50 == nil || *l.P50 <= 0 {
						t.Errorf("step %d: no intake→%s p50: %+v", i, name, l)
					}
				}
			}
			// The ruler saw the events: over the run it evaluated about what
			// intake accepted.
			var ruled float64
			for _, s := range rep.Steps {
				ruled += s.RuledRate * s.Seconds
			}
			if ruled <= 0 {
				t.Errorf("the ruler evaluated nothing: %+v", rep.Steps)
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(table.String(), "accepted/s") || strings.Count(table.String(), "\n") < 3 ||
				strings.Contains(table.String(), "server cores") != (servers != nil) {
				t.Errorf("table (servers %v):\n%s", servers, table.String())
			}
			t.Logf("\n%s", table.String())
		})
	}
}

// TestRunFailsWhenTheHubRefuses gives the driver tokens the hub does not
// accept: it must stop at once and say who refused what.
func TestRunFailsWhenTheHubRefuses(t *testing.T) {
	info := startHub(t)
	source, watch := tokens(t, info, load.MixCity)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sources, err := load.Sources(rulesDir+"/catalog.yaml", load.MixCity)
	if err != nil {
		t.Fatal(err)
	}
	foreignSource := sign(t, stranger, auth.Principal{Subject: "load", Role: auth.RoleSource, Sources: sources})
	foreignWatch := sign(t, stranger, auth.Principal{Subject: "load", Role: auth.RoleCommander})
	for _, c := range []struct {
		name, source, watch, origin, want string
	}{
		{name: "events", source: foreignSource, watch: watch, want: "refused the events (401"},
		{name: "metrics", source: source, watch: foreignWatch, want: "refused the watch token"},
		{name: "too few sources", source: sign(t, mustKey(t, info), auth.Principal{Subject: "load", Role: auth.RoleSource, Sources: []string{"iot"}}), watch: watch, want: "refused the events (400"},
		{name: "origin", source: source, watch: watch, origin: "http://elsewhere.example", want: "refused the watch token or origin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := load.Run(ctx, load.Options{
				URL: info.URL, Token: c.source, WatchToken: c.watch, Origin: c.origin, CatalogPath: rulesDir + "/catalog.yaml",
				Rates: []float64{200}, Step: 30 * time.Second, Conns: 2,
			})
			if !errors.Is(err, load.ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want ErrRefused saying %q", err, c.want)
			}
			if ctx.Err() != nil {
				t.Error("Run went on until the test's deadline")
			}
		})
	}
}

func mustKey(t *testing.T, info hub.Info) ed25519.PrivateKey {
	t.Helper()
	key, err := auth.LoadOrCreateKey(info.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
