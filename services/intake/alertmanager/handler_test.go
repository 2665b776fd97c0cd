package alertmanager

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// hubNow is the hub's clock in these tests: after every alert of testdata.
var hubNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// errLogDown stands for intake's ErrUnavailable.
var errLogDown = errors.New("the event log did not acknowledge the events")

// eventLog is intake's Submit without Kafka: it validates with the same
// decoder, refuses all or none, and keeps each source/id once, as the
// consumers of the log do.
type eventLog struct {
	dec events.Decoder

	mu      sync.Mutex
	down    bool
	batches int
	events  map[string]*events.Input // by source/id
	order   []string
}

func (l *eventLog) submit(_ context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches++
	if via != Via {
		return nil, fmt.Errorf("via %q", via)
	}
	dec := l.dec
	dec.SpeaksFor = p.SpeaksFor
	evs, err := dec.DecodeInputs(in)
	if err != nil {
		return nil, err
	}
	if l.down {
		return nil, fmt.Errorf("intake: %w", errLogDown)
	}
	if l.events == nil {
		l.events = map[string]*events.Input{}
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		k := events.Key(ev)
		if _, seen := l.events[k]; !seen {
			l.events[k] = in[i]
			l.order = append(l.order, k)
		}
		ids[i] = ev.GetId()
	}
	return ids, nil
}

func (l *eventLog) event(t *testing.T, source, id string) *events.Input {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	ev, ok := l.events[source+"/"+id]
	if !ok {
		t.Fatalf("no event %s/%s in the log", source, id)
	}
	return ev
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

type keys struct {
	signer   *auth.Signer
	verifier *auth.Verifier
}

func newKeys(t testing.TB) keys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return keys{signer: auth.NewSigner(priv), verifier: v}
}

