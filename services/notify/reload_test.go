package notify

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// notify.yaml edited while the service runs: a valid file takes over at
// the next change, a refused one leaves the running config, and both are
// counted.
func TestConfigReloads(t *testing.T) {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t).Client
	cat, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "notify.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
defaults: {group_wait: 10ms}
receivers: [{name: duty-room, inbox: {}}]
routes: {receivers: [duty-room]}
`)
	cfg, err := config.Load(path, cat)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	inbox := receiver.NewInbox(100)
	reg := prometheus.NewRegistry()
	svc, err := New(Options{
		Brokers: k.Brokers, Topics: k.Topics, GroupPrefix: kafkatest.Group("reload") + "-", Redis: rdb, Writer: w,
		Config: cfg, ConfigPath: path, PollInterval: 20 * time.Millisecond, Catalog: cat, Calendar: holidays{},
		BaseURL: "https://hub.example", Inbox: inbox, Dev: true, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	n := 0
	dispatch := func() string {
		n++
		c := &cityhubv1.Case{Id: "xuhui-reload" + string(rune('a'+n)), District: "xuhui", Title: "道路积水", EventType: "waterlogging"}
		spec := &cityhubv1.DispatchSpec{Lead: "water-affairs", Sla: &cityhubv1.Sla{Accept: durationpb.New(30 * time.Minute), Handle: durationpb.New(4 * time.Hour)}}
		entry, err := lifecycle.New(c, spec, lifecycle.Actor{Subject: "rule:flood", Role: lifecycle.RoleSystem}, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.Marshal(k.Topics.Cases, "xuhui", &cityhubv1.CaseChange{Case: c, Change: entry})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
		return c.Id
	}
	receivedBy := func(caseID string) map[string]bool {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			got := map[string]bool{}
			for _, it := range inbox.Items() {
				if it.CaseID == caseID {
					got[it.Receiver] = true
				}
			}
			if len(got) > 0 {
				time.Sleep(100 * time.Millisecond) // the others of the change
				for _, it := range inbox.Items() {
					if it.CaseID == caseID {
						got[it.Receiver] = true
					}
				}
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("nothing about %s reached the inbox", caseID)
		return nil
	}
	waitReloads := func(result string, want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for testutil.ToFloat64(svc.metrics.reloads.WithLabelValues(result)) < want {
			if time.Now().After(deadline) {
				t.Fatalf("no %s reload counted", result)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := receivedBy(dispatch()); !got["duty-room"] || len(got) != 1 {
		t.Fatalf("first change went to %v", got)
	}

	// A file with an unknown department and receiver is refused whole.
	write(`
receivers: [{name: duty-room, inbox: {}}, {name: water-room, inbox: {}}]
routes:
  receivers: [duty-room]
  routes: [{match: {department: water-bureau}, receivers: [nowhere]}]
`)
	waitReloads("failure", 1)
	if testutil.ToFloat64(svc.metrics.reloadedOK) != 0 {
		t.Error("a refused reload is not shown as such")
	}
	if got := receivedBy(dispatch()); !got["duty-room"] || len(got) != 1 {
		t.Fatalf("after a refused reload the change went to %v", got)
	}

	// Fixed: the water bureau's room gets its changes from the next one on.
	write(`
defaults: {group_wait: 10ms}
receivers: [{name: duty-room, inbox: {}}, {name: water-room, inbox: {}}]
routes:
  receivers: [duty-room]
  routes: [{match: {department: water-affairs}, receivers: [water-room]}]
`)
	waitReloads("success", 1)
	if got := receivedBy(dispatch()); !got["water-room"] {
		t.Fatalf("after the reload the change went to %v", got)
	}
	if err := svc.Reload(ctx); err != nil {
		t.Errorf("Reload of the same file = %v", err)
	}
}
