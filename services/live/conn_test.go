package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

func TestMalformedFramesGetAnErrorAndTheSocketStaysUp(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.dial(auth.Principal{Role: auth.RoleViewer})
	for _, tc := range []struct{ name, frame, want string }{
		{"not JSON", "hello", "invalid JSON"},
		{"truncated", `{"type":"subscribe"`, "incomplete JSON"},
		{"not an object", `[1,2]`, "JSON object"},
		{"no type", `{"streams":["alerts"]}`, `missing "type"`},
		{"unknown type", `{"type":"publish"}`, `unknown type "publish"`},
		{"unknown field", `{"type":"subscribe","streams":["alerts"],"colour":"red"}`, `unknown field "colour"`},
		{"no streams", `{"type":"subscribe"}`, "streams"},
		{"unknown stream", `{"type":"subscribe","streams":["weather"]}`, `unknown stream "weather"`},
		{"streams not a list", `{"type":"subscribe","streams":"alerts"}`, `"streams" must be an array`},
		{"bad severity", `{"type":"subscribe","streams":["alerts"],"filter":{"min_severity":"huge"}}`, `unknown severity "huge"`},
		{"two objects", `{"type":"unsubscribe"} {}`, "after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send(t, ws, tc.frame)
			f := read(t, ws)
			if f.Type != frameError || !strings.Contains(f.Message, tc.want) {
				t.Errorf("got %q frame %q, want an error naming %q", f.Type, f.Message, tc.want)
			}
		})
	}
	t.Run("binary", func(t *testing.T) {
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte(subscribeAll)); err != nil {
			t.Fatal(err)
		}
		if f := read(t, ws); f.Type != frameError || !strings.Contains(f.Message, "binary") {
			t.Errorf("got %q %q, want an error about binary frames", f.Type, f.Message)
		}
	})
	// Still usable.
	subscribe(t, ws, subscribeAll)
	if got := testutil.ToFloat64(e.g.metrics.badFrames); got != 11 {
		t.Errorf("bad frames counted %v, want 11", got)
	}
}

func TestUnknownNamesInFilterWithCatalog(t *testing.T) {
	e := newEnv(t, func(g *Gateway) { g.opts.Catalog = testCatalog(t) })
	ws := e.dial(auth.Principal{Role: auth.RoleViewer})
	send(t, ws, `{"type":"subscribe","streams":["alerts"],"filter":{"districts":["atlantis"]}}`)
	if f := read(t, ws); f.Type != frameError || !strings.Contains(f.Message, `unknown district "atlantis"`) {
		t.Errorf("got %q %q", f.Type, f.Message)
	}
	send(t, ws, `{"type":"subscribe","streams":["alerts"],"filter":{"departments":["ministry-of-magic"]}}`)
	if f := read(t, ws); f.Type != frameError || !strings.Contains(f.Message, `unknown department "ministry-of-magic"`) {
		t.Errorf("got %q %q", f.Type, f.Message)
	}
	send(t, ws, `{"type":"subscribe","streams":["alerts"],"filter":{"districts":["xuhui"],"departments":["water-affairs"]}}`)
	if f := read(t, ws); f.Type != frameSnapshot {
		t.Errorf("got %q %q, want a snapshot", f.Type, f.Message)
	}
}

