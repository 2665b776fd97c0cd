package ruler_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
)

// reloadHarness is a running ruler whose packs live in a directory of the
// test's own, with the reload endpoint served over real HTTP.
type reloadHarness struct {
	t      *testing.T
	k      *kafkatest.Cluster
	w      *stream.Writer
	r      *ruler.Ruler
	reg    *prometheus.Registry
	dir    string
	srv    *httptest.Server
	signer *auth.Signer
	hup    chan os.Signal
}

func startReloadHarness(t *testing.T, poll time.Duration) *reloadHarness {
	t.Helper()
	h := &reloadHarness{t: t, k: kafkatest.Start(t), reg: prometheus.NewRegistry(), dir: t.TempDir(), hup: make(chan os.Signal, 1)}
	for _, name := range []string{"flood.yaml", "gas.yaml", "manhole.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../rules/packs", name))
		if err != nil {
			t.Fatal(err)
		}
		h.write(name, string(b))
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	h.signer = auth.NewSigner(priv)
	h.w, err = stream.NewWriter(stream.WriterOptions{Brokers: h.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.w.Close() })
	h.r, err = ruler.New(ruler.Options{
		Brokers: h.k.Brokers, Topics: h.k.Topics, Group: kafkatest.Group("ruler"),
		Redis: redistest.Start(t).Client, Writer: h.w, PacksDir: h.dir, Catalog: loadCatalog(t),
		Logger: logging.Discard(), Registerer: h.reg,
		PollInterval: poll, Reload: h.hup, Verifier: verifier,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.r.Routes(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// write replaces a pack file at once, as an editor saving it does, so that
// a poll never sees it half written.
func (h *reloadHarness) write(name, body string) {
	h.t.Helper()
	tmp := filepath.Join(h.dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.dir, name)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *reloadHarness) token(role auth.Role) string {
	h.t.Helper()
	tok, err := h.signer.Sign(auth.Principal{Subject: "test", Role: role}, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// post calls POST /-/reload with a token of role ("" for none) and returns
// the status and the decoded body.
func (h *reloadHarness) post(role auth.Role) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/-/reload", nil)
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+h.token(role))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		h.t.Fatalf("reload answered %d with a body that is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

func (h *reloadHarness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	h.t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// alertVersion waits until the alerts topic holds version v of the alert
// of rule whose labels include street, and returns it.
func (h *reloadHarness) alertVersion(rule, street string, v int64) *cityhubv1.Alert {
	h.t.Helper()
	var found *cityhubv1.Alert
	waitFor(h.t, fmt.Sprintf("%s at version %d", rule, v), func() bool {
		for _, a := range alerts(h.t, h.k) {
			if a.GetRule() == rule && a.GetLabels()["street"] == street && a.GetVersion() == v {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

func TestReloadKeepsTheStateOfUnchangedRules(t *testing.T) {
	h := startReloadHarness(t, -1)
	const rule = "flood-control/deep-waterlogging"
	produce(t, h.w, h.k.Topics.Events, event("ev-1", "waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 35}))
	first := h.alertVersion(rule, "tianping", 1)
	rulesBefore := h.metric("cityhub_ruler_rules")

	// An unrelated change: another rule's description, and a new rule.
	flood, err := os.ReadFile(filepath.Join(h.dir, "flood.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(flood), "Rain heavier than the rainstorm threshold", "Rain above the rainstorm threshold", 1)
	if changed == string(flood) {
		t.Fatal("the flood pack no longer has the rainstorm rule this test edits")
	}
	h.write("flood.yaml", changed)
	h.write("drains.yaml", "pack: drains\nowner: drainage\nrules:\n  - id: drain-blocked\n    when: event.type == \"drain_blocked\"\n    severity: minor\n    group_by: [district, street]\n")
	status, body := h.post(auth.RoleCommander)
	if status != http.StatusOK || body["status"] != "success" || body["rules"] != rulesBefore+1 {
		t.Fatalf("reload = %d %v, want 200 with %v rules", status, body, rulesBefore+1)
	}
	if got := h.metric("cityhub_ruler_rules"); got != rulesBefore+1 {
		t.Errorf("cityhub_ruler_rules = %v, want %v", got, rulesBefore+1)
	}
	if got := h.metric("cityhub_ruler_reloads_total", "result", "success"); got != 1 {
		t.Errorf("successful reloads = %v", got)
	}

	// The next matching event updates the alert that is firing.
	produce(t, h.w, h.k.Topics.Events, event("ev-2", "waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 40}))
	second := h.alertVersion(rule, "tianping", 2)
	if second.GetId() != first.GetId() || second.GetEventCount() != 2 || second.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING ||
		!second.GetStartsAt().AsTime().Equal(first.GetStartsAt().AsTime()) {
		t.Errorf("after the reload: %v\nbefore: %v", second, first)
	}
	// The new rule runs.
	produce(t, h.w, h.k.Topics.Events, event("ev-3", "drain_blocked", "xuhui", "hengshan", map[string]any{"inlet_id": "i-4"}))
	h.alertVersion("drains/drain-blocked", "hengshan", 1)
}

func TestReloadRefusesBadPacksWithEveryProblem(t *testing.T) {
	h := startReloadHarness(t, -1)
	rulesBefore := h.metric("cityhub_ruler_rules")
	successBefore := h.metric("cityhub_ruler_last_reload_success_timestamp_seconds")

	for role, want := range map[auth.Role]int{"": http.StatusUnauthorized, auth.RoleViewer: http.StatusForbidden, auth.RoleDispatcher: http.StatusForbidden} {
		if status, _ := h.post(role); status != want {
			t.Errorf("reload with role %q = %d, want %d", role, status, want)
		}
	}

	// Problems of three kinds in three files: all of them come back at once.
	h.write("a.yaml", "pack: a\nowner: water-affairs\nrules:\n  - id: x\n    when: event.type == \"waterloging\"\n    severity: severe\n")
	h.write("b.yaml", "pack: b\nowner: water-affairs\nrules:\n  - id: y\n    when: event.type == \"waterlogging\"\n    severity: bad\n")
	h.write("c.yml", "pack: c\nowner: water-affairs\nrules: []\n")
	status, body := h.post(auth.RoleCommander)
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("reload of bad packs = %d %v", status, body)
	}
	e, _ := body["error"].(map[string]any)
	details, _ := e["details"].([]any)
	var lines []string
	for _, d := range details {
		lines = append(lines, d.(map[string]any)["error"].(string))
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		filepath.Join(h.dir, "a.yaml") + `:5:11: rule x: when: event type "waterloging" is not in the catalog`,
		filepath.Join(h.dir, "b.yaml") + `:6:15: rule y: severity: unknown severity "bad"`,
		filepath.Join(h.dir, "c.yml") + `:3:8: rules:`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, all)
		}
	}
	if e["code"] != "invalid_rule_packs" {
		t.Errorf("error code = %v", e["code"])
	}
	if got := h.metric("cityhub_ruler_reloads_total", "result", "failure"); got != 1 {
		t.Errorf("failed reloads = %v", got)
	}
	if got := h.metric("cityhub_ruler_last_reload_successful"); got != 0 {
		t.Errorf("last reload successful = %v", got)
	}
	if got := h.metric("cityhub_ruler_rules"); got != rulesBefore {
		t.Errorf("rules = %v after a refused reload, want %v", got, rulesBefore)
	}
	if got := h.metric("cityhub_ruler_last_reload_success_timestamp_seconds"); got != successBefore {
		t.Errorf("the last success moved to %v on a refused reload", got)
	}

	// The running packs keep running.
	produce(t, h.w, h.k.Topics.Events, event("ev-1", "waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 35}))
	h.alertVersion("flood-control/deep-waterlogging", "tianping", 1)
}

func TestReloadOnChangeAndOnSignal(t *testing.T) {
	h := startReloadHarness(t, 10*time.Millisecond)
	rulesBefore := h.metric("cityhub_ruler_rules")

	// A new pack on disk is picked up by itself.
	h.write("drains.yaml", "pack: drains\nowner: drainage\nrules:\n  - id: blocked\n    when: event.type == \"drain_blocked\"\n    severity: minor\n")
	waitFor(t, "the new pack", func() bool { return h.metric("cityhub_ruler_rules") == rulesBefore+1 })
	produce(t, h.w, h.k.Topics.Events, event("ev-1", "drain_blocked", "xuhui", "tianping", map[string]any{"inlet_id": "i-1"}))
	waitFor(t, "the new rule's alert", func() bool {
		for _, a := range alerts(t, h.k) {
			if a.GetRule() == "drains/blocked" {
				return true
			}
		}
		return false
	})
	// A broken edit is refused once, not at every poll; fixing it reloads.
	h.write("drains.yaml", "pack: drains\nowner: drainage\nrules:\n  - id: blocked\n    when: event.type ==\n    severity: minor\n")
	waitFor(t, "the refusal", func() bool { return h.metric("cityhub_ruler_reloads_total", "result", "failure") == 1 })
	successes := h.metric("cityhub_ruler_reloads_total", "result", "success")
	os.Remove(filepath.Join(h.dir, "drains.yaml"))
	waitFor(t, "the pack's removal", func() bool { return h.metric("cityhub_ruler_rules") == rulesBefore })
	if got := h.metric("cityhub_ruler_reloads_total", "result", "failure"); got != 1 {
		t.Errorf("the broken pack was tried %v times", got)
	}

	// SIGHUP (as the main delivers it) reloads even when nothing changed.
	h.hup <- os.Interrupt
	waitFor(t, "the reload on signal", func() bool {
		return h.metric("cityhub_ruler_reloads_total", "result", "success") == successes+2
	})
}
