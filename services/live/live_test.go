package live

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

const testOrigin = "http://wall.example:8080"

// fakeSnapshot is a Snapshotter over fixed lists; during, when set, runs in
// the middle of each snapshot.
type fakeSnapshot struct {
	mu     sync.Mutex
	alerts []*cityhubv1.Alert
	cases  []*cityhubv1.Case
	during func()
	fail   error
}

func (f *fakeSnapshot) FiringAlerts(context.Context) ([]*cityhubv1.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.alerts, f.fail
}

func (f *fakeSnapshot) OpenCases(context.Context) ([]*cityhubv1.Case, error) {
	f.mu.Lock()
	during, cases, fail := f.during, f.cases, f.fail
	f.mu.Unlock()
	if during != nil {
		during()
	}
	return cases, fail
}

// env is a running gateway over kfake, served by an httptest server.
type env struct {
	t      *testing.T
	k      *kafkatest.Cluster
	g      *Gateway
	reg    *prometheus.Registry
	srv    *httptest.Server
	signer *auth.Signer
	key    ed25519.PrivateKey
	snap   *fakeSnapshot
	w      *stream.Writer
	cancel context.CancelFunc
	ran    chan error
}

func newEnv(t *testing.T, tweak func(*Gateway)) *env {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	k := kafkatest.Start(t)
	e := &env{t: t, k: k, reg: prometheus.NewRegistry(), signer: auth.NewSigner(priv), key: priv, snap: &fakeSnapshot{}}
	e.g, err = New(Options{
		Brokers:        k.Brokers,
		Topics:         k.Topics,
		Verifier:       v,
		AllowedOrigins: []string{testOrigin},
		Snapshot:       e.snap,
		Registerer:     e.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(e.g)
	}
	mux := http.NewServeMux()
	e.g.Routes(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.w, err = stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.w.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.ran = cancel, make(chan error, 1)
	go func() { e.ran <- e.g.Run(ctx) }()
	t.Cleanup(e.stop)
	waitFor(t, "the gateway to be ready", func() bool {
		e.g.mu.Lock()
		defer e.g.mu.Unlock()
		return e.g.state == stateReady
	})
	return e
}

// stop ends Run and checks that it returned nil.
func (e *env) stop() {
	e.t.Helper()
	e.cancel()
	select {
	case err, ok := <-e.ran:
		if ok && err != nil {
			e.t.Errorf("Run = %v", err)
		}
		if ok {
			close(e.ran)
		}
	case <-time.After(15 * time.Second):
		e.t.Error("Run did not return after its context ended")
	}
}

func (e *env) token(p auth.Principal) string {
	e.t.Helper()
	if p.Subject == "" {
		p.Subject = "test-" + string(p.Role)
	}
	tok, err := e.signer.Sign(p, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) url() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/live" }

// dial opens a websocket with the header token of p and no Origin.
func (e *env) dial(p auth.Principal) *websocket.Conn {
	e.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + e.token(p)}}
	ws, resp, err := websocket.DefaultDialer.Dial(e.url(), h)
	if err != nil {
		e.t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	e.t.Cleanup(func() { ws.Close() })
	return ws
}

func (e *env) produce(msgs ...kafka.Message) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.w.Write(ctx, msgs...); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

func (e *env) alertMsg(a *cityhubv1.Alert) kafka.Message {
	e.t.Helper()
	m, err := stream.Marshal(e.k.Topics.Alerts, a.GetDistrict(), a)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) caseMsg(c *cityhubv1.Case) kafka.Message {
	e.t.Helper()
	m, err := stream.Marshal(e.k.Topics.Cases, c.GetDistrict(), &cityhubv1.CaseChange{Case: c})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

func alert(id string, version int64, district string, sev cityhubv1.Severity, lead string, assist ...string) *cityhubv1.Alert {
	a := &cityhubv1.Alert{Id: id, Version: version, State: cityhubv1.AlertState_ALERT_STATE_FIRING, Severity: sev, District: district, Title: "alert " + id}
	if lead != "" {
		a.Dispatch = &cityhubv1.DispatchSpec{Lead: lead, Assist: assist}
	}
	return a
}

func kase(id string, version int64, district, lead string, assist ...string) *cityhubv1.Case {
	return &cityhubv1.Case{Id: id, Version: version, Status: cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED, District: district, Title: "case " + id, Lead: lead, Assist: assist}
}

// frame is any server frame.
type frame struct {
	Type    string            `json:"type"`
	Stream  string            `json:"stream"`
	ID      string            `json:"id"`
	Version int64             `json:"version"`
	Message string            `json:"message"`
	Items   []json.RawMessage `json:"items"`
	Data    json.RawMessage   `json:"data"`
}

// entity is what the tests look at in an alert or a case.
type entity struct {
	ID       string `json:"id"`
	Version  int64  `json:"version"`
	District string `json:"district"`
	Lead     string `json:"lead"`
	Assist   []string
	Dispatch *struct {
		Lead   string   `json:"lead"`
		Assist []string `json:"assist"`
	} `json:"dispatch"`
}

func (f frame) entity(t *testing.T) entity {
	t.Helper()
	var x entity
	if err := json.Unmarshal(f.Data, &x); err != nil {
		t.Fatalf("%s frame data: %v", f.Type, err)
	}
	return x
}

func (f frame) ids(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, raw := range f.Items {
		var x entity
		if err := json.Unmarshal(raw, &x); err != nil {
			t.Fatalf("snapshot item: %v", err)
		}
		out = append(out, x.ID)
	}
	slices.Sort(out)
	return out
}

// read returns the next frame, failing the test after a deadline.
func read(t *testing.T, ws *websocket.Conn) frame {
	t.Helper()
	f, err := tryRead(ws, 15*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

func tryRead(ws *websocket.Conn, wait time.Duration) (frame, error) {
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	mt, b, err := ws.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if mt != websocket.TextMessage {
		return frame{}, errors.New("binary frame from the server")
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, err
	}
	return f, nil
}

func send(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var err error
	if s, ok := v.(string); ok {
		err = ws.WriteMessage(websocket.TextMessage, []byte(s))
	} else {
		err = ws.WriteJSON(v)
	}
	if err != nil {
		t.Fatalf("send: %v", err)
	}
}

const subscribeAll = `{"type":"subscribe","streams":["alerts","cases"]}`

// subscribe sends a subscribe frame and returns the two snapshots.
func subscribe(t *testing.T, ws *websocket.Conn, msg string) (alerts, cases frame) {
	t.Helper()
	send(t, ws, msg)
	for range 2 {
		f := read(t, ws)
		if f.Type != frameSnapshot {
			t.Fatalf("got a %q frame (%s), want a snapshot", f.Type, f.Message)
		}
		switch f.Stream {
		case streamAlerts:
			alerts = f
		case streamCases:
			cases = f
		}
	}
	if alerts.Type == "" || cases.Type == "" {
		t.Fatal("did not get one snapshot per stream")
	}
	return alerts, cases
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func TestHandshake(t *testing.T) {
	e := newEnv(t, nil)
	viewer := e.token(auth.Principal{Role: auth.RoleViewer})
	source := e.token(auth.Principal{Role: auth.RoleSource, Sources: []string{"iot"}})
	for _, tc := range []struct {
		name         string
		header       http.Header
		protocols    []string
		query        string
		want         int
		wantProtocol string
	}{
		{name: "no token", want: 401},
		{name: "no token from an allowed page", header: http.Header{"Origin": {testOrigin}}, protocols: []string{subprotocol}, want: 401},
		{name: "bad header token", header: http.Header{"Authorization": {"Bearer not.a.token"}}, want: 401},
		{name: "bad subprotocol token", header: http.Header{"Origin": {testOrigin}}, protocols: []string{subprotocol, "bearer.x.y.z"}, want: 401},
		{name: "source role", header: http.Header{"Authorization": {"Bearer " + source}}, want: 403},
		{name: "wrong origin", header: http.Header{"Origin": {"http://evil.example"}}, protocols: []string{subprotocol, "bearer." + viewer}, want: 403},
		{name: "origin differing only in port", header: http.Header{"Origin": {"http://wall.example:9090"}}, protocols: []string{subprotocol, "bearer." + viewer}, want: 403},
		{name: "origin differing only in scheme", header: http.Header{"Origin": {"https://wall.example:8080"}}, protocols: []string{subprotocol, "bearer." + viewer}, want: 403},
		{name: "wrong origin with a header token", header: http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + viewer}}, want: 403},
		{name: "allowed origin and subprotocol token", header: http.Header{"Origin": {testOrigin}}, protocols: []string{subprotocol, "bearer." + viewer}, want: 101, wantProtocol: subprotocol},
		{name: "token subprotocol without cityhub.v1", header: http.Header{"Origin": {testOrigin}}, protocols: []string{"bearer." + viewer}, want: 400},
		{name: "allowed origin and query token", header: http.Header{"Origin": {testOrigin}}, query: "?access_token=" + viewer, want: 101},
		{name: "header token without origin", header: http.Header{"Authorization": {"Bearer " + viewer}}, want: 101},
		{name: "header token and cityhub.v1 without origin", header: http.Header{"Authorization": {"Bearer " + viewer}}, protocols: []string{subprotocol}, want: 101, wantProtocol: subprotocol},
		{name: "query token without origin", query: "?access_token=" + viewer, want: 403},
		{name: "subprotocol token without origin", protocols: []string{subprotocol, "bearer." + viewer}, want: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: tc.protocols}
			ws, resp, err := d.Dial(e.url()+tc.query, tc.header)
			got := 0
			if resp != nil {
				got = resp.StatusCode
			}
			if got != tc.want {
				t.Fatalf("status %d, want %d (err %v)", got, tc.want, err)
			}
			if tc.want != http.StatusSwitchingProtocols {
				if resp.Header.Get("Sec-WebSocket-Protocol") != "" {
					t.Error("a refused handshake selected a subprotocol")
				}
				return
			}
			defer ws.Close()
			if p := ws.Subprotocol(); p != tc.wantProtocol {
				t.Errorf("subprotocol %q, want %q", p, tc.wantProtocol)
			}
			subscribe(t, ws, subscribeAll)
		})
	}
}

func TestRefusesBeforeOffsetsAreResolved(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, _ := auth.NewVerifier(pub)
	g, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Topics: stream.DefaultTopics(""), Verifier: v, Snapshot: &fakeSnapshot{}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tok, _ := auth.NewSigner(priv).Sign(auth.Principal{Subject: "v", Role: auth.RoleViewer}, time.Hour)
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/live", http.Header{"Authorization": {"Bearer " + tok}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial before Run: %v (%s), want 503", err, status(resp))
	}
}

