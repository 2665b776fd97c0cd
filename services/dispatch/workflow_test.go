package dispatch_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/view"
)

// caseBody is a case as the API answers it, with the caller's options.
type caseBody struct {
	view.Case
	AllowedActions []lifecycle.Option `json:"allowed_actions"`
}

// act posts an action and decodes the answer; it fails the test unless the
// status is want.
func (c *client) act(id string, want int, body map[string]any) caseBody {
	c.h.t.Helper()
	status, b := c.do("POST", "/v1/cases/"+id+"/actions", body)
	if status != want {
		c.h.t.Fatalf("%v: %d %s, want %d", body, status, b, want)
	}
	var v caseBody
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &v); err != nil {
			c.h.t.Fatal(err)
		}
	}
	return v
}

func (c *client) get(id string) caseBody {
	c.h.t.Helper()
	status, b := c.do("GET", "/v1/cases/"+id, nil)
	var v caseBody
	if status != http.StatusOK || json.Unmarshal(b, &v) != nil {
		c.h.t.Fatalf("get %s: %d %s", id, status, b)
	}
	return v
}

// open creates a case by hand through the API.
func (c *client) open(district, requestID string, extra map[string]any) caseBody {
	c.h.t.Helper()
	body := map[string]any{"title": "积水", "district": district, "request_id": requestID}
	for k, v := range extra {
		body[k] = v
	}
	status, b := c.do("POST", "/v1/cases", body)
	var v caseBody
	if status != http.StatusCreated || json.Unmarshal(b, &v) != nil {
		c.h.t.Fatalf("create: %d %s", status, b)
	}
	return v
}

