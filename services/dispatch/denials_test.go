package dispatch_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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

// denialLog is the body of GET /v1/cases/{id}/denials.
type denialLog struct {
	Items  []casestore.Denial `json:"items"`
	Counts []struct {
		Actor  string `json:"actor"`
		Action string `json:"action"`
		Count  int64  `json:"count"`
	} `json:"counts"`
	Overflow map[string]int64 `json:"overflow"`
}

func (l denialLog) count(actor, action string) int64 {
	for _, c := range l.Counts {
		if c.Actor == actor && c.Action == action {
			return c.Count
		}
	}
	return 0
}

func (h *harness) denials(id string) denialLog {
	h.t.Helper()
	status, b := h.as(auth.RoleCommander, "").do("GET", "/v1/cases/"+id+"/denials", nil)
	var l denialLog
	if status != 200 || json.Unmarshal(b, &l) != nil {
		h.t.Fatalf("denials: %d %s", status, b)
	}
	return l
}

// TestOneActorCannotFlushAnothersRefusals checks that refusals of one
// actor, however many, never push another's out, and that counts only grow.
func TestOneActorCannotFlushAnothersRefusals(t *testing.T) {
	h, reg := startMetered(t)
	c := h.as(auth.RoleDispatcher, "").open("xuhui", "open-1", map[string]any{"lead": "water-affairs", "assist": []string{"traffic-police"}})
	path := "/v1/cases/" + c.ID + "/actions"

	// B: a department accepting another's part.
	traffic := h.as(auth.RoleDepartment, "traffic-police")
	if status, b := traffic.do("POST", path, map[string]any{"action": "accept", "department": "water-affairs", "expected_version": 1, "request_id": "t1"}); status != 403 {
		t.Fatalf("accept for another: %d %s", status, b)
	}
	// A: a viewer commenting, over and over.
	viewer := h.as(auth.RoleViewer, "")
	const flood = 210
	for i := range flood {
		if status, b := viewer.do("POST", path, map[string]any{"action": "comment", "note": "hi", "expected_version": 1, "request_id": fmt.Sprint("v", i)}); status != 403 {
			t.Fatalf("comment %d: %d %s", i, status, b)
		}
	}
	l := h.denials(c.ID)
	kept := slices.ContainsFunc(l.Items, func(d casestore.Denial) bool {
		return d.Actor == "department-traffic-police" && d.Action == "accept" && d.Part == "water-affairs" && d.Status == 403
	})
	if !kept {
		t.Errorf("another actor's refusals pushed out the refused accept: %d items", len(l.Items))
	}
	if got := l.count("viewer-", "comment"); got != flood {
		t.Errorf("the viewer's comments counted %d, want %d", got, flood)
	}
	if got := l.count("department-traffic-police", "accept"); got != 1 {
		t.Errorf("the refused accept counted %d, want 1", got)
	}

	// Counts never drop, whatever the lists keep.
	for i := range 5 {
		viewer.do("POST", path, map[string]any{"action": "comment", "note": "hi", "expected_version": 1, "request_id": fmt.Sprint("w", i)})
	}
	l = h.denials(c.ID)
	if got := l.count("viewer-", "comment"); got != flood+5 {
		t.Errorf("after five more, the viewer's comments counted %d, want %d", got, flood+5)
	}
	if got := counter(t, reg, "cityhub_dispatch_authz_failures_total", "action"); got["comment"] != flood+5 || got["accept"] != 1 {
		t.Errorf("cityhub_dispatch_authz_failures_total = %v", got)
	}
}

// TestRefusedReadsAreAudited checks that reading a case, or its refusals,
// outside one's role or scope is recorded as the action read.
func TestRefusedReadsAreAudited(t *testing.T) {
	h, reg := startMetered(t)
	c := h.as(auth.RoleDispatcher, "").open("xuhui", "open-1", map[string]any{"lead": "water-affairs"})
	ghost := casestore.NewID("xuhui", t0)
	for _, r := range []struct {
		name   string
		by     *client
		path   string
		status int
		actor  string // who is recorded; "" when nothing is
	}{
		{"a dispatcher of another district", h.as(auth.RoleDispatcher, "", "huangpu"), "/v1/cases/" + c.ID, 404, "dispatcher-"},
		{"a department without a part", h.as(auth.RoleDepartment, "gas"), "/v1/cases/" + c.ID, 404, "department-gas"},
		{"a viewer of another district", h.as(auth.RoleViewer, "", "huangpu"), "/v1/cases/" + c.ID, 404, "viewer-"},
		{"a dispatcher reading the refusals", h.as(auth.RoleDispatcher, "", "xuhui"), "/v1/cases/" + c.ID + "/denials", 403, "dispatcher-"},
		{"a department reading the refusals", h.as(auth.RoleDepartment, "water-affairs"), "/v1/cases/" + c.ID + "/denials", 403, "department-water-affairs"},
		{"a case that does not exist", h.as(auth.RoleDepartment, "gas"), "/v1/cases/" + ghost, 404, ""},
		{"refusals of a case that does not exist", h.as(auth.RoleDepartment, "gas"), "/v1/cases/" + ghost + "/denials", 403, ""},
		{"no token", &client{h, ""}, "/v1/cases/" + c.ID, 401, ""},
		{"a reader in scope", h.as(auth.RoleDepartment, "water-affairs"), "/v1/cases/" + c.ID, 200, ""},
	} {
		h.setNow(h.now().Add(time.Minute)) // one refusal a minute: newest first is plain
		before := h.denials(c.ID)
		if status, b := r.by.do("GET", r.path, nil); status != r.status {
			t.Errorf("%s: %d %s, want %d", r.name, status, b, r.status)
			continue
		}
		after := h.denials(c.ID)
		if r.actor == "" {
			if len(after.Items) != len(before.Items) {
				t.Errorf("%s: recorded %+v", r.name, after.Items[0])
			}
			continue
		}
		if len(after.Items) != len(before.Items)+1 {
			t.Errorf("%s: not recorded", r.name)
			continue
		}
		d := after.Items[0]
		if d.Action != "read" || d.Actor != r.actor || d.Status != r.status {
			t.Errorf("%s: recorded %+v", r.name, d)
		}
		if after.count(r.actor, "read") != before.count(r.actor, "read")+1 {
			t.Errorf("%s: counts %+v", r.name, after.Counts)
		}
	}
	// A role refused on a case that does not exist is counted too: the
	// role decided, not the case.
	if got := counter(t, reg, "cityhub_dispatch_authz_failures_total", "action"); got["read"] != 6 || len(got) != 1 {
		t.Errorf("cityhub_dispatch_authz_failures_total = %v, want 6 reads", got)
	}
	if got := h.as(auth.RoleCommander, "").get(c.ID); got.Version != 1 || len(got.History) != 1 {
		t.Errorf("the case moved: version %d, %d audit entries", got.Version, len(got.History))
	}
}
