package silence_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
	"github.com/cityhub/cityhub/services/ruler/silence"
)

// harness is the silences API over a real redis-server and kfake, with the
// city's packs and catalog.
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	store  *silence.Store
	k      *kafkatest.Cluster
	redis  *redistest.Server
	signer *auth.Signer
	now    time.Time
	log    *bytes.Buffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	packs, err := rulepack.LoadDir("../../../rules/packs", cat)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, k: kafkatest.Start(t), redis: redistest.Start(t), signer: auth.NewSigner(priv),
		now: time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC), log: &bytes.Buffer{}}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: h.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	h.store = silence.NewStore(h.redis.Client)
	var mu sync.Mutex
	svc, err := silence.New(silence.Options{
		Store: h.store, Writer: w, Topic: h.k.Topics.Silences,
		Known:    func() silence.Known { return silence.KnownOf(packs, cat) },
		Packs:    func() []*rulepack.Pack { return packs },
		Verifier: v, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return h.now },
		Logger:     slog.New(slog.NewTextHandler(&lockedWriter{w: h.log, mu: &mu}, nil)),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

var (
	commander  = auth.Principal{Subject: "chief", Role: auth.RoleCommander}
	xuhuiDisp  = auth.Principal{Subject: "d-xuhui", Role: auth.RoleDispatcher, Districts: []string{"xuhui"}}
	pudongDisp = auth.Principal{Subject: "d-pudong", Role: auth.RoleDispatcher, Districts: []string{"pudong"}}
	gasDept    = auth.Principal{Subject: "g-1", Role: auth.RoleDepartment, Dept: "gas"}
	xuhuiWall  = auth.Principal{Subject: "wall", Role: auth.RoleViewer, Districts: []string{"xuhui"}}
	hotline    = auth.Principal{Subject: "12345", Role: auth.RoleSource, Sources: []string{"hotline"}}
)

func (h *harness) do(p auth.Principal, method, path, body string) (int, map[string]any) {
	h.t.Helper()
	tok, err := h.signer.Sign(p, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		h.t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// silenceBody returns a request for a silence of matchers until an hour
// after the harness's now.
func (h *harness) silenceBody(matchers string) string {
	return `{"matchers": ` + matchers + `, "ends_at": "` + h.now.Add(time.Hour).Format(time.RFC3339) + `", "comment": "roadworks on tianping road"}`
}

func TestCreateListExpire(t *testing.T) {
	h := newHarness(t)
	code, got := h.do(commander, "POST", "/v1/silences", h.silenceBody(`{"rule": "gas-safety/gas-leak", "district": ["xuhui"]}`))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, got)
	}
	id, _ := got["id"].(string)
	if !strings.HasPrefix(id, "S-") || got["state"] != "active" || got["created_by"] != "chief" || got["source"] != "api" {
		t.Errorf("created = %v", got)
	}
	// The record on Kafka holds it, keyed by id.
	var recorded []*cityhubv1.Silence
	if err := stream.Replay(context.Background(), h.k.Brokers, h.k.Topics.Silences, func(m kafka.Message) error {
		s := &cityhubv1.Silence{}
		if string(m.Key) != id {
			t.Errorf("record keyed %q, want %q", m.Key, id)
		}
		recorded = append(recorded, s)
		return stream.Unmarshal(m, s)
	}); err != nil {
		t.Fatal(err)
	}
	if len(recorded) != 1 || recorded[0].GetId() != id || recorded[0].GetVersion() != 1 {
		t.Fatalf("record = %v", recorded)
	}

	// Listed with the packs' own silences, for those who may see it.
	code, list := h.do(xuhuiWall, "GET", "/v1/silences?state=active", "")
	if code != http.StatusOK || !listed(list, id) {
		t.Errorf("xuhui's wall: %d %v", code, list)
	}
	if _, list := h.do(pudongDisp, "GET", "/v1/silences", ""); listed(list, id) {
		t.Errorf("pudong's dispatcher sees xuhui's silence: %v", list)
	}
	if code, _ := h.do(pudongDisp, "GET", "/v1/silences/"+id, ""); code != http.StatusNotFound {
		t.Errorf("pudong's dispatcher reads xuhui's silence: %d", code)
	}
	if code, _ := h.do(hotline, "GET", "/v1/silences", ""); code != http.StatusForbidden {
		t.Errorf("a source lists silences: %d", code)
	}

	// Expired by a dispatcher of its district; a second time is a conflict.
	if code, _ := h.do(pudongDisp, "POST", "/v1/silences/"+id+"/expire", "{}"); code != http.StatusNotFound {
		t.Errorf("pudong's dispatcher expires xuhui's silence: %d", code)
	}
	h.now = h.now.Add(10 * time.Minute)
	code, got = h.do(xuhuiDisp, "POST", "/v1/silences/"+id+"/expire", "{}")
	if code != http.StatusOK || got["state"] != "expired" || got["expired_by"] != "d-xuhui" || got["version"] != float64(2) {
		t.Errorf("expire: %d %v", code, got)
	}
	if code, _ := h.do(xuhuiDisp, "POST", "/v1/silences/"+id+"/expire", "{}"); code != http.StatusConflict {
		t.Errorf("expire again: %d", code)
	}

	// A Redis that lost the silences gets them back from the record, at
	// their last version.
	if err := redistest.Flush(context.Background(), h.redis.Client); err != nil {
		t.Fatal(err)
	}
	n, err := silence.Rebuild(context.Background(), h.k.Brokers, h.k.Topics.Silences, h.store)
	if err != nil || n != 1 {
		t.Fatalf("rebuild kept %d: %v", n, err)
	}
	s, err := h.store.Get(context.Background(), id)
	if err != nil || s.GetVersion() != 2 || s.GetExpiredBy() != "d-xuhui" {
		t.Errorf("rebuilt = %v, %v", s, err)
	}
}

func listed(list map[string]any, id string) bool {
	items, _ := list["items"].([]any)
	for _, it := range items {
		if m, _ := it.(map[string]any); m["id"] == id {
			return true
		}
	}
	return false
}

// TestRefusals checks that every wrong request is refused with a reason
// that names the field, and the caller outside its scope with 403.
func TestRefusals(t *testing.T) {
	h := newHarness(t)
	reasons := map[string]string{
		"no end": "required", "an end in the past": "passed", "an end before the start": "not_after_start",
		"longer than a year": "span_too_long", "no comment": "required", "an unknown rule": "unknown_rule",
		"an unknown district": "unknown_district", "an unknown name": "unknown_matcher", "a bad severity": "bad_severity",
		"no matchers": "no_matchers", "force with matchers": "force_with_matchers",
	}
	end := h.now.Add(time.Hour).Format(time.RFC3339)
	past := h.now.Add(-time.Minute).Format(time.RFC3339)
	for _, tc := range []struct {
		name string
		p    auth.Principal
		body string
		code int
		want string
	}{
		{"no end", commander, `{"matchers": {"district": "xuhui"}, "comment": "c"}`, 400, "ends_at: required"},
		{"an end in the past", commander, `{"matchers": {"district": "xuhui"}, "ends_at": "` + past + `", "comment": "c"}`, 400, "ends_at: " + past + " has passed"},
		{"an end before the start", commander, `{"matchers": {"district": "xuhui"}, "starts_at": "` + h.now.Add(2*time.Hour).Format(time.RFC3339) + `", "ends_at": "` + end + `", "comment": "c"}`, 400, "is not after starts_at"},
		{"longer than a year", commander, `{"matchers": {"district": "xuhui"}, "ends_at": "2028-01-01T00:00:00Z", "comment": "c"}`, 400, "longer than 366 days"},
		{"no comment", commander, `{"matchers": {"district": "xuhui"}, "ends_at": "` + end + `"}`, 400, "comment: required"},
		{"an unknown rule", commander, h.silenceBody(`{"rule": "gas-safety/no-such-rule"}`), 400, `no rule "gas-safety/no-such-rule" runs`},
		{"an unknown district", commander, h.silenceBody(`{"district": "atlantis"}`), 400, `"atlantis" is not a district of the catalog`},
		{"an unknown name", commander, h.silenceBody(`{"colour": "red"}`), 400, `"colour" cannot be matched`},
		{"a bad severity", commander, h.silenceBody(`{"severity": "dire"}`), 400, "matchers.severity"},
		{"no matchers", commander, h.silenceBody(`{}`), 400, "force: true to mean it"},
		{"force with matchers", commander, `{"matchers": {"district": "xuhui"}, "force": true, "ends_at": "` + end + `", "comment": "c"}`, 400, "force is only for a silence without matchers"},
		{"an unknown field", commander, `{"matchers": {"district": "xuhui"}, "ends": "` + end + `", "comment": "c"}`, 400, `unknown field "ends"`},
		{"not JSON", commander, `{"matchers": `, 400, "invalid_json"},
		{"too large", commander, `{"comment": "` + strings.Repeat("x", silence.MaxBodyBytes) + `"}`, 413, "too_large"},
		{"another district", xuhuiDisp, h.silenceBody(`{"district": "pudong"}`), 403, `district "pudong" is not yours`},
		{"a dispatcher naming no district", xuhuiDisp, h.silenceBody(`{"rule": "gas-safety/gas-leak"}`), 403, "must name its districts"},
		{"a dispatcher forcing", xuhuiDisp, `{"matchers": {}, "force": true, "ends_at": "` + end + `", "comment": "c"}`, 403, "only a commander"},
		{"another department's rule", gasDept, h.silenceBody(`{"rule": "flood-control/deep-waterlogging"}`), 403, `rule "flood-control/deep-waterlogging" is not one of your packs'`},
		{"a department naming no rule", gasDept, h.silenceBody(`{"district": "xuhui"}`), 403, "must name the rules or packs it owns"},
		{"a viewer", xuhuiWall, h.silenceBody(`{"district": "xuhui"}`), 403, ""},
		{"a source", hotline, h.silenceBody(`{"district": "xuhui"}`), 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got := h.do(tc.p, "POST", "/v1/silences", tc.body)
			if text := fmt.Sprint(got); code != tc.code || !strings.Contains(text, tc.want) {
				t.Errorf("%d %s, want %d with %q", code, text, tc.code, tc.want)
			}
			// A problem of the request also says what it is in a word, for
			// clients that say it in their own language.
			if r, ok := reasons[tc.name]; ok && !strings.Contains(fmt.Sprint(got), "reason:"+r) {
				t.Errorf("%v: no problem with reason %q", got, r)
			}
		})
	}
	all, _, err := h.store.All(context.Background())
	if err != nil || len(all) != 0 {
		t.Errorf("refused requests left %d silences (%v)", len(all), err)
	}
}