func options(v caseBody) string {
	var out []string
	for _, o := range v.AllowedActions {
		s := string(o.Action)
		if o.Outcome != "" {
			s += ":" + o.Outcome
		}
		if o.Department != "" {
			s += "@" + o.Department
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func part(v caseBody, dept string) view.Part {
	for _, p := range v.Parts {
		if p.Department == dept {
			return p
		}
	}
	return view.Part{}
}

func TestAPIAllowedActions(t *testing.T) {
	h := start(t)
	disp := h.as(auth.RoleDispatcher, "", "xuhui")
	created := disp.open("xuhui", "call-1", map[string]any{"lead": "water-affairs", "assist": []string{"traffic-police"}, "event_type": "waterlogging"})
	if got := options(created); got != "cancel merge comment escalate" {
		t.Errorf("creator's options %q", got)
	}
	water := h.as(auth.RoleDepartment, "water-affairs")
	for _, tt := range []struct {
		c    *client
		want string
	}{
		{water, "accept@water-affairs return@water-affairs comment"},
		{h.as(auth.RoleDepartment, "traffic-police"), "accept@traffic-police return@traffic-police comment"},
		{h.as(auth.RoleViewer, ""), ""},
		{h.as(auth.RoleCommander, ""), "accept@water-affairs accept@traffic-police return@water-affairs return@traffic-police cancel merge comment escalate"},
	} {
		if got := options(tt.c.get(created.ID)); got != tt.want {
			t.Errorf("options %q, want %q", got, tt.want)
		}
	}
	// The JSON a console reads: department, needs_note, needs.
	_, raw := water.do("GET", "/v1/cases/"+created.ID, nil)
	if !strings.Contains(string(raw), `{"action":"return","department":"water-affairs","needs_note":true}`) {
		t.Errorf("allowed_actions JSON: %s", raw)
	}
	// The answer to an action carries the options after it.
	after := water.act(created.ID, 200, map[string]any{"action": "accept", "expected_version": 1, "request_id": "w1"})
	if got := options(after); got != "handle@water-affairs suspend@water-affairs request_extension@water-affairs comment" {
		t.Errorf("options after accepting %q", got)
	}
	// The class of the event type set the deadlines.
	if after.Sla == nil || after.Sla.CaseClass != "urgent" || after.Sla.Accept != "10m0s" || after.Sla.AcceptIn != "natural" {
		t.Errorf("sla %+v", after.Sla)
	}
}

func TestAPISuspendAndExtension(t *testing.T) {
	h := start(t)
	disp := h.as(auth.RoleDispatcher, "", "xuhui")
	water := h.as(auth.RoleDepartment, "water-affairs")
	traffic := h.as(auth.RoleDepartment, "traffic-police")
	c := disp.open("xuhui", "call-1", map[string]any{
		"lead": "water-affairs", "assist": []string{"traffic-police"}, "sla": map[string]string{"accept": "30m", "handle": "4h"},
	})
	id := c.ID
	water.act(id, 200, map[string]any{"action": "accept", "expected_version": 1, "request_id": "w1"})
	traffic.act(id, 200, map[string]any{"action": "accept", "expected_version": 2, "request_id": "t1"})

	h.setNow(t0.Add(10 * time.Minute))
	water.act(id, 400, map[string]any{"action": "suspend", "expected_version": 3, "request_id": "w2"})
	v := water.act(id, 200, map[string]any{"action": "suspend", "note": "waiting for the pump truck", "expected_version": 3, "request_id": "w2"})
	if p := part(v, "water-affairs"); !p.Suspended || p.SuspendReason != "waiting for the pump truck" || part(v, "traffic-police").Suspended {
		t.Fatalf("after suspend: %+v", v.Parts)
	}
	water.act(id, 409, map[string]any{"action": "handle", "note": "done", "expected_version": 4, "request_id": "w3"})

	h.setNow(t0.Add(70 * time.Minute))
	v = water.act(id, 200, map[string]any{"action": "resume", "expected_version": 4, "request_id": "w3"})
	p := part(v, "water-affairs")
	if p.Suspended || p.SuspendedTotal != "1h0m0s" || !p.HandleDeadline.DueAt.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("after resume: %+v, handle %+v", p, p.HandleDeadline)
	}
	if d := part(v, "traffic-police").HandleDeadline.DueAt; !d.Equal(t0.Add(4 * time.Hour)) {
		t.Errorf("traffic's deadline moved: %v", d)
	}

	// Extensions: malformed asks are refused with the field at fault.
	for body, field := range map[string]string{
		`{"action":"request_extension","note":"x","expected_version":5,"request_id":"w4"}`:                                                 "extend_by",
		`{"action":"request_extension","note":"x","extend_by":"2wk","expected_version":5,"request_id":"w4"}`:                               "extend_by",
		`{"action":"request_extension","note":"x","until":"tomorrow","expected_version":5,"request_id":"w4"}`:                              "until",
		`{"action":"accept","extend_by":"2h","expected_version":5,"request_id":"w4"}`:                                                      "extend_by",
		`{"action":"request_extension","note":"x","extend_by":"2h","until":"2025-07-02T00:00:00Z","expected_version":5,"request_id":"w4"}`: "extend_by",
	} {
		status, b := water.do("POST", "/v1/cases/"+id+"/actions", body)
		if status != 400 || !strings.Contains(string(b), `"field":"`+field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, status, b, field)
		}
	}
	// Working days on a natural-time deadline make no sense.
	water.act(id, 400, map[string]any{"action": "request_extension", "note": "x", "extend_by": "1wd", "expected_version": 5, "request_id": "w4"})
	v = water.act(id, 200, map[string]any{"action": "request_extension", "note": "parts on order", "extend_by": "2h", "expected_version": 5, "request_id": "w4"})
	if e := part(v, "water-affairs").Extension; e == nil || e.State != "pending" || e.ExtendBy != "2h0m0s" || e.Reason != "parts on order" {
		t.Fatalf("extension %+v", e)
	}
	if got := options(disp.get(id)); !strings.Contains(got, "grant_extension@water-affairs refuse_extension@water-affairs") {
		t.Errorf("dispatcher's options %q", got)
	}
	water.act(id, 403, map[string]any{"action": "grant_extension", "expected_version": 6, "request_id": "w5"})
	v = disp.act(id, 200, map[string]any{"action": "grant_extension", "department": "water-affairs", "note": "fine", "expected_version": 6, "request_id": "d1"})
	p = part(v, "water-affairs")
	if p.Extension.State != "granted" || !p.HandleDeadline.DueAt.Equal(t0.Add(7*time.Hour)) {
		t.Errorf("after the grant: %+v, handle %+v", p.Extension, p.HandleDeadline)
	}
	traffic.act(id, 200, map[string]any{"action": "request_extension", "note": "road closed", "until": "2025-07-02T08:00:00Z", "expected_version": 7, "request_id": "t2"})
	disp.act(id, 400, map[string]any{"action": "refuse_extension", "department": "traffic-police", "expected_version": 8, "request_id": "d2"})
	v = disp.act(id, 200, map[string]any{"action": "refuse_extension", "department": "traffic-police", "note": "reopen it today", "expected_version": 8, "request_id": "d2"})
	if p := part(v, "traffic-police"); p.Extension.State != "refused" || !p.HandleDeadline.DueAt.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("after the refusal: %+v", p)
	}
	hist := disp.get(id).History
	if n := len(hist); n != 9 || hist[4].Action != "resume" || !strings.Contains(hist[4].Effect, "moved") {
		t.Errorf("history: %d entries, resume %+v", n, hist[4])
	}
}

