package dispatch_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// startMetered is start with the service's metrics in a registry the test
// can read.
func startMetered(t *testing.T) (*harness, *prometheus.Registry) {
	t.Helper()
	h := start(t)
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := dispatch.New(dispatch.Options{
		Brokers: h.k.Brokers, Topics: h.k.Topics, Redis: h.redis.Client, Writer: h.writer,
		Catalog: cat, Verifier: verifier, Registerer: reg, Now: h.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	h.svc, h.signer, h.api = svc, auth.NewSigner(priv), api
	return h, reg
}

// counter sums the series of a counter family by one label's value.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func TestRefusedActionsAreAudited(t *testing.T) {
	h, reg := startMetered(t)
	disp := h.as(auth.RoleDispatcher, "")
	c := disp.open("xuhui", "open-1", map[string]any{"lead": "water-affairs", "assist": []string{"traffic-police"}})
	path := "/v1/cases/" + c.ID + "/actions"

	attempts := []struct {
		name   string
		role   string
		by     *client
		body   map[string]any
		status int
		reason string // a word the recorded reason holds
	}{
		{"a department with no part", "department", h.as(auth.RoleDepartment, "gas"),
			map[string]any{"action": "accept", "expected_version": 1, "request_id": "g1"}, 404, "scope"},
		{"a viewer", "viewer", h.as(auth.RoleViewer, ""),
			map[string]any{"action": "comment", "note": "hi", "expected_version": 1, "request_id": "v1"}, 403, "viewer"},
		{"a department acting for another", "department", h.as(auth.RoleDepartment, "traffic-police"),
			map[string]any{"action": "accept", "department": "water-affairs", "expected_version": 1, "request_id": "t1"}, 403, "itself"},
		{"a department verifying", "department", h.as(auth.RoleDepartment, "water-affairs"),
			map[string]any{"action": "verify", "pass": true, "expected_version": 1, "request_id": "w1"}, 403, "verify"},
		{"a dispatcher of another district", "dispatcher", h.as(auth.RoleDispatcher, "", "huangpu"),
			map[string]any{"action": "cancel", "note": "mine now", "expected_version": 1, "request_id": "d1"}, 404, "scope"},
	}
	for i, a := range attempts {
		h.setNow(t0.Add(time.Duration(i+1) * time.Minute))
		if status, b := a.by.do("POST", path, a.body); status != a.status {
			t.Fatalf("%s: %d %s, want %d", a.name, status, b, a.status)
		}
	}
	// Not refusals: a case that does not exist, and no token at all.
	ghost := "/v1/cases/" + casestore.NewID("xuhui", t0) + "/actions"
	if status, _ := h.as(auth.RoleDepartment, "gas").do("POST", ghost, attempts[0].body); status != 404 {
		t.Errorf("missing case: %d, want 404", status)
	}
	if status, _ := (&client{h, ""}).do("POST", path, attempts[0].body); status != 401 {
		t.Errorf("no token: %d, want 401", status)
	}

	// The case did not move.
	if got := h.as(auth.RoleCommander, "").get(c.ID); got.Version != 1 || len(got.History) != 1 {
		t.Errorf("the case moved: version %d, %d audit entries", got.Version, len(got.History))
	}

	// Commanders read the attempts, newest first.
	status, b := h.as(auth.RoleCommander, "").do("GET", "/v1/cases/"+c.ID+"/denials", nil)
	var list struct{ Items []casestore.Denial }
	if status != 200 || json.Unmarshal(b, &list) != nil {
		t.Fatalf("denials: %d %s", status, b)
	}
	if len(list.Items) != len(attempts) {
		t.Fatalf("%d denials recorded, want %d: %s", len(list.Items), len(attempts), b)
	}
	for i, a := range attempts {
		d := list.Items[len(attempts)-1-i]
		if d.Status != a.status || d.Action != a.body["action"] || d.Actor != d.Role+"-"+d.Department ||
			d.Role != a.role || !d.At.Equal(t0.Add(time.Duration(i+1)*time.Minute)) || !strings.Contains(d.Reason, a.reason) {
			t.Errorf("%s: recorded %+v", a.name, d)
		}
	}
	if d := list.Items[2]; d.Part != "water-affairs" {
		t.Errorf("the part named is not kept: %+v", d)
	}
	if got := counter(t, reg, "cityhub_dispatch_authz_failures_total", "action"); got["accept"] != 2 || got["comment"] != 1 || got["verify"] != 1 || got["cancel"] != 1 {
		t.Errorf("cityhub_dispatch_authz_failures_total = %v", got)
	}

	for _, who := range []*client{disp, h.as(auth.RoleDepartment, "water-affairs"), h.as(auth.RoleViewer, "")} {
		if status, _ := who.do("GET", "/v1/cases/"+c.ID+"/denials", nil); status != 403 {
			t.Errorf("a non-commander read the denials: %d", status)
		}
	}
	if status, _ := h.as(auth.RoleCommander, "").do("GET", "/v1/cases/"+casestore.NewID("xuhui", t0)+"/denials", nil); status != 404 {
		t.Errorf("denials of a missing case: %d, want 404", status)
	}
}
