package intake_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

const testCatalog = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
  - {code: pudong, name: 浦东新区, centre: {lon: 121.54, lat: 31.22}}
departments:
  - {code: water-affairs, name: 水务局}
event_types:
  - {code: waterlogging, name: 道路积水, owner: water-affairs, attrs: {water_depth_cm: number}}
`

type harness struct {
	k      *kafkatest.Cluster
	srv    *httptest.Server
	signer *auth.Signer
	svc    *intake.Service
}

func start(t *testing.T, writeTimeout time.Duration) *harness {
	t.Helper()
	k := kafkatest.Start(t)
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	svc, err := intake.New(intake.Options{Writer: w, Topics: k.Topics, Catalog: cat, Verifier: v, WriteTimeout: writeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &harness{k: k, srv: srv, signer: auth.NewSigner(priv), svc: svc}
}

func (h *harness) post(t *testing.T, role auth.Role, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/events", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if role != "" {
		p := auth.Principal{Subject: "test-" + string(role), Role: role}
		switch role {
		case auth.RoleDepartment:
			p.Dept = "water-affairs"
		case auth.RoleSource:
			p.Sources = []string{"hotline"}
		}
		h.authorize(t, req, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (h *harness) authorize(t *testing.T, req *http.Request, p auth.Principal) {
	t.Helper()
	tok, err := h.signer.Sign(p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
}

func (h *harness) logged(t *testing.T) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	if err := stream.Replay(context.Background(), h.k.Brokers, h.k.Topics.Events, func(m kafka.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func event(id, district string) string {
	return `{"id":"` + id + `","source":"hotline","type":"waterlogging","occurred_at":"2026-07-01T08:30:00+08:00","location":{"district":"` + district + `"},"attrs":{"water_depth_cm":35}}`
}

func TestPostEventsWritesKeyedByDistrict(t *testing.T) {
	h := start(t, 0)
	resp, body := h.post(t, auth.RoleSource, "application/json", []byte("["+event("a-1", "xuhui")+","+event("a-2", "pudong")+"]"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var acc intake.Accepted
	if err := json.Unmarshal(body, &acc); err != nil || acc.Accepted != 2 || acc.IDs[0] != "a-1" {
		t.Fatalf("body %s (%v)", body, err)
	}
	msgs := h.logged(t)
	if len(msgs) != 2 {
		t.Fatalf("%d events on the log, want 2", len(msgs))
	}
	for _, m := range msgs {
		var ev cityhubv1.Event
		if err := stream.Unmarshal(m, &ev); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != ev.GetLocation().GetDistrict() {
			t.Errorf("event %s keyed %q, district %q", ev.GetId(), m.Key, ev.GetLocation().GetDistrict())
		}
		if got := ev.GetAttrs().GetFields()["water_depth_cm"].GetNumberValue(); got != 35 {
			t.Errorf("water_depth_cm = %v", got)
		}
	}
}

func TestPostEventsRefusals(t *testing.T) {
	h := start(t, 0)
	big := "[" + strings.Repeat(event("x", "xuhui")+",", 8000) + event("x", "xuhui") + "]"
	for _, tc := range []struct {
		name, contentType, body string
		role                    auth.Role
		want                    int
		code                    string
	}{
		{"no token", "application/json", event("a", "xuhui"), "", 401, "unauthenticated"},
		{"viewer", "application/json", event("a", "xuhui"), auth.RoleViewer, 403, "forbidden"},
		{"plain text", "text/plain", event("a", "xuhui"), auth.RoleSource, 415, "unsupported_media_type"},
		{"no content type", "", event("a", "xuhui"), auth.RoleSource, 415, "unsupported_media_type"},
		{"duplicate ids", "application/json", "[" + event("b", "pudong") + "," + event("a", "xuhui") + "," + event("a", "pudong") + "]", auth.RoleSource, 400, "invalid_events"},
		{"another source", "application/json", "[" + event("a", "xuhui") + "," + strings.Replace(event("b", "xuhui"), `"hotline"`, `"video"`, 1) + "]", auth.RoleSource, 400, "invalid_events"},
		{"invalid UTF-8", "application/json", "[" + event("a", "xuhui") + "," + strings.Replace(event("b", "xuhui"), `"location":{`, "\"text\":\"\xff\",\"location\":{", 1) + "]", auth.RoleSource, 400, "invalid_events"},
		{"one bad item", "application/json", "[" + event("a", "xuhui") + "," + event("b", "atlantis") + "]", auth.RoleSource, 400, "invalid_events"},
		{"not json", "application/json", "hello", auth.RoleSource, 400, "malformed_body"},
		{"over a mebibyte", "application/json", big, auth.RoleSource, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.post(t, tc.role, tc.contentType, []byte(tc.body))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			var e struct {
				Error struct {
					Code    string          `json:"code"`
					Details json.RawMessage `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tc.code {
				t.Fatalf("body %s, want code %s", body, tc.code)
			}
			if tc.code == "invalid_events" && !strings.Contains(string(e.Error.Details), `"index":1`) {
				t.Errorf("details %s do not name item 1", e.Error.Details)
			}
		})
	}
	if msgs := h.logged(t); len(msgs) != 0 {
		t.Errorf("refused requests wrote %d events", len(msgs))
	}
}