func TestAPIArbitration(t *testing.T) {
	h := start(t)
	disp := h.as(auth.RoleDispatcher, "", "xuhui")
	water := h.as(auth.RoleDepartment, "water-affairs")
	gas := h.as(auth.RoleDepartment, "gas")
	c := disp.open("xuhui", "call-1", map[string]any{"lead": "water-affairs"})
	water.act(c.ID, 200, map[string]any{"action": "return", "note": "a gas matter", "expected_version": 1, "request_id": "w1"})
	disp.act(c.ID, 200, map[string]any{"action": "dispatch", "lead": "gas", "expected_version": 2, "request_id": "d1"})
	if _, l := disp.list("arbitration=true"); len(l.Items) != 0 {
		t.Fatalf("flagged after one return: %v", l.Items)
	}
	v := gas.act(c.ID, 200, map[string]any{"action": "return", "note": "a water matter", "expected_version": 3, "request_id": "g1"})
	if !v.Arbitration || v.ArbitrationReason != "returned by water-affairs, gas" || !slices.Equal(v.ReturnedBy, []string{"water-affairs", "gas"}) {
		t.Fatalf("after two returns: %+v", v.Case)
	}
	if status, l := disp.list("arbitration=true"); status != 200 || len(l.Items) != 1 || l.Items[0].ID != c.ID {
		t.Errorf("arbitration list: %d %v", status, l.Items)
	}
	if status, _ := disp.do("GET", "/v1/cases?arbitration=maybe", nil); status != 400 {
		t.Errorf("arbitration=maybe: %d", status)
	}
	hist := disp.get(c.ID).History
	if last := hist[len(hist)-1]; last.Action != "return" || !strings.Contains(last.Effect, "arbitration") {
		t.Errorf("return entry %+v", last)
	}
	v = disp.act(c.ID, 200, map[string]any{"action": "dispatch", "lead": "water-affairs", "assist": []string{"gas"}, "case_class": "standard", "expected_version": 4, "request_id": "d2"})
	if v.Arbitration || v.Sla.CaseClass != "standard" || v.Sla.HandleIn != "working" {
		t.Errorf("after the district centre decided: %+v", v.Case)
	}
	if _, l := disp.list("arbitration=true"); len(l.Items) != 0 {
		t.Errorf("still listed: %v", l.Items)
	}
	disp.act(c.ID, 400, map[string]any{"action": "dispatch", "lead": "gas", "case_class": "glacial", "expected_version": 5, "request_id": "d3"})
}