func (k keys) token(t testing.TB, p auth.Principal) string {
	t.Helper()
	tok, err := k.signer.Sign(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// receiver is a Handler behind a real HTTP server.
type receiver struct {
	srv   *httptest.Server
	log   *eventLog
	reg   *prometheus.Registry
	keys  keys
	token string // Alertmanager's: a source token for monitoring and pumping_stations
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	cat := testCatalog(t)
	r := &receiver{
		log:  &eventLog{dec: events.Decoder{Catalog: cat, Now: func() time.Time { return hubNow }}},
		reg:  prometheus.NewRegistry(),
		keys: newKeys(t),
	}
	h, err := New(Options{
		Config: testConfig(t, cat), Catalog: cat, Submit: r.log.submit, Verifier: r.keys.verifier,
		Registerer: r.reg, Now: func() time.Time { return hubNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	r.token = r.keys.token(t, auth.Principal{Subject: "alertmanager", Role: auth.RoleSource, Sources: []string{"monitoring", "pumping_stations"}})
	return r
}

// post sends body as Alertmanager does and returns the status and body.
func (r *receiver) post(t *testing.T, token, contentType string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL+Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "Alertmanager/0.28.1")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

func (r *receiver) notify(t *testing.T, file string) (int, Answer) {
	t.Helper()
	code, body, _ := r.post(t, r.token, "application/json", readFile(t, file))
	var ans Answer
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	} else {
		var eb struct {
			Error struct {
				Details Answer `json:"details"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &eb)
		ans = eb.Error.Details
	}
	return code, ans
}

func (r *receiver) alerts(outcome string) float64 {
	v, _ := counter(r.reg, "cityhub_alertmanager_alerts_total", "outcome", outcome)
	return v
}

// counter returns the value of the counter called name whose label has
// value (the one counter of name when label is ""), and how many counters
// of that name there are.
func counter(reg *prometheus.Registry, name, label, value string) (float64, int) {
	mfs, err := reg.Gather()
	if err != nil {
		return -1, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue(), len(mf.GetMetric())
				}
			}
			if label == "" {
				return m.GetCounter().GetValue(), len(mf.GetMetric())
			}
		}
	}
	return 0, 0
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

// A firing notification becomes one event per alert, located and typed
// by the mapping, occurring at the alert's start.
func TestFiring(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	code, ans := r.notify(t, "testdata/firing.json")
	if code != http.StatusOK || ans.Accepted != 2 || ans.Alerts != 2 || len(ans.Unmatched)+len(ans.Refused) != 0 {
		t.Fatalf("%d %+v", code, ans)
	}
	start := time.Date(2026, 7, 1, 8, 30, 12, 345e6, time.UTC)
	if ans.IDs[0] != EventID("7f3c2a91d0b4e6a1", StatusFiring, start) {
		t.Errorf("id %q", ans.IDs[0])
	}
	want := &events.Input{
		ID: ans.IDs[0], Source: "monitoring", Type: "waterlogging", OccurredAt: "2026-07-01T08:30:12.345Z",
		Location: &events.LocationInput{District: "xuhui", Street: "天平路下立交", Grid: "xh-0417", Lon: ptr(121.4371), Lat: ptr(31.1978)},
		Severity: "moderate",
		Text:     "天平路下立交 积水 35 cm\nWater depth at 天平路下立交 has been above 15 cm for 2 minutes.",
		Attrs:    map[string]any{"water_depth_cm": 35.0, "sensor_id": "wd-xh-17", "resolved": false, "am_status": "firing", "am_fingerprint": "7f3c2a91d0b4e6a1"},
	}
	assertEvent(t, r.log.event(t, "monitoring", ans.IDs[0]), want)
	second := r.log.event(t, "monitoring", ans.IDs[1])
	if second.Severity != "severe" || second.Location.District != "huangpu" || second.Location.Lon != nil || second.Attrs["water_depth_cm"] != 62.5 {
		t.Errorf("second event %+v", second)
	}
	if got := r.alerts(outcomeFiring); got != 2 {
		t.Errorf("firing alerts counted %v", got)
	}
}

// Alertmanager sends a group again at every group interval and after a
// failed attempt: the same alerts are the same events.
func TestRepeatsAreOneEvent(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	_, first := r.notify(t, "testdata/firing.json")
	_, again := r.notify(t, "testdata/firing.json")
	if !slices.Equal(first.IDs, again.IDs) || len(first.IDs) != 2 {
		t.Fatalf("ids %v then %v", first.IDs, again.IDs)
	}
	if n := r.log.len(); n != 2 {
		t.Errorf("%d events in the log, want 2", n)
	}
}

// A resolved alert becomes a clear: its own event, of the clear type,
// at the alert's end, without the measurement of the firing alert.
func TestResolvedIsClear(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	_, firing := r.notify(t, "testdata/firing.json")
	code, resolved := r.notify(t, "testdata/resolved.json")
	if code != http.StatusOK || resolved.Accepted != 2 {
		t.Fatalf("%d %+v", code, resolved)
	}
	for i := range resolved.IDs {
		if resolved.IDs[i] == firing.IDs[i] {
			t.Errorf("alert %d: the clear has the firing event's id %s", i, firing.IDs[i])
		}
	}
	want := &events.Input{
		ID: resolved.IDs[0], Source: "monitoring", Type: "waterlogging_cleared", OccurredAt: "2026-07-01T09:05:42.001Z",
		Location: &events.LocationInput{District: "xuhui", Street: "天平路下立交", Grid: "xh-0417", Lon: ptr(121.4371), Lat: ptr(31.1978)},
		Text:     "[resolved] 天平路下立交 积水 35 cm\nWater depth at 天平路下立交 has been above 15 cm for 2 minutes.",
		Attrs:    map[string]any{"sensor_id": "wd-xh-17", "resolved": true, "am_status": "resolved", "am_fingerprint": "7f3c2a91d0b4e6a1"},
	}
	assertEvent(t, r.log.event(t, "monitoring", resolved.IDs[0]), want)
	if r.log.len() != 4 || r.alerts(outcomeResolved) != 2 {
		t.Errorf("%d events, %v resolved", r.log.len(), r.alerts(outcomeResolved))
	}
}

// A resolved alert of a mapping without a clear type keeps the type, and
// a resolved alert without an end occurs at the hub's clock.
func TestResolvedWithoutClearType(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	body := `{"receiver":"cityhub","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"PumpingStationRainfall","gauge":"rg-hp-03","job":"pumping-station","station":"PS-HP-03"},"annotations":{"rain_mm_h":"61"},"startsAt":"2026-07-01T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"19ab47cd02e3f587"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"","version":"4","groupKey":"{}:{}","truncatedAlerts":0}`
	code, resp, _ := r.post(t, r.token, "application/json", []byte(body))
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, resp)
	}
	want := &events.Input{
		ID: EventID("19ab47cd02e3f587", StatusResolved, time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)), Source: "pumping_stations", Type: "rainfall",
		OccurredAt: hubNow.Format(time.RFC3339Nano),
		Location:   &events.LocationInput{District: "huangpu", Address: "PS-HP-03"},
		Attrs:      map[string]any{"gauge_id": "rg-hp-03", "resolved": true, "am_status": "resolved", "am_fingerprint": "19ab47cd02e3f587"},
	}
	assertEvent(t, r.log.event(t, "pumping_stations", want.ID), want)
}

// Alerts no mapping takes, and alerts whose event is refused, are listed
// and counted, and do not hold back the rest of their group.
func TestMixedNotification(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	code, ans := r.notify(t, "testdata/mixed.json")
	if code != http.StatusOK || ans.Alerts != 5 || ans.Accepted != 2 {
		t.Fatalf("%d %+v", code, ans)
	}
	if len(ans.Unmatched) != 1 || ans.Unmatched[0].Index != 1 || ans.Unmatched[0].Alertname != "NodeFilesystemAlmostFull" {
		t.Errorf("unmatched %+v", ans.Unmatched)
	}
	refused := map[int]string{}
	for _, s := range ans.Refused {
		refused[s.Index] = s.Errors[0].Field + ": " + s.Errors[0].Message
	}
	if len(refused) != 2 || refused[3] != "location.district: required" || !strings.HasPrefix(refused[4], `attrs.water_depth_cm: annotation depth_cm: "NaN": want a finite number`) {
		t.Errorf("refused %v", refused)
	}
	methane := r.log.event(t, "monitoring", ans.IDs[0])
	if methane.Type != "gas_leak" || methane.Location.District != "pudong" || methane.Location.Address != "世纪大道综合管廊 3 号舱" ||
		methane.Severity != "extreme" || methane.Text != "综合管廊甲烷 27.5% LEL" || methane.Attrs["indoor"] != true || methane.Attrs["lel_percent"] != 27.5 {
		t.Errorf("methane event %+v", methane)
	}
	rain := r.log.event(t, "pumping_stations", ans.IDs[1])
	if rain.Type != "rainfall" || rain.Location.District != "xuhui" || rain.Attrs["rain_mm_h"] != 56.2 || rain.Attrs["gauge_id"] != "rg-xh-01" || rain.Severity != "" {
		t.Errorf("rain event %+v", rain)
	}
	for outcome, want := range map[string]float64{outcomeFiring: 2, outcomeUnmatched: 1, outcomeRefused: 2, outcomeResolved: 0} {
		if got := r.alerts(outcome); got != want {
			t.Errorf("alerts{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	if got, _ := counter(r.reg, "cityhub_alertmanager_notifications_total", "code", "200"); got != 1 {
		t.Errorf("notifications{code=200} = %v", got)
	}
	if got, _ := counter(r.reg, "cityhub_alertmanager_truncated_alerts_total", "", ""); got != 2 {
		t.Errorf("truncated = %v", got)
	}
	if _, n := counter(r.reg, "cityhub_alertmanager_alerts_total", "outcome", "firing"); n != 6 {
		t.Errorf("%d alert outcomes registered, want all 6 from the start", n)
	}
}

// An alert that comes twice in one notification is one event.
func TestDuplicateInNotification(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	var msg map[string]any
	if err := json.Unmarshal(readFile(t, "testdata/firing.json"), &msg); err != nil {
		t.Fatal(err)
	}
	alerts := msg["alerts"].([]any)
	msg["alerts"] = append(alerts, alerts[0])
	body, _ := json.Marshal(msg)
	code, resp, _ := r.post(t, r.token, "application/json", body)
	if code != http.StatusOK || r.log.len() != 2 || r.alerts(outcomeDuplicate) != 1 {
		t.Fatalf("%d %s; %d events, %v duplicates", code, resp, r.log.len(), r.alerts(outcomeDuplicate))
	}
}

// The answers Alertmanager acts on: 2xx done, 5xx sent again, anything
// else dropped for good.
func TestAnswers(t *testing.T) {
	t.Parallel()
	firing := readFile(t, "testdata/firing.json")
	huge := append([]byte(`{"version":"4","alerts":[],"pad":"`), bytes.Repeat([]byte("x"), MaxBodyBytes)...)
	huge = append(huge, `"}`...)
	var many bytes.Buffer
	many.WriteString(`{"version":"4","alerts":[`)
	for i := range MaxAlerts + 1 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"status":"firing","startsAt":"2026-07-01T08:00:00Z","fingerprint":"%x"}`, i)
	}
	many.WriteString(`]}`)

	for _, tc := range []struct {
		name        string
		token       func(r *receiver) string
		contentType string
		body        []byte
		code        int
		errCode     string
	}{
		{"no token", func(*receiver) string { return "" }, "application/json", firing, http.StatusUnauthorized, "unauthenticated"},
		{"a forged token", func(*receiver) string { return "eyJhbGciOiJFZERTQSJ9.e30.c2ln" }, "application/json", firing, http.StatusUnauthorized, "unauthenticated"},
		{"a viewer's token", func(r *receiver) string {
			return r.keys.token(t, auth.Principal{Subject: "wall", Role: auth.RoleViewer})
		}, "application/json", firing, http.StatusForbidden, "forbidden"},
		{"a commander may post", func(r *receiver) string {
			return r.keys.token(t, auth.Principal{Subject: "duty", Role: auth.RoleCommander})
		}, "application/json", firing, http.StatusOK, ""},
		{"a token for other sources", func(r *receiver) string {
			return r.keys.token(t, auth.Principal{Subject: "cams", Role: auth.RoleSource, Sources: []string{"video"}})
		}, "application/json", firing, http.StatusUnprocessableEntity, "no_event"},
		{"charset is fine", nil, "application/json; charset=utf-8", firing, http.StatusOK, ""},
		{"not JSON", nil, "text/plain", firing, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"no content type", nil, "", firing, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"unreadable", nil, "application/json", []byte(`{"version":"4","alerts":[{`), http.StatusBadRequest, "malformed_notification"},
		{"version 3", nil, "application/json", bytes.Replace(firing, []byte(`"version":"4"`), []byte(`"version":"3"`), 1), http.StatusBadRequest, "malformed_notification"},
		{"too large", nil, "application/json", huge, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"too many alerts", nil, "application/json", many.Bytes(), http.StatusRequestEntityTooLarge, "too_many_alerts"},
		{"nothing matched", nil, "application/json", readFile(t, "testdata/unmatched.json"), http.StatusUnprocessableEntity, "no_event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t)
			token := r.token
			if tc.token != nil {
				token = tc.token(r)
			}
			code, body, _ := r.post(t, token, tc.contentType, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if tc.errCode == "" {
				return
			}
			var eb httperr.Body
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != tc.errCode {
				t.Errorf("body %s, want error code %s", body, tc.errCode)
			}
			if code/100 == 4 && r.log.len() != 0 {
				t.Errorf("a refused notification left %d events", r.log.len())
			}
		})
	}
}

// When the event log does not take the events, Alertmanager is told to
// send the notification again, and the retry is the same events.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	r.log.down = true
	code, body, header := r.post(t, r.token, "application/json", readFile(t, "testdata/mixed.json"))
	if code != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", code, body)
	}
	if got := r.alerts(outcomeUnavailable); got != 2 {
		t.Errorf("unavailable alerts %v, want 2", got)
	}
	r.log.mu.Lock()
	r.log.down = false
	r.log.mu.Unlock()
	code, ans := r.notify(t, "testdata/mixed.json")
	if code != http.StatusOK || ans.Accepted != 2 || r.log.len() != 2 {
		t.Fatalf("after the outage: %d %+v", code, ans)
	}
}

func TestNewRefusesMissingOptions(t *testing.T) {
	t.Parallel()
	_, err := New(Options{})
	if err == nil {
		t.Fatal("New accepted no options")
	}
	for _, want := range []string{"no mapping", "no catalog", "no way to submit events", "no token verifier"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: want %q", err, want)
		}
	}
}

func assertEvent(t *testing.T, got, want *events.Input) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("event\n got %s\nwant %s", g, w)
	}
}
