package hub_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// freeAddr returns a loopback address nothing listens on, for a hub that
// must come back on the same address after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startHubAt starts a hub whose HTTP listener is at addr (":0" for a fresh
// port) on embedded Kafka and, unless o names one, embedded Redis, and stops
// it when the test ends.
func startHubAt(t *testing.T, addr string, o hub.Options) *running {
	t.Helper()
	o.HTTPAddr = addr
	o.KafkaAddr = "127.0.0.1:0"
	o.RedisAddr = "127.0.0.1:0"
	o.MQTTAddr = "127.0.0.1:0"
	if o.RulesDir == "" {
		o.RulesDir = "../../../rules"
	}
	ready := make(chan hub.Info, 1)
	o.OnReady = func(i hub.Info) { ready <- i }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx, o) }()
	r := &running{}
	select {
	case r.info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("hub.Run: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		t.Fatal("the hub did not start within 60s")
	}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hub.Run returned %v after shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the hub did not stop within 30s")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// TestPagesReconnectAfterHubRestart stops the hub under an open wall
// screen and console and starts it again on the same address and data: both
// pages must say they are reconnecting, come back by themselves, take a
// fresh snapshot, and show what changed meanwhile.
func TestPagesReconnectAfterHubRestart(t *testing.T) {
	redis := redistest.Start(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	h := startHubAt(t, addr, hub.Options{DataDir: dir, RedisURL: redis.URL})
	// The signing key is under the data dir: the tokens outlive the restart.
	viewer := h.token(t, auth.Principal{Subject: "wall", Role: auth.RoleViewer})
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})

	wall := browser(t)
	wall, cancel := context.WithTimeout(wall, 6*pageWait)
	defer cancel()
	do(t, wall, "open the wall screen", chromedp.Navigate(h.info.URL+"/#token="+viewer))
	waitFor(t, wall, "the wall screen to connect", `document.querySelector('#conn').dataset.state === 'connected'`)
	console := newTab(t, wall, "console")
	do(t, console, "open the console", chromedp.Navigate(h.info.URL+"/console#token="+commander))
	waitFor(t, console, "the console to connect", `document.querySelector('#conn').dataset.state === 'connected'`)

	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("restart-page-1", 45)); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	id := firstCase(t, wall, `#cases [data-case-id][data-status="dispatched"]`)
	openInConsole(t, console, id)
	snapshots := func(ctx context.Context) int {
		n, _ := strconv.Atoi(eval[string](t, ctx, `document.querySelector('#conn').dataset.snapshots`))
		return n
	}
	wallBefore, consoleBefore := snapshots(wall), snapshots(console)

	h.stop()
	waitFor(t, wall, "the wall screen to notice", `['reconnecting', 'offline'].includes(document.querySelector('#conn').dataset.state)`)
	waitFor(t, console, "the console to notice", `['reconnecting', 'offline'].includes(document.querySelector('#conn').dataset.state)`)
	saveScreenshot(t, wall, "wall-reconnecting")

	h2 := startHubAt(t, addr, hub.Options{DataDir: dir, RedisURL: redis.URL})
	// A change the pages may learn of from the new snapshot or as a delta,
	// depending on how far their backoff has gone: either way they show it.
	water := h2.token(t, auth.Principal{Subject: "water-duty", Role: auth.RoleDepartment, Dept: "water-affairs"})
	code, body := h2.do(t, "POST", "/v1/cases/"+id+"/actions", water, map[string]any{
		"action": "accept", "department": "water-affairs", "expected_version": 1, "request_id": "after-restart",
	})
	if code != http.StatusOK {
		t.Fatalf("accept after restart = %d %s", code, body)
	}

	waitFor(t, wall, "the wall screen to reconnect", `document.querySelector('#conn').dataset.state === 'connected'`)
	waitFor(t, console, "the console to reconnect", `document.querySelector('#conn').dataset.state === 'connected'`)
	if n := snapshots(wall); n <= wallBefore {
		t.Errorf("the wall screen took %d snapshots in all, %d before the restart: it did not re-snapshot", n, wallBefore)
	}
	if n := snapshots(console); n <= consoleBefore {
		t.Errorf("the console took %d snapshots in all, %d before the restart: it did not re-snapshot", n, consoleBefore)
	}
	waitFor(t, wall, "the wall screen to show the accept", `document.querySelector('#cases [data-case-id="`+id+`"]')?.dataset.status === 'accepted'`)
	waitFor(t, console, "the console to show the accept", `document.querySelector('#detail').dataset.status === 'accepted'`)

	// The feed works after the reconnect: a new event shows up.
	if code, body := h2.do(t, "POST", "/v1/events", source, map[string]any{
		"id": "restart-page-2", "source": "iot", "type": "manhole_cover_missing",
		"occurred_at": time.Now().UTC().Format(time.RFC3339),
		"location":    map[string]any{"district": "jingan", "street": "nanjing-xi", "address": "南京西路 1266 号"},
		"attrs":       map[string]any{"cover_id": "jingan-0042"},
	}); code != http.StatusAccepted {
		t.Fatalf("POST after restart = %d %s", code, body)
	}
	waitFor(t, wall, "the new case after the reconnect", `document.querySelectorAll('#cases [data-case-id]').length === 2`)
	saveScreenshot(t, wall, "wall-reconnected")
}