// TestScopedCreation checks what each role may silence.
func TestScopedCreation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name     string
		p        auth.Principal
		matchers string
	}{
		{"a dispatcher, its district", xuhuiDisp, `{"district": "xuhui", "street": "tianping"}`},
		{"a department, its rule", gasDept, `{"rule": "gas-safety/sensor-silent", "district": "pudong"}`},
		{"a department, its pack", gasDept, `{"pack": "gas-safety"}`},
	} {
		if code, got := h.do(tc.p, "POST", "/v1/silences", h.silenceBody(tc.matchers)); code != http.StatusCreated {
			t.Errorf("%s: %d %v", tc.name, code, got)
		}
	}
}

// TestForcedSilenceIsAudited checks that a commander may silence every
// alert only by saying so, and that the log names who did and why.
func TestForcedSilenceIsAudited(t *testing.T) {
	h := newHarness(t)
	body := `{"matchers": {}, "force": true, "ends_at": "` + h.now.Add(time.Hour).Format(time.RFC3339) + `", "comment": "the wall is being moved"}`
	code, got := h.do(commander, "POST", "/v1/silences", body)
	if code != http.StatusCreated || got["forced"] != true {
		t.Fatalf("forced silence: %d %v", code, got)
	}
	log := h.log.String()
	if !strings.Contains(log, "a silence over every alert was set") || !strings.Contains(log, "by=chief") || !strings.Contains(log, "the wall is being moved") {
		t.Errorf("the log does not audit the forced silence: %q", log)
	}
	if strings.Contains(log, "eyJ") {
		t.Errorf("the log holds a token: %q", log)
	}
}
