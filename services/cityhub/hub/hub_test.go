package hub_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// running is a hub started by a test.
type running struct {
	info hub.Info
	stop func()
}

func startHub(t *testing.T, o hub.Options) *running {
	t.Helper()
	return startHubAt(t, "127.0.0.1:0", o)
}

func (r *running) token(t *testing.T, p auth.Principal) string {
	t.Helper()
	key, err := auth.LoadOrCreateKey(r.info.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewSigner(key).Sign(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (r *running) do(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.info.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waterlogging(id string, depth float64) map[string]any {
	return map[string]any{
		"id": id, "source": "iot", "type": "waterlogging",
		"occurred_at": time.Now().UTC().Format(time.RFC3339),
		"location":    map[string]any{"district": "xuhui", "street": "tianping", "lon": 121.43, "lat": 31.19},
		"attrs":       map[string]any{"water_depth_cm": depth},
	}
}

type frame struct {
	Type    string            `json:"type"`
	Stream  string            `json:"stream"`
	Version int64             `json:"version"`
	Items   []json.RawMessage `json:"items"`
	Data    json.RawMessage   `json:"data"`
}

type item struct {
	ID      string `json:"id"`
	Rule    string `json:"rule"`
	State   string `json:"state"`
	Status  string `json:"status"`
	Lead    string `json:"lead"`
	AlertID string `json:"alert_id"`
	Version int64  `json:"version"`
}

func subscribe(t *testing.T, r *running, token string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(r.info.URL, "http") + "/v1/live"
	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "streams": []string{"alerts", "cases"}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// await reads frames until want returns true for one, or fails the test.
func await(t *testing.T, c *websocket.Conn, what string, want func(frame) bool) frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(45 * time.Second))
	for {
		var f frame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if want(f) {
			return f
		}
	}
}

// awaitEach waits until each of wants has taken a frame, in any order, and
// returns them in the order of wants: the gateway follows alerts and cases
// apart, so a case may come before the alert that opened it.
func awaitEach(t *testing.T, c *websocket.Conn, what string, wants ...func(frame) bool) []frame {
	t.Helper()
	got := make([]frame, len(wants))
	seen := make([]bool, len(wants))
	left := len(wants)
	await(t, c, what, func(f frame) bool {
		for i, want := range wants {
			if !seen[i] && want(f) {
				got[i], seen[i] = f, true
				left--
				break
			}
		}
		return left == 0
	})
	return got
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// TestEventToCaseEndToEnd posts one waterlogging event over HTTP and follows
// it through Kafka, the ruler, dispatch and Redis to a websocket subscriber,
// with a real redis-server and the embedded Kafka over TCP.
func TestEventToCaseEndToEnd(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})

	ws := subscribe(t, h, commander)
	await(t, ws, "the cases snapshot", func(f frame) bool { return f.Type == "snapshot" && f.Stream == "cases" })

	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("e2e-1", 35)); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events = %d %s", code, body)
	}
	frames := awaitEach(t, ws, "the alert and its case",
		func(f frame) bool { return f.Type == "alert" }, func(f frame) bool { return f.Type == "case" })
	alert := decode[item](t, frames[0].Data)
	if alert.State != "firing" || !strings.HasPrefix(alert.Rule, "flood-control/") {
		t.Errorf("alert = %+v", alert)
	}
	cs := decode[item](t, frames[1].Data)
	if cs.Status != "dispatched" || cs.Lead != "water-affairs" || cs.AlertID != alert.ID {
		t.Errorf("case = %+v, want dispatched to water-affairs from alert %s", cs, alert.ID)
	}

	// The dispatch API has it, with its history.
	code, body := h.do(t, "GET", "/v1/cases/"+cs.ID, commander, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"history"`) {
		t.Fatalf("GET case = %d %s", code, body)
	}

	// Metrics need a token too, and count what just happened.
	if code, _ := h.do(t, "GET", "/metrics", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token = %d, want 401", code)
	}
	code, body = h.do(t, "GET", "/metrics", commander, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `cityhub_intake_events_total{outcome="accepted",source="iot",via="events"} 1`) {
		t.Errorf("GET /metrics = %d, without the accepted event", code)
	}
	if code, _ := h.do(t, "GET", "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200 without a token", code)
	}

	// The same event again (a source retrying) opens no second case.
	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("e2e-1", 35)); code != http.StatusAccepted {
		t.Fatalf("repeat POST = %d %s", code, body)
	}
	// A marker event in another district shows when the repeat has passed
	// through: Kafka keeps per-district order, so wait for a second alert.
	marker := waterlogging("e2e-marker", 40)
	marker["location"] = map[string]any{"district": "pudong", "street": "zhangyang"}
	if code, body := h.do(t, "POST", "/v1/events", source, marker); code != http.StatusAccepted {
		t.Fatalf("marker POST = %d %s", code, body)
	}
	await(t, ws, "the marker's case", func(f frame) bool {
		return f.Type == "case" && decode[item](t, f.Data).ID != cs.ID
	})
	code, body = h.do(t, "GET", "/v1/cases?district=xuhui", commander, nil)
	if code != http.StatusOK {
		t.Fatalf("GET cases = %d %s", code, body)
	}
	list := decode[struct{ Items []item }](t, body)
	if len(list.Items) != 1 {
		t.Errorf("xuhui has %d cases after a repeated event, want 1: %s", len(list.Items), body)
	}
}

// TestEmbeddedRestartKeepsCases stops an all-embedded hub and starts it
// again on the same data directory: the in-memory Redis is gone, and the
// cases come back from the Kafka log.
func TestEmbeddedRestartKeepsCases(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, hub.Options{DataDir: dir})
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})
	ws := subscribe(t, h, commander)
	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("restart-1", 50)); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	cs := decode[item](t, await(t, ws, "the case", func(f frame) bool { return f.Type == "case" }).Data)
	ws.Close()
	h.stop()

	h2 := startHub(t, hub.Options{DataDir: dir})
	if h2.info.Rebuilt < 1 {
		t.Errorf("rebuilt %d cases, want at least 1", h2.info.Rebuilt)
	}
	code, body := h2.do(t, "GET", "/v1/cases/"+cs.ID, commander, nil)
	if code != http.StatusOK {
		t.Fatalf("after restart GET case %s = %d %s", cs.ID, code, body)
	}
	got := decode[item](t, body)
	if got.Version != cs.Version || got.Status != cs.Status {
		t.Errorf("after restart %+v, before %+v", got, cs)
	}

	// The alert state came back too: another report from the same street
	// continues the same alert, and opens no second case.
	ws2 := subscribe(t, h2, commander)
	if code, body := h2.do(t, "POST", "/v1/events", source, waterlogging("restart-2", 55)); code != http.StatusAccepted {
		t.Fatalf("POST after restart = %d %s", code, body)
	}
	a := decode[item](t, await(t, ws2, "the alert after restart", func(f frame) bool { return f.Type == "alert" }).Data)
	if a.ID != cs.AlertID || a.Version != 2 {
		t.Errorf("after restart the alert is %s v%d, want %s v2", a.ID, a.Version, cs.AlertID)
	}
	// Dispatch takes the alert's new version as an update of the alert
	// that opened the case: the case needs nothing, and is not published
	// again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := h2.do(t, "GET", "/metrics", commander, nil)
		if code == http.StatusOK && strings.Contains(string(body), `cityhub_dispatch_alerts_total{outcome="update"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatch did not take the alert's second version as an update: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body = h2.do(t, "GET", "/v1/cases?district=xuhui", commander, nil)
	items := decode[struct{ Items []item }](t, body).Items
	if code != http.StatusOK || len(items) != 1 || items[0].Version != cs.Version {
		t.Errorf("after restart xuhui has %+v (HTTP %d), want the one case at version %d", items, code, cs.Version)
	}
}

// TestNoDevSignIn checks that --no-dev-signin closes the console's dev
// sign-in of a hub that would otherwise offer it.
func TestNoDevSignIn(t *testing.T) {
	for _, off := range []bool{false, true} {
		h := startHub(t, hub.Options{DataDir: t.TempDir(), NoDevSignIn: off})
		if h.info.DevSignIn == off {
			t.Errorf("NoDevSignIn %v: Info.DevSignIn = %v", off, h.info.DevSignIn)
		}
		req, err := http.NewRequest("POST", h.info.URL+"/dev/signin", strings.NewReader(`{"role":"viewer"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", h.info.URL)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got == off {
			t.Errorf("NoDevSignIn %v: POST /dev/signin = %d", off, resp.StatusCode)
		}
		h.stop()
	}
}