func TestResubscribeReplacesTheSubscription(t *testing.T) {
	e := newEnv(t, nil)
	e.snap.cases = []*cityhubv1.Case{kase("c1", 1, "xuhui", "water-affairs"), kase("c2", 1, "pudong", "water-affairs")}
	ws := e.dial(auth.Principal{Role: auth.RoleCommander})
	subscribe(t, ws, subscribeAll)
	send(t, ws, `{"type":"subscribe","streams":["cases"],"filter":{"districts":["pudong"]}}`)
	f := read(t, ws)
	if f.Type != frameSnapshot || f.Stream != streamCases {
		t.Fatalf("got %q/%q, want a fresh case snapshot", f.Type, f.Stream)
	}
	if ids := f.ids(t); len(ids) != 1 || ids[0] != "c2" {
		t.Errorf("snapshot %v, want [c2]", ids)
	}
	if got := testutil.ToFloat64(e.g.metrics.subscriptions); got != 1 {
		t.Errorf("subscriptions gauge %v, want 1", got)
	}
	var msgs []kafka.Message
	for _, c := range []*cityhubv1.Case{kase("x", 1, "xuhui", "a"), kase("p", 1, "pudong", "a")} {
		m := e.caseMsg(c)
		m.Key = []byte("k")
		msgs = append(msgs, m)
	}
	msgs = append(msgs, e.alertMsg(alert("alert-pudong", 1, "pudong", cityhubv1.Severity_SEVERITY_EXTREME, "")))
	e.produce(msgs...)
	if f := read(t, ws); f.Type != frameCase || f.entity(t).ID != "p" {
		t.Errorf("got %s %s, want only case p (xuhui and alerts are filtered out)", f.Type, f.Data)
	}

	send(t, ws, `{"type":"unsubscribe"}`)
	waitFor(t, "the subscription to end", func() bool { return testutil.ToFloat64(e.g.metrics.subscriptions) == 0 })
	e.produce(e.caseMsg(kase("p2", 1, "pudong", "a")))
	if f, err := tryRead(ws, 500*time.Millisecond); err == nil {
		t.Errorf("got %s %s after unsubscribing", f.Type, f.Data)
	}
}

func TestSnapshotFailureIsReported(t *testing.T) {
	e := newEnv(t, nil)
	e.snap.fail = context.DeadlineExceeded
	ws := e.dial(auth.Principal{Role: auth.RoleCommander})
	send(t, ws, subscribeAll)
	if f := read(t, ws); f.Type != frameError || !strings.Contains(f.Message, "snapshot") {
		t.Errorf("got %q %q, want an error about the snapshot", f.Type, f.Message)
	}
	if got := testutil.ToFloat64(e.g.metrics.subscriptions); got != 0 {
		t.Errorf("subscriptions gauge %v after a failed snapshot, want 0", got)
	}
}

func TestOversizeFrameClosesWith1009(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.dial(auth.Principal{Role: auth.RoleViewer})
	big := `{"type":"subscribe","streams":["alerts"],"filter":{"districts":["` + strings.Repeat("x", maxFrameBytes) + `"]}}`
	send(t, ws, big)
	_, err := tryRead(ws, 10*time.Second)
	if code := closeCode(err); code != websocket.CloseMessageTooBig {
		t.Errorf("read after an oversize frame: %v, want close 1009", err)
	}
}

func TestSlowClientIsResetWithoutSlowingOthers(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(g *Gateway) {
		g.queueSize = 4
		// The slow client's writer is stuck, as it is when the client stops
		// reading and the socket buffers fill.
		g.beforeWrite = func(p *auth.Principal) {
			if p.Subject == "slow" {
				<-release
			}
		}
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	slow := e.dial(auth.Principal{Subject: "slow", Role: auth.RoleCommander})
	send(t, slow, subscribeAll) // its snapshot waits behind the stuck writer
	waitFor(t, "the slow client's subscription", func() bool { return testutil.ToFloat64(e.g.metrics.subscriptions) == 1 })
	fast := e.dial(auth.Principal{Subject: "fast", Role: auth.RoleCommander})
	subscribe(t, fast, subscribeAll)

	// One change at a time, each read by the fast client before the next is
	// written, so that the fast client's small queue never fills while the
	// slow one's overflows after four.
	const n = 30
	for i := range n {
		e.produce(e.caseMsg(kase(fmt.Sprintf("c%d", i), 1, "xuhui", "water-affairs")))
		if f := read(t, fast); f.Type != frameCase || f.entity(t).ID != fmt.Sprintf("c%d", i) {
			t.Fatalf("fast client frame %d: %q %s", i, f.Type, f.Data)
		}
	}
	if got := testutil.ToFloat64(e.g.metrics.resets); got != 1 {
		t.Fatalf("resets %v once the slow client's queue overflowed, want 1", got)
	}
	close(release)
	var last frame
	var err error
	frames := 0
	for {
		var f frame
		f, err = tryRead(slow, 10*time.Second)
		if err != nil {
			break
		}
		last = f
		frames++
	}
	if last.Type != frameReset {
		t.Errorf("last frame to the slow client %q, want reset", last.Type)
	}
	if frames > 4+2 { // the queue, the frame the writer held, the reset
		t.Errorf("slow client got %d frames, more than its queue holds", frames)
	}
	if code := closeCode(err); code != websocket.CloseTryAgainLater {
		t.Errorf("slow client closed with %v, want 1013", err)
	}
	if got := testutil.ToFloat64(e.g.metrics.resets); got != 1 {
		t.Errorf("resets %v, want 1", got)
	}
}

func TestShutdownClosesSockets(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.dial(auth.Principal{Role: auth.RoleViewer})
	subscribe(t, ws, subscribeAll)
	idle := e.dial(auth.Principal{Role: auth.RoleCommander}) // never subscribed
	e.stop()
	for _, c := range []*websocket.Conn{ws, idle} {
		if _, err := tryRead(c, 10*time.Second); closeCode(err) != websocket.CloseGoingAway {
			t.Errorf("read after shutdown: %v, want close 1001", err)
		}
	}
	if got := testutil.ToFloat64(e.g.metrics.connections); got != 0 {
		t.Errorf("connections gauge %v after shutdown", got)
	}
	h := http.Header{"Authorization": {"Bearer " + e.token(auth.Principal{Role: auth.RoleViewer})}}
	if _, resp, err := websocket.DefaultDialer.Dial(e.url(), h); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after shutdown: %v (%s), want 503", err, status(resp))
	}
}