// newReplica starts a second dispatch service on the harness's Redis and
// Kafka, as another replica would run.
func (h *harness) newReplica() *dispatch.Service {
	h.t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		h.t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	verifier, err := auth.NewVerifier(pub)
	if err != nil {
		h.t.Fatal(err)
	}
	svc, err := dispatch.New(dispatch.Options{
		Brokers: h.k.Brokers, Topics: h.k.Topics, Redis: h.redis.Client, Writer: h.writer,
		Catalog: cat, Verifier: verifier, Registerer: prometheus.NewRegistry(), Now: h.now,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return svc
}

// timerEntries counts the warn and escalate entries of case id.
func (h *harness) timerEntries(id string) (warns, escalations int) {
	h.t.Helper()
	_, hist, err := h.svc.Store().Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range hist {
		switch e.GetAction() {
		case "warn":
			warns++
		case "escalate":
			escalations++
		}
		if (e.GetAction() == "warn" || e.GetAction() == "escalate") && e.GetRole() != string(lifecycle.RoleSystem) {
			h.t.Errorf("%s by %s", e.GetAction(), e.GetRole())
		}
	}
	return warns, escalations
}

func TestSweeperWarnsAndEscalates(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	chief := h.as(auth.RoleCommander, "")
	c := chief.open("xuhui", "call-1", map[string]any{"lead": "water-affairs", "assist": []string{"traffic-police"}, "event_type": "waterlogging"})
	sweep := func(at time.Duration) int {
		t.Helper()
		n, err := h.svc.Sweep(ctx, t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sweep(7 * time.Minute); n != 0 {
		t.Fatalf("%d changes before the warning", n)
	}
	if n := sweep(8 * time.Minute); n != 2 {
		t.Fatalf("%d changes at the warning, want one per part", n)
	}
	if v := chief.get(c.ID); !v.Warned || v.Overdue || v.EscalationLevel != 0 || part(v, "water-affairs").AcceptDeadline.State != "warned" {
		t.Errorf("after the warning: %+v", v.Case)
	}
	if n := sweep(8 * time.Minute); n != 0 {
		t.Errorf("the same moment fired again: %d", n)
	}
	// The lead signs; the assist does not: only its part escalates.
	h.setNow(t0.Add(9 * time.Minute))
	h.as(auth.RoleDepartment, "water-affairs").act(c.ID, 200, map[string]any{"action": "accept", "expected_version": 3, "request_id": "w1"})
	if n := sweep(10 * time.Minute); n != 1 {
		t.Fatalf("%d changes at the deadline, want the assist's escalation", n)
	}
	v := chief.get(c.ID)
	if !v.Overdue || v.EscalationLevel != 1 || v.EscalatedTo != "district-centre" {
		t.Errorf("after the deadline: %+v", v.Case)
	}
	last := v.History[len(v.History)-1]
	if last.Action != "escalate" || last.Department != "traffic-police" || !strings.Contains(last.Effect, "district centre") {
		t.Errorf("escalation entry %+v", last)
	}
	// Hours later every moment has come: the city centre has the case.
	sweep(5 * time.Hour)
	v = chief.get(c.ID)
	if v.EscalationLevel != 2 || v.EscalatedTo != "city-centre" {
		t.Errorf("five hours on: level %d", v.EscalationLevel)
	}
	warns, escalations := h.timerEntries(c.ID)
	// accept: 2 warnings, 2 escalations of traffic's; handle: 2 warnings and
	// 2 escalations for each part.
	if warns != 4 || escalations != 6 {
		t.Errorf("%d warnings and %d escalations, want 4 and 6", warns, escalations)
	}
	if _, armed, _ := h.svc.Store().Timer(ctx, c.ID); armed {
		t.Error("a timer is still armed with every moment past")
	}
	// Every change was published, in version order.
	var versions []int64
	for _, ch := range h.changes() {
		if ch.GetCase().GetId() == c.ID {
			versions = append(versions, ch.GetCase().GetVersion())
		}
	}
	if !slices.IsSorted(versions) || versions[len(versions)-1] != v.Version {
		t.Errorf("published versions %v, case at %d", versions, v.Version)
	}
}

// TestSweepersRace runs two replicas' sweepers at once on one Redis: each
// moment fires exactly once.
func TestSweepersRace(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	other := h.newReplica()
	chief := h.as(auth.RoleCommander, "")
	var ids []string
	for i := range 12 {
		d := []string{"xuhui", "huangpu"}[i%2]
		ids = append(ids, chief.open(d, fmt.Sprint("call-", i), map[string]any{"lead": "water-affairs", "assist": []string{"gas"}, "event_type": "waterlogging"}).ID)
	}
	total := 0
	var mu sync.Mutex
	for _, at := range []time.Duration{8 * time.Minute, 10 * time.Minute, 20 * time.Minute, 5 * time.Hour} {
		var wg sync.WaitGroup
		for _, svc := range []*dispatch.Service{h.svc, other, h.svc, other} {
			wg.Go(func() {
				n, err := svc.Sweep(ctx, t0.Add(at))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	for _, id := range ids {
		// Two parts, each: accept warn + 2 escalations, handle warn + 2.
		if w, e := h.timerEntries(id); w != 4 || e != 8 {
			t.Errorf("%s: %d warnings and %d escalations, want 4 and 8", id, w, e)
		}
	}
	if total < 12*len(ids) {
		t.Errorf("sweepers reported %d changes, want at least %d", total, 12*len(ids))
	}
}

// TestSweeperThatDies has a sweeper claim timers and die, once before
// applying anything and once between changing a case and publishing the
// change: after the lease runs out another takes over, publishes the
// latest change again and fires what is due.
func TestSweeperThatDies(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	store := h.svc.Store()
	chief := h.as(auth.RoleCommander, "")
	a := chief.open("xuhui", "call-1", map[string]any{"lead": "water-affairs", "event_type": "waterlogging"})
	b := chief.open("xuhui", "call-2", map[string]any{"lead": "water-affairs", "event_type": "waterlogging"})
	at := t0.Add(8 * time.Minute) // the warnings are due; the deadlines at 10m

	claimed, err := store.Claim(ctx, "xuhui", at, dispatch.DefaultSweepLease, 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	// The dead sweeper got as far as warning b, but never published it.
	cb, _, _ := store.Get(ctx, b.ID)
	req, reqID, ok := lifecycle.Due(cb, at)
	if !ok {
		t.Fatal("nothing due on b")
	}
	if _, err := store.Update(ctx, b.ID, cb.GetVersion(), reqID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		return lifecycle.Apply(c, req, lifecycle.System, at)
	}); err != nil {
		t.Fatal(err)
	}
	published := func(id, action string) int {
		n := 0
		for _, ch := range h.changes() {
			if ch.GetCase().GetId() == id && ch.GetChange().GetAction() == action {
				n++
			}
		}
		return n
	}
	if n := published(b.ID, "warn"); n != 0 {
		t.Fatalf("the warning of b is on the topic %d times before anyone published it", n)
	}
	// While the lease holds, a live sweeper leaves both alone.
	if n, err := h.svc.Sweep(ctx, at); err != nil || n != 0 {
		t.Fatalf("sweep under the lease: %d, %v", n, err)
	}
	// After the lease: a's warning fires, b's latest change is published.
	later := at.Add(dispatch.DefaultSweepLease + time.Second)
	n, err := h.svc.Sweep(ctx, later)
	if err != nil || n != 1 {
		t.Fatalf("sweep after the lease: %d, %v", n, err)
	}
	if w, _ := h.timerEntries(a.ID); w != 1 {
		t.Errorf("a: %d warnings", w)
	}
	if w, _ := h.timerEntries(b.ID); w != 1 {
		t.Errorf("b: %d warnings, want the dead sweeper's only", w)
	}
	if n := published(b.ID, "warn"); n != 1 {
		t.Errorf("b's warning published %d times, want once", n)
	}
	if leased, _ := store.Leased(ctx, "xuhui"); len(leased) != 0 {
		t.Errorf("leases left: %v", leased)
	}
	for _, id := range []string{a.ID, b.ID} {
		if due, armed, _ := store.Timer(ctx, id); !armed || !due.Equal(t0.Add(10*time.Minute)) {
			t.Errorf("timer of %s: %v armed %v, want the deadline", id, due, armed)
		}
	}
}

func TestDuplicateAlertRepublishesTheLatestChange(t *testing.T) {
	h := start(t)
	h.run()
	h.produceAlert(firing("a1", "xuhui", true))
	waitFor(t, "the case", func() bool { return len(h.changes()) == 1 })
	id := h.allCases()[0].Id
	h.as(auth.RoleDepartment, "water-affairs").act(id, 200, map[string]any{"action": "accept", "expected_version": 1, "request_id": "w1"})
	h.produceAlert(firing("a1", "xuhui", true))
	waitFor(t, "the republished change", func() bool { return len(h.changes()) == 3 })
	changes := h.changes()
	if last := changes[2]; last.GetCase().GetVersion() != 2 || last.GetChange().GetAction() != "accept" || !proto.Equal(last, changes[1]) {
		t.Errorf("redelivery published v%d %s, want the accept change again", last.GetCase().GetVersion(), last.GetChange().GetAction())
	}
}