func TestPostEventsWithoutKafkaIs503(t *testing.T) {
	h := start(t, time.Second)
	if h.k.Fake == nil {
		t.Skip("needs the in-process cluster to take it down; KAFKA_BROKERS is set")
	}
	h.k.Fake.Close()
	resp, body := h.post(t, auth.RoleSource, "application/json", []byte(event("a", "xuhui")))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

// A source token speaks for the sources it names, and for no other: one
// party cannot post both the detection and the report that corroborates it.
func TestSourceTokenSpeaksOnlyForItsSources(t *testing.T) {
	h := start(t, 0)
	video := strings.Replace(event("v-1", "xuhui"), `"hotline"`, `"video"`, 1)
	post := func(p auth.Principal, body string) (int, string) {
		req, _ := http.NewRequest("POST", h.srv.URL+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.authorize(t, req, p)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	camera := auth.Principal{Subject: "video-ai", Role: auth.RoleSource, Sources: []string{"video"}}
	if code, body := post(camera, "["+video+","+event("h-1", "xuhui")+"]"); code != 400 || !strings.Contains(body, `"index":1`) || !strings.Contains(body, `"field":"source"`) {
		t.Errorf("a video token posting a hotline report: %d %s", code, body)
	}
	if code, body := post(camera, video); code != 202 {
		t.Errorf("a video token posting a video detection: %d %s", code, body)
	}
	commander := auth.Principal{Subject: "duty-officer", Role: auth.RoleCommander}
	if code, body := post(commander, event("h-2", "xuhui")); code != 202 {
		t.Errorf("a commander entering a hotline report: %d %s", code, body)
	}
	msgs := h.logged(t)
	if len(msgs) != 2 {
		t.Fatalf("%d events on the log, want 2", len(msgs))
	}
	var ev cityhubv1.Event
	if err := stream.Unmarshal(msgs[0], &ev); err != nil || ev.GetSource() != "video" {
		t.Errorf("first event's source %q (%v)", ev.GetSource(), err)
	}
}

// Adapters submit what they translated through the same checks and the
// same write as POST /v1/events.
func TestSubmit(t *testing.T) {
	h := start(t, time.Second)
	ctx := context.Background()
	lon, lat := 121.43, 31.18
	in := func(id, source string) *events.Input {
		return &events.Input{ID: id, Source: source, Type: "waterlogging", OccurredAt: "2026-07-01T08:30:00+08:00",
			Location: &events.LocationInput{Lon: &lon, Lat: &lat, District: "pudong"}}
	}
	gauge := auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot"}}
	var be *events.BatchError
	if _, err := h.svc.Submit(ctx, "test", gauge, []*events.Input{in("g-1", "iot"), in("h-1", "hotline")}); !errors.As(err, &be) || be.Items[0].Index != 1 {
		t.Fatalf("a hotline event from an iot token: %v", err)
	}
	ids, err := h.svc.Submit(ctx, "test", gauge, []*events.Input{in("g-1", "iot"), in("", "iot")})
	if err != nil || len(ids) != 2 || ids[0] != "g-1" || ids[1] == "" {
		t.Fatalf("Submit = %q, %v", ids, err)
	}
	msgs := h.logged(t)
	if len(msgs) != 2 || string(msgs[0].Key) != "pudong" {
		t.Fatalf("%d events on the log (%v), want 2 keyed pudong", len(msgs), msgs)
	}
	if h.k.Fake == nil {
		return
	}
	h.k.Fake.Close()
	if ids, err := h.svc.Submit(ctx, "test", gauge, []*events.Input{in("g-2", "iot")}); !errors.Is(err, intake.ErrUnavailable) || len(ids) != 1 {
		t.Errorf("Submit without Kafka = %q, %v; want ErrUnavailable with the ids", ids, err)
	}
}

// Which sources speak, how much and how much is refused, added up across
// replicas in Redis and served at GET /v1/sources.
func TestSources(t *testing.T) {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t).Client
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, _ := auth.NewVerifier(pub)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	replica := func() *intake.Service {
		svc, err := intake.New(intake.Options{Writer: w, Topics: k.Topics, Catalog: cat, Verifier: v, Redis: rdb})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	a, b := replica(), replica()
	ctx := context.Background()
	lon, lat := 121.43, 31.18
	in := func(source string) *events.Input {
		return &events.Input{Source: source, Type: "waterlogging", OccurredAt: "2026-07-01T08:30:00+08:00",
			Location: &events.LocationInput{Lon: &lon, Lat: &lat, District: "xuhui"}}
	}
	gauges := auth.Principal{Subject: "iot", Role: auth.RoleSource, Sources: []string{"iot"}}
	app := auth.Principal{Subject: "app", Role: auth.RoleSource, Sources: []string{"open311"}}
	if _, err := a.Submit(ctx, "mqtt", gauges, []*events.Input{in("iot"), in("iot")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, "events", gauges, []*events.Input{in("iot")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, "open311", app, []*events.Input{in("open311"), in("iot")}); err == nil {
		t.Fatal("an open311 token posting an iot event was accepted")
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	signer := auth.NewSigner(priv)
	get := func(p auth.Principal) (int, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/sources", nil)
		tok, _ := signer.Sign(p, time.Hour)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	if code, _ := get(gauges); code != http.StatusForbidden {
		t.Errorf("a source token reading every source's counts = %d, want 403", code)
	}
	code, body := get(auth.Principal{Subject: "wall", Role: auth.RoleViewer})
	var list intake.SourceList
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /v1/sources = %d %s", code, body)
	}
	got := map[string]intake.SourceStats{}
	for _, it := range list.Items {
		got[it.Source] = it
	}
	if iot := got["iot"]; iot.Accepted != 3 || iot.Recent != 3 || iot.Rejected != 0 || strings.Join(iot.Via, ",") != "events,mqtt" {
		t.Errorf("iot: %+v, want 3 accepted through events and mqtt", iot)
	}
	if o := got["open311"]; o.Accepted != 0 || o.Rejected != 1 {
		t.Errorf("open311: %+v, want its one refused event", o)
	}
	if list.Items[0].Source != "iot" {
		t.Errorf("the busiest source is not first: %+v", list.Items)
	}
}