func TestExpiredTokenClosesWith4001(t *testing.T) {
	e := newEnv(t, nil)
	tok, err := e.signer.Sign(auth.Principal{Subject: "brief", Role: auth.RoleViewer}, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(e.url(), http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	defer ws.Close()
	subscribe(t, ws, subscribeAll)
	_, err = tryRead(ws, 10*time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != closeTokenExpired || ce.Text != "token expired" {
		t.Fatalf("read: %v, want close %d (token expired)", err, closeTokenExpired)
	}
}

func TestPingKeepsTheConnectionAlive(t *testing.T) {
	e := newEnv(t, func(g *Gateway) {
		g.pongWait = 300 * time.Millisecond
		g.pingPeriod = 100 * time.Millisecond
	})
	ws := e.dial(auth.Principal{Role: auth.RoleViewer})
	pings := make(chan struct{}, 100)
	ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	// The gorilla client answers pings only while it reads.
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for range 5 {
		select {
		case <-pings:
		case <-time.After(10 * time.Second):
			t.Fatal("no ping from the gateway")
		}
	}
	if got := testutil.ToFloat64(e.g.metrics.connections); got != 1 {
		t.Errorf("connections %v; the connection should outlive several pong waits", got)
	}
}

func TestDeadClientIsDropped(t *testing.T) {
	e := newEnv(t, func(g *Gateway) {
		g.pongWait = 300 * time.Millisecond
		g.pingPeriod = 100 * time.Millisecond
	})
	e.dial(auth.Principal{Role: auth.RoleViewer}) // never reads, so never answers a ping
	waitFor(t, "the silent client to be dropped", func() bool { return testutil.ToFloat64(e.g.metrics.connections) == 0 })
}

func TestUndecodableMessagesAreSkipped(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.dial(auth.Principal{Role: auth.RoleCommander})
	subscribe(t, ws, subscribeAll)
	bad := kafka.Message{Topic: e.k.Topics.Cases, Key: []byte("k"), Value: []byte("\xff\xff not protobuf")}
	noID := e.caseMsg(&cityhubv1.Case{Version: 1})
	noID.Key = []byte("k")
	good := e.caseMsg(kase("good", 1, "xuhui", "a"))
	good.Key = []byte("k")
	e.produce(bad, noID, good)
	if f := read(t, ws); f.entity(t).ID != "good" {
		t.Errorf("got %s", f.Data)
	}
	if got := testutil.ToFloat64(e.g.metrics.undecodable.WithLabelValues(e.k.Topics.Cases)); got != 2 {
		t.Errorf("undecodable %v, want 2", got)
	}
}

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse([]byte(`
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
  - {code: pudong, name: 浦东新区, centre: {lon: 121.54, lat: 31.22}}
departments:
  - {code: water-affairs, name: 水务局}
event_types:
  - {code: waterlogging, name: 道路积水, owner: water-affairs}
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientThatNeverReadsIsResetWithoutSlowingOthers subscribes a client
// that then never reads again, next to clients that read everything, and
// sends large changes until the silent client's socket and queue are full:
// it is reset and dropped, and the others miss nothing.
func TestClientThatNeverReadsIsResetWithoutSlowingOthers(t *testing.T) {
	e := newEnv(t, func(g *Gateway) { g.queueSize = 32 })
	silent := e.dial(auth.Principal{Subject: "silent", Role: auth.RoleCommander})
	subscribe(t, silent, subscribeAll)

	type reader struct {
		mu  sync.Mutex
		ids map[string]int
		err error
	}
	readers := make([]*reader, 3)
	var wg sync.WaitGroup
	var sockets []*websocket.Conn
	defer func() {
		for _, ws := range sockets {
			ws.Close()
		}
		wg.Wait()
	}()
	for i := range readers {
		r := &reader{ids: map[string]int{}}
		readers[i] = r
		ws := e.dial(auth.Principal{Subject: fmt.Sprint("reader-", i), Role: auth.RoleCommander})
		subscribe(t, ws, subscribeAll)
		_ = ws.SetReadDeadline(time.Time{})
		wg.Go(func() {
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					return // closed by the test
				}
				var f frame
				if err := json.Unmarshal(b, &f); err != nil || f.Type != frameCase {
					r.mu.Lock()
					r.err = fmt.Errorf("unexpected frame %.60s", b)
					r.mu.Unlock()
					return
				}
				var x entity
				_ = json.Unmarshal(f.Data, &x)
				r.mu.Lock()
				r.ids[x.ID]++
				r.mu.Unlock()
			}
		})
		sockets = append(sockets, ws)
	}
	received := func(r *reader) int {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.err != nil {
			t.Fatal(r.err)
		}
		return len(r.ids)
	}

	const perRound = 10
	sent := 0
	round := func() {
		msgs := make([]kafka.Message, perRound)
		for i := range msgs {
			c := kase(fmt.Sprint("big-", sent), 1, "xuhui", "water-affairs")
			c.Description = strings.Repeat("积水", 10<<10) // 60 KiB of JSON
			msgs[i] = e.caseMsg(c)
			msgs[i].Key = []byte("k")
			sent++
		}
		e.produce(msgs...)
		for i, r := range readers {
			deadline := time.Now().Add(20 * time.Second)
			for received(r) != sent {
				if time.Now().After(deadline) {
					t.Fatalf("reader %d got %d of %d; resets %v, deltas %v, sent %v", i, received(r), sent, testutil.ToFloat64(e.g.metrics.resets),
						testutil.ToFloat64(e.g.metrics.deltas.WithLabelValues(streamCases)), testutil.ToFloat64(e.g.metrics.sentCase))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	for testutil.ToFloat64(e.g.metrics.resets) == 0 {
		if sent > 2000 {
			t.Fatal("the silent client was never reset")
		}
		round()
	}
	for range 3 {
		round()
	}
	waitFor(t, "the silent client to be dropped", func() bool { return testutil.ToFloat64(e.g.metrics.connections) == float64(len(readers)) })
	if got := testutil.ToFloat64(e.g.metrics.resets); got != 1 {
		t.Errorf("resets %v, want 1: only the silent client", got)
	}
	if got := testutil.ToFloat64(e.g.metrics.closes.WithLabelValues("reset")); got != 1 {
		t.Errorf("closes for a reset %v, want 1", got)
	}
	for i, r := range readers {
		r.mu.Lock()
		for id, n := range r.ids {
			if n != 1 {
				t.Errorf("reader %d got %s %d times", i, id, n)
			}
		}
		r.mu.Unlock()
	}
	t.Logf("the silent client was reset after %d changes of 60 KiB", sent-3*perRound)
}