func TestNewChecksOptions(t *testing.T) {
	_, err := New(Options{AllowedOrigins: []string{"wall.example", "http://x.example/path"}})
	for _, want := range []string{"no brokers", "topics", "verifier", "snapshotter", `"wall.example"`, `"http://x.example/path"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error = %v, want it to mention %s", err, want)
		}
	}
}

func TestSnapshotThenDeltas(t *testing.T) {
	e := newEnv(t, nil)
	e.snap.alerts = []*cityhubv1.Alert{
		alert("a1", 1, "xuhui", cityhubv1.Severity_SEVERITY_SEVERE, ""),
		{Id: "a-resolved", Version: 2, State: cityhubv1.AlertState_ALERT_STATE_RESOLVED, District: "xuhui"},
	}
	e.snap.cases = []*cityhubv1.Case{kase("c1", 2, "xuhui", "water-affairs")}

	ws := e.dial(auth.Principal{Role: auth.RoleCommander})
	alerts, cases := subscribe(t, ws, subscribeAll)
	if got := alerts.ids(t); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("alert snapshot %v, want [a1] (resolved alerts left out)", got)
	}
	if got := cases.ids(t); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("case snapshot %v, want [c1]", got)
	}

	e.produce(e.alertMsg(alert("a2", 1, "xuhui", cityhubv1.Severity_SEVERITY_MINOR, "")), e.caseMsg(kase("c1", 3, "xuhui", "water-affairs")))
	got := map[string]int64{}
	for len(got) < 2 {
		f := read(t, ws)
		switch f.Type {
		case frameAlert, frameCase:
			x := f.entity(t)
			if x.Version != f.Version {
				t.Errorf("frame version %d, data version %d", f.Version, x.Version)
			}
			got[f.Type+"/"+x.ID] = f.Version
		default:
			t.Fatalf("unexpected %q frame", f.Type)
		}
	}
	if got["alert/a2"] != 1 || got["case/c1"] != 3 {
		t.Errorf("deltas %v, want alert/a2 v1 and case/c1 v3", got)
	}
}

// TestNothingFallsBetweenSnapshotAndDeltas writes changes while the
// snapshot is being taken: the one the snapshot misses must arrive after
// it, the one older than the snapshot must not arrive at all.
func TestNothingFallsBetweenSnapshotAndDeltas(t *testing.T) {
	e := newEnv(t, nil)
	e.snap.cases = []*cityhubv1.Case{kase("c1", 5, "xuhui", "water-affairs")}
	deltas := e.g.metrics.deltas.WithLabelValues(streamCases)
	var once sync.Once
	e.snap.during = func() {
		once.Do(func() {
			before := testutil.ToFloat64(deltas)
			e.produce(e.caseMsg(kase("c1", 4, "xuhui", "water-affairs")), e.caseMsg(kase("c9", 1, "xuhui", "water-affairs")))
			waitFor(t, "the gateway to read both changes", func() bool { return testutil.ToFloat64(deltas) >= before+2 })
		})
	}
	ws := e.dial(auth.Principal{Role: auth.RoleCommander})
	_, cases := subscribe(t, ws, subscribeAll)
	if got := cases.ids(t); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("case snapshot %v, want [c1]", got)
	}
	e.produce(e.caseMsg(kase("marker", 1, "xuhui", "water-affairs")))
	var seen []string
	for {
		f := read(t, ws)
		x := f.entity(t)
		if x.ID == "marker" {
			break
		}
		seen = append(seen, x.ID)
	}
	if !slices.Equal(seen, []string{"c9"}) {
		t.Errorf("deltas before the marker %v, want [c9]: the change made during the snapshot, not the stale c1 v4", seen)
	}
}

func TestScope(t *testing.T) {
	e := newEnv(t, nil)
	const water, traffic = "water-affairs", "traffic-police"
	e.snap.cases = []*cityhubv1.Case{
		kase("s-water", 1, "xuhui", water),
		kase("s-traffic", 1, "pudong", traffic),
	}
	e.snap.alerts = []*cityhubv1.Alert{
		alert("s-a-water", 1, "xuhui", cityhubv1.Severity_SEVERITY_MINOR, water),
		alert("s-a-none", 1, "pudong", cityhubv1.Severity_SEVERITY_EXTREME, ""),
	}
	// Every change goes to one partition (one key), so the marker comes last.
	var msgs []kafka.Message
	add := func(m kafka.Message) { m.Key = []byte("k"); msgs = append(msgs, m) }
	add(e.caseMsg(kase("lead-water", 1, "xuhui", water)))
	add(e.caseMsg(kase("assist-water", 1, "pudong", traffic, water)))
	add(e.caseMsg(kase("traffic-only", 1, "xuhui", traffic)))
	add(e.caseMsg(kase("traffic-pudong", 2, "pudong", traffic, "sanitation")))
	part := kase("part-water", 1, "pudong", "sanitation")
	part.Parts = []*cityhubv1.Part{{Department: "sanitation", Lead: true}, {Department: water}}
	add(e.caseMsg(part))
	add(e.alertMsg(alert("a-water", 1, "pudong", cityhubv1.Severity_SEVERITY_SEVERE, traffic, water)))
	add(e.alertMsg(alert("a-traffic", 1, "xuhui", cityhubv1.Severity_SEVERITY_MINOR, traffic)))
	add(e.alertMsg(alert("a-none", 1, "xuhui", cityhubv1.Severity_SEVERITY_EXTREME, "")))
	// The topics are read independently: each has its marker.
	add(e.caseMsg(kase("marker", 1, "xuhui", water, traffic)))
	add(e.alertMsg(alert("marker", 1, "xuhui", cityhubv1.Severity_SEVERITY_EXTREME, water, traffic)))

	all := []string{"a-none", "a-traffic", "a-water", "assist-water", "lead-water", "part-water", "traffic-only", "traffic-pudong"}
	type subscriber struct {
		name           string
		p              auth.Principal
		msg            string
		snapshot, want []string
		ws             *websocket.Conn
	}
	subs := []*subscriber{
		{name: "commander", p: auth.Principal{Role: auth.RoleCommander}, msg: subscribeAll,
			snapshot: []string{"s-a-none", "s-a-water", "s-traffic", "s-water"},
			want:     all},
		{name: "water department", p: auth.Principal{Role: auth.RoleDepartment, Dept: water, Districts: []string{"pudong"}}, msg: subscribeAll,
			snapshot: []string{"s-a-water", "s-water"},
			want:     []string{"a-water", "assist-water", "lead-water", "part-water"}},
		{name: "traffic department", p: auth.Principal{Role: auth.RoleDepartment, Dept: traffic}, msg: subscribeAll,
			snapshot: []string{"s-traffic"},
			want:     []string{"a-traffic", "a-water", "assist-water", "traffic-only", "traffic-pudong"}},
		{name: "xuhui dispatcher", p: auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui"}}, msg: subscribeAll,
			snapshot: []string{"s-a-water", "s-water"},
			want:     []string{"a-none", "a-traffic", "lead-water", "traffic-only"}},
		{name: "viewer without districts", p: auth.Principal{Role: auth.RoleViewer}, msg: subscribeAll,
			snapshot: []string{"s-a-none", "s-a-water", "s-traffic", "s-water"},
			want:     all},
		{name: "viewer filtering on severity", p: auth.Principal{Role: auth.RoleViewer},
			msg:      `{"type":"subscribe","streams":["alerts","cases"],"filter":{"min_severity":"severe"}}`,
			snapshot: []string{"s-a-none", "s-traffic", "s-water"}, // cases without a severity pass
			want:     []string{"a-none", "a-water", "assist-water", "lead-water", "part-water", "traffic-only", "traffic-pudong"}},
		{name: "commander filtering on departments", p: auth.Principal{Role: auth.RoleCommander},
			msg:      `{"type":"subscribe","streams":["alerts","cases"],"filter":{"departments":["sanitation","water-affairs"]}}`,
			snapshot: []string{"s-a-water", "s-water"},
			want:     []string{"a-water", "assist-water", "lead-water", "part-water", "traffic-pudong"}},
		{name: "water department filtering on xuhui", p: auth.Principal{Role: auth.RoleDepartment, Dept: water},
			msg:      `{"type":"subscribe","streams":["alerts","cases"],"filter":{"districts":["xuhui"]}}`,
			snapshot: []string{"s-a-water", "s-water"},
			want:     []string{"lead-water"}},
	}
	for _, s := range subs {
		s.ws = e.dial(s.p)
		alerts, cases := subscribe(t, s.ws, s.msg)
		got := append(alerts.ids(t), cases.ids(t)...)
		slices.Sort(got)
		if !slices.Equal(got, s.snapshot) {
			t.Errorf("%s: snapshot %v, want %v", s.name, got, s.snapshot)
		}
	}
	e.produce(msgs...)
	for _, s := range subs {
		var got []string
		for markers := 0; markers < 2; {
			f := read(t, s.ws)
			x := f.entity(t)
			if x.ID == "marker" {
				markers++
				continue
			}
			got = append(got, x.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: deltas %v, want %v", s.name, got, s.want)
		}
	}
}

// Every subscribe reads what is open now, so a client that subscribes in a
// loop is held to a burst and a rate, and is told so.
func TestSubscribesAreBounded(t *testing.T) {
	e := newEnv(t, func(g *Gateway) { g.opts.SubscribeBurst, g.opts.SubscribeEvery = 3, time.Hour })
	var reads atomic.Int64
	e.snap.mu.Lock()
	e.snap.during = func() { reads.Add(1) }
	e.snap.mu.Unlock()
	ws := e.dial(auth.Principal{Role: auth.RoleCommander})
	const sent = 10
	for range sent {
		send(t, ws, `{"type":"subscribe","streams":["cases"]}`)
	}
	var snapshots, refused int
	for snapshots+refused < sent {
		f := read(t, ws)
		switch {
		case f.Type == frameSnapshot:
			snapshots++
		case f.Type == frameError && strings.Contains(f.Message, "too many subscribes"):
			refused++
		default:
			t.Fatalf("unexpected %q frame: %s", f.Type, f.Message)
		}
	}
	if snapshots != 3 || refused != sent-3 || reads.Load() != 3 {
		t.Errorf("%d snapshots, %d refused, %d reads of the open cases; want 3, %d, 3", snapshots, refused, reads.Load(), sent-3)
	}
	if got := testutil.ToFloat64(e.g.metrics.subscribesRefused); got != sent-3 {
		t.Errorf("cityhub_live_subscribes_refused_total = %v", got)
	}
}

func TestBucket(t *testing.T) {
	var b bucket
	t0 := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	for i := range 2 {
		if !b.take(t0, 2, time.Second) {
			t.Fatalf("take %d of a full bucket refused", i)
		}
	}
	if b.take(t0.Add(500*time.Millisecond), 2, time.Second) {
		t.Error("an empty bucket gave a token after half an interval")
	}
	if !b.take(t0.Add(1100*time.Millisecond), 2, time.Second) {
		t.Error("no token after an interval")
	}
	if !b.take(t0.Add(time.Hour), 2, time.Second) || !b.take(t0.Add(time.Hour), 2, time.Second) || b.take(t0.Add(time.Hour), 2, time.Second) {
		t.Error("a long pause refills to the burst and no further")
	}
}
