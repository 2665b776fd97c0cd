package cap_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/intake"
	capxml "github.com/cityhub/cityhub/services/intake/cap"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
)

// submitter is intake's Submit without Kafka: it validates as intake does
// (the token's sources included) and records what it was given.
type submitter struct {
	dec *events.Decoder

	mu          sync.Mutex
	calls       [][]*events.Input
	vias        []string
	unavailable bool
}

func (s *submitter) submit(_ context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, in)
	s.vias = append(s.vias, via)
	dec := *s.dec
	dec.SpeaksFor = p.SpeaksFor
	evs, err := dec.DecodeInputs(in)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.GetId()
	}
	if s.unavailable {
		return ids, fmt.Errorf("%w: broker down", intake.ErrUnavailable)
	}
	return ids, nil
}

type handlerHarness struct {
	srv    *httptest.Server
	signer *auth.Signer
	sub    *submitter
	reg    *prometheus.Registry
}

func startHandler(t *testing.T) *handlerHarness {
	t.Helper()
	cat := testCatalog(t)
	cfg := testConfig(t, cat)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	// The hub's clock is past every time of the testdata documents.
	now := func() time.Time { return time.Date(2026, 9, 15, 6, 31, 0, 0, time.UTC) }
	sub := &submitter{dec: &events.Decoder{Catalog: cat, Now: now}}
	reg := prometheus.NewRegistry()
	h, err := capxml.New(capxml.Options{Config: cfg, Catalog: cat, Submit: sub.submit, Verifier: v, Registerer: reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &handlerHarness{srv: srv, signer: auth.NewSigner(priv), sub: sub, reg: reg}
}

func (h *handlerHarness) post(t *testing.T, p *auth.Principal, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/cap", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p != nil {
		tok, err := h.signer.Sign(*p, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

var (
	weatherSource = &auth.Principal{Subject: "shmb", Role: auth.RoleSource, Sources: []string{"weather"}}
	hotlineSource = &auth.Principal{Subject: "12345", Role: auth.RoleSource, Sources: []string{"hotline"}}
	commander     = &auth.Principal{Subject: "duty", Role: auth.RoleCommander}
	viewer        = &auth.Principal{Subject: "wall", Role: auth.RoleViewer}
)

type errorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

func TestHandler(t *testing.T) {
	rainstorm := read(t, "testdata/rainstorm.good.xml")
	typhoon := read(t, "testdata/typhoon-update.good.xml")
	huge := append([]byte(`<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>`), bytes.Repeat([]byte("x"), capxml.MaxBytes)...)
	for _, tc := range []struct {
		name        string
		who         *auth.Principal
		contentType string
		body        []byte
		unavailable bool
		status      int
		code        string   // of an error body
		paths       []string // of the error's details, or of the skipped parts
		ids         []string
	}{
		{name: "no token", contentType: "application/cap+xml", body: rainstorm, status: 401, code: "unauthenticated"},
		{name: "a viewer may not post", who: viewer, contentType: "application/cap+xml", body: rainstorm, status: 403, code: "forbidden"},
		{name: "JSON is not CAP", who: weatherSource, contentType: "application/json", body: rainstorm, status: 415, code: "unsupported_media_type"},
		{name: "no content type", who: weatherSource, body: rainstorm, status: 415, code: "unsupported_media_type"},
		{name: "too large", who: weatherSource, contentType: "application/xml", body: huge, status: 413, code: "body_too_large"},
		{
			name: "not CAP: the root element is named", who: weatherSource, contentType: "application/cap+xml",
			body: read(t, "testdata/not-cap.bad.xml"), status: 400, code: "invalid_cap", paths: []string{"feed"},
		},
		{
			name: "invalid CAP: every problem named", who: weatherSource, contentType: "text/xml; charset=utf-8",
			body: read(t, "testdata/scope.bad.xml"), status: 400, code: "invalid_cap", paths: []string{"alert/restriction"},
		},
		{
			name: "a DOCTYPE is refused", who: weatherSource, contentType: "application/cap+xml",
			body: read(t, "testdata/external-entity.bad.xml"), status: 400, code: "invalid_cap", paths: []string{capxml.DocumentPath},
		},
		{
			name: "accepted", who: weatherSource, contentType: "application/cap+xml; charset=utf-8", body: rainstorm, status: 202,
			ids: []string{"shmb-warning-centre:SHMB-2026-0712-0031:0.0:xuhui"},
		},
		{
			name: "accepted from a commander, with what was skipped", who: commander, contentType: "application/xml", body: typhoon, status: 202,
			ids:   []string{"shmb-warning-centre:SHMB-2026-0915-0007:0.0:huangpu", "shmb-warning-centre:SHMB-2026-0915-0007:1.0:huangpu"},
			paths: []string{"alert/info[0]/area[1]"},
		},
		{
			name: "a token that does not speak for the source: the events are refused, each with its element", who: hotlineSource,
			contentType: "application/cap+xml", body: typhoon, status: 400, code: "invalid_events",
			paths: []string{"alert/info[0]/area[0]", "alert/info[1]/area[0]"},
		},
		{
			name: "an exercise is answered, not written", who: weatherSource, contentType: "application/cap+xml",
			body: read(t, "testdata/restricted.good.xml"), status: 200, paths: []string{"alert/status"}, ids: []string{},
		},
		{
			name: "the event log is down: 503, send again", who: weatherSource, contentType: "application/cap+xml", body: rainstorm,
			unavailable: true, status: 503, code: "unavailable",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHandler(t)
			h.sub.unavailable = tc.unavailable
			status, header, body := h.post(t, tc.who, tc.contentType, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.code != "" {
				var eb errorBody
				if err := json.Unmarshal(body, &eb); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if eb.Error.Code != tc.code || eb.Error.Message == "" {
					t.Errorf("error %+v, want code %s", eb.Error, tc.code)
				}
				if tc.paths != nil {
					var got []string
					for _, d := range eb.Error.Details {
						var p struct{ Path string }
						_ = json.Unmarshal(d, &p)
						got = append(got, p.Path)
					}
					if !slices.Equal(got, tc.paths) {
						t.Errorf("details at %v, want %v: %s", got, tc.paths, body)
					}
				}
			} else {
				var ok capxml.Accepted
				if err := json.Unmarshal(body, &ok); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if !slices.Equal(ok.IDs, tc.ids) || ok.Accepted != len(tc.ids) {
					t.Errorf("accepted %d %v, want %v", ok.Accepted, ok.IDs, tc.ids)
				}
				var skipped []string
				for _, s := range ok.Skipped {
					skipped = append(skipped, s.Path)
				}
				if !slices.Equal(skipped, tc.paths) {
					t.Errorf("skipped %v, want %v", ok.Skipped, tc.paths)
				}
			}
			if status == 503 && header.Get("Retry-After") != "5" {
				t.Errorf("Retry-After %q", header.Get("Retry-After"))
			}
			if status == 202 {
				if len(h.sub.calls) != 1 || h.sub.vias[0] != capxml.Via || len(h.sub.calls[0]) != len(tc.ids) {
					t.Errorf("submitted %d times via %v", len(h.sub.calls), h.sub.vias)
				}
			}
		})
	}
}

// A document sent again — after a 503, or by a sender that retries — is
// the same events, and intake's consumers take them once.
func TestHandlerRedelivery(t *testing.T) {
	h := startHandler(t)
	doc := read(t, "testdata/rainstorm.good.xml")
	h.sub.unavailable = true
	if status, _, body := h.post(t, weatherSource, "application/cap+xml", doc); status != 503 {
		t.Fatalf("status %d: %s", status, body)
	}
	h.sub.unavailable = false
	for range 2 {
		if status, _, body := h.post(t, weatherSource, "application/cap+xml", doc); status != 202 {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	if len(h.sub.calls) != 3 {
		t.Fatalf("%d submissions", len(h.sub.calls))
	}
	for _, c := range h.sub.calls[1:] {
		if !slices.Equal(ids(c), ids(h.sub.calls[0])) {
			t.Errorf("ids %v, first %v", ids(c), ids(h.sub.calls[0]))
		}
	}
	accepted := counter(t, h.reg, "cityhub_cap_documents_total", "accepted")
	unavailable := counter(t, h.reg, "cityhub_cap_documents_total", "unavailable")
	if accepted != 2 || unavailable != 1 {
		t.Errorf("documents: accepted %v unavailable %v", accepted, unavailable)
	}
}

// counter returns the value of the series of counter name whose one
// label has value.
func counter(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	_, err := capxml.New(capxml.Options{})
	if err == nil || !strings.Contains(err.Error(), "no configuration") || !strings.Contains(err.Error(), "no submit function") {
		t.Errorf("err %v", err)
	}
}
