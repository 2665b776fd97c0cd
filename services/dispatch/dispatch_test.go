package dispatch_test

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
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/view"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testCatalog = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
  - {code: huangpu, name: 黄浦区, centre: {lon: 121.49, lat: 31.23}}
departments:
  - {code: water-affairs, name: 水务局}
  - {code: traffic-police, name: 交警}
  - {code: gas, name: 燃气}
event_types:
  - {code: waterlogging, name: 道路积水, owner: water-affairs, class: urgent}
  - {code: drain_blocked, name: 雨水口堵塞, owner: water-affairs, class: standard}
case_classes:
  urgent:   {accept: 10m, handle: 2h, in: natural}
  standard: {accept: 2wh, handle: 3wd}
`

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	k      *kafkatest.Cluster
	redis  *redistest.Server
	writer *stream.Writer
	svc    *dispatch.Service
	signer *auth.Signer
	api    *httptest.Server
	// verifier and cat are kept for replica.
	verifier *auth.Verifier
	cat      *catalog.Catalog

	mu    sync.Mutex
	clock time.Time
}

// now is the service's clock: t0 until the test moves it with setNow.
func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *harness) setNow(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock = t
}

func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, k: kafkatest.Start(t), redis: redistest.Start(t), clock: t0}
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
	h.signer, h.verifier, h.cat = auth.NewSigner(priv), verifier, cat
	h.writer, err = stream.NewWriter(stream.WriterOptions{Brokers: h.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.writer.Close() })
	h.serve(h.redis.Client)
	return h
}

// serve starts the service on rdb and its API.
func (h *harness) serve(rdb redis.UniversalClient) {
	h.t.Helper()
	var err error
	h.svc, err = dispatch.New(dispatch.Options{
		Brokers:    h.k.Brokers,
		Topics:     h.k.Topics,
		Group:      kafkatest.Group("dispatch"),
		Redis:      rdb,
		Writer:     h.writer,
		Catalog:    h.cat,
		Verifier:   h.verifier,
		Registerer: prometheus.NewRegistry(),
		Now:        h.now,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.svc.Routes(mux)
	h.api = httptest.NewServer(mux)
	h.t.Cleanup(h.api.Close)
}

// replica starts another instance of the service, with its API, on the same
// Kafka and Redis (through rdb, h's client when nil), as a second process
// would be: it shares nothing with h in memory.
func (h *harness) replica(rdb redis.UniversalClient) *harness {
	h.t.Helper()
	if rdb == nil {
		rdb = h.redis.Client
	}
	r := &harness{t: h.t, k: h.k, redis: h.redis, writer: h.writer, signer: h.signer, verifier: h.verifier, cat: h.cat, clock: h.now()}
	r.serve(rdb)
	return r
}

// run starts the alert consumer until the test ends.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

func (h *harness) produce(msgs ...kafka.Message) {
	h.t.Helper()
	if err := h.writer.Write(context.Background(), msgs...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) produceAlert(a *cityhubv1.Alert) {
	h.t.Helper()
	m, err := stream.Marshal(h.k.Topics.Alerts, a.GetDistrict(), a)
	if err != nil {
		h.t.Fatal(err)
	}
	h.produce(m)
}

// changes returns what is on the cases topic now.
func (h *harness) changes() []*cityhubv1.CaseChange {
	h.t.Helper()
	var out []*cityhubv1.CaseChange
	err := stream.Replay(context.Background(), h.k.Brokers, h.k.Topics.Cases, func(m kafka.Message) error {
		ch := new(cityhubv1.CaseChange)
		if err := stream.Unmarshal(m, ch); err != nil {
			return err
		}
		if string(m.Key) != ch.GetCase().GetDistrict() {
			h.t.Errorf("change of %s keyed %q", ch.GetCase().GetId(), m.Key)
		}
		out = append(out, ch)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) allCases() []*cityhubv1.Case {
	h.t.Helper()
	page, err := h.svc.Store().List(context.Background(), casestore.Filter{Limit: casestore.MaxLimit})
	if err != nil {
		h.t.Fatal(err)
	}
	return page.Cases
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func firing(id, district string, dispatch bool) *cityhubv1.Alert {
	a := &cityhubv1.Alert{
		Id:        id,
		Rule:      "flood-control/deep-waterlogging",
		Pack:      "flood-control",
		State:     cityhubv1.AlertState_ALERT_STATE_FIRING,
		Severity:  cityhubv1.Severity_SEVERITY_SEVERE,
		Title:     "积水 35 cm, 天平路",
		Labels:    map[string]string{"district": district, "street": "tianping"},
		District:  district,
		EventIds:  []string{"e1", "e2", "e3"},
		StartsAt:  timestamppb.New(t0.Add(-5 * time.Minute)),
		UpdatedAt: timestamppb.New(t0),
		Version:   1,
		EventType: "waterlogging",
		Location:  &cityhubv1.Location{District: district, Street: "tianping"},
	}
	if dispatch {
		a.Dispatch = &cityhubv1.DispatchSpec{
			Lead:   "water-affairs",
			Assist: []string{"traffic-police"},
			Sla:    &cityhubv1.Sla{Accept: durationpb.New(10 * time.Minute), Handle: durationpb.New(2 * time.Hour)},
		}
	}
	return a
}

func TestFiringAlertOpensOneCase(t *testing.T) {
	h := start(t)
	h.run()
	h.produceAlert(firing("a1", "xuhui", true))
	waitFor(t, "a case change", func() bool { return len(h.changes()) > 0 })

	cases := h.allCases()
	if len(cases) != 1 {
		t.Fatalf("%d cases in Redis, want 1", len(cases))
	}
	c := cases[0]
	if c.GetStatus() != cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED || c.GetLead() != "water-affairs" ||
		len(c.GetParts()) != 2 || c.GetAlertId() != "a1" || !strings.HasPrefix(c.GetId(), "xuhui-") {
		t.Errorf("case %v", c)
	}
	if got := c.GetAcceptDueAt().AsTime(); !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("accept due %v, want dispatch time + 10m", got)
	}
	changes := h.changes()
	if len(changes) != 1 || !proto.Equal(changes[0].GetCase(), c) || changes[0].GetChange().GetAction() != "create" {
		t.Fatalf("cases topic holds %v", changes)
	}

	// The same firing delivered again: the creation is published again,
	// and there is still one case.
	h.produceAlert(firing("a1", "xuhui", true))
	waitFor(t, "the change again", func() bool { return len(h.changes()) == 2 })
	if cases := h.allCases(); len(cases) != 1 || cases[0].GetId() != c.GetId() {
		t.Fatalf("after redelivery: %d cases", len(cases))
	}
	if again := h.changes()[1]; !proto.Equal(again, changes[0]) {
		t.Errorf("redelivery published %v, want the first change", again)
	}
}

func TestAlertsThatOpenNothing(t *testing.T) {
	h := start(t)
	h.run()
	shadow := firing("shadow", "xuhui", true)
	shadow.Shadow = true
	resolved := firing("resolved", "xuhui", true)
	resolved.State = cityhubv1.AlertState_ALERT_STATE_RESOLVED
	unknown := firing("elsewhere", "atlantis", true)
	unknown.Labels["district"] = "xuhui"
	for _, a := range []*cityhubv1.Alert{firing("plain", "xuhui", false), shadow, resolved} {
		h.produceAlert(a)
	}
	m, _ := stream.Marshal(h.k.Topics.Alerts, "xuhui", unknown) // keyed like the rest: one partition, in order
	h.produce(m, kafka.Message{Topic: h.k.Topics.Alerts, Key: []byte("xuhui"), Value: []byte{0xff, 0x01}})
	h.produceAlert(firing("last", "xuhui", true)) // behind the others on the same partition

	waitFor(t, "the last alert's case", func() bool { return len(h.changes()) > 0 })
	cases := h.allCases()
	if len(cases) != 1 || cases[0].GetAlertId() != "last" {
		t.Fatalf("cases %v, want only the last alert's", cases)
	}
	var dlq []kafka.Message
	waitFor(t, "two dead letters", func() bool {
		dlq = nil
		if err := stream.Replay(context.Background(), h.k.Brokers, h.k.Topics.EventsDLQ, func(m kafka.Message) error {
			dlq = append(dlq, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return len(dlq) >= 2
	})
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, m := range dlq {
		if stream.Header(m, stream.DLQTopicHeader) != h.k.Topics.Alerts || stream.Header(m, stream.DLQReasonHeader) == "" {
			t.Errorf("dead letter headers %v", m.Headers)
		}
	}
}

// client calls the API as one principal.
type client struct {
	h     *harness
	token string
}

func (h *harness) as(role auth.Role, dept string, districts ...string) *client {
	h.t.Helper()
	p := auth.Principal{Subject: string(role) + "-" + dept, Role: role, Dept: dept, Districts: districts}
	if role == auth.RoleSource {
		p.Sources = []string{"hotline"}
	}
	tok, err := h.signer.Sign(p, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return &client{h, tok}
}

func (c *client) do(method, path string, body any) (int, []byte) {
	c.h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.h.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.h.api.URL+path, r)
	if err != nil {
		c.h.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.h.t.Fatal(err)
	}
	return resp.StatusCode, out
}

type listBody struct {
	Items      []view.Case `json:"items"`
	NextCursor string      `json:"next_cursor"`
}

func (c *client) list(query string) (int, listBody) {
	c.h.t.Helper()
	status, b := c.do("GET", "/v1/cases?"+query, nil)
	var l listBody
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &l); err != nil {
			c.h.t.Fatalf("list body %s: %v", b, err)
		}
		if l.Items == nil {
			c.h.t.Errorf("list items are null, want []")
		}
	}
	return status, l
}

// seed opens cases directly in the store: n in xuhui (water-affairs leads,
// traffic-police assists) and n in huangpu (gas leads).
func (h *harness) seed(n int) (xuhui, huangpu []*cityhubv1.Case) {
	h.t.Helper()
	for i := range n {
		for _, d := range []string{"xuhui", "huangpu"} {
			c := &cityhubv1.Case{
				Id: casestore.NewID(d, t0.Add(time.Duration(i)*time.Second)), Version: 1,
				Status: cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED, Title: "case", District: d,
				Origin: casestore.OriginAlert, AlertId: fmt.Sprintf("seed-%d", i), AlertStartsAt: timestamppb.New(t0),
				CreatedAt: timestamppb.New(t0.Add(time.Duration(i) * time.Second)),
			}
			if d == "xuhui" {
				c.Lead, c.Assist = "water-affairs", []string{"traffic-police"}
				c.Parts = []*cityhubv1.Part{
					{Department: "water-affairs", Lead: true, Status: cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED},
					{Department: "traffic-police", Status: cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED},
				}
				xuhui = append(xuhui, c)
			} else {
				c.Lead = "gas"
				c.Parts = []*cityhubv1.Part{{Department: "gas", Lead: true, Status: cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED}}
				huangpu = append(huangpu, c)
			}
			e := &cityhubv1.AuditEntry{Version: 1, Action: "create", RequestId: "seed", To: c.Status}
			if _, _, err := h.svc.Store().Create(context.Background(), c, e); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	return xuhui, huangpu
}

func TestAPIAuthAndScope(t *testing.T) {
	h := start(t)
	xuhui, huangpu := h.seed(3)
	anon := &client{h, ""}
	if status, _ := anon.do("GET", "/v1/cases", nil); status != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", status)
	}
	if status, _ := (&client{h, "garbage"}).do("GET", "/v1/cases/"+xuhui[0].Id, nil); status != http.StatusUnauthorized {
		t.Errorf("bad token: %d, want 401", status)
	}
	if status, _ := h.as(auth.RoleSource, "").do("GET", "/v1/cases", nil); status != http.StatusForbidden {
		t.Errorf("source role: %d, want 403", status)
	}

	tests := []struct {
		name   string
		c      *client
		query  string
		sees   int
		hidden *cityhubv1.Case // answers 404 to this caller
		shown  *cityhubv1.Case
	}{
		{"commander", h.as(auth.RoleCommander, ""), "", 6, nil, huangpu[0]},
		{"viewer of all", h.as(auth.RoleViewer, ""), "", 6, nil, xuhui[0]},
		{"dispatcher of huangpu", h.as(auth.RoleDispatcher, "", "huangpu"), "", 3, xuhui[0], huangpu[1]},
		{"dispatcher of huangpu asking for xuhui", h.as(auth.RoleDispatcher, "", "huangpu"), "district=xuhui", 0, xuhui[1], nil},
		{"viewer of xuhui", h.as(auth.RoleViewer, "", "xuhui"), "", 3, huangpu[0], xuhui[2]},
		{"lead department", h.as(auth.RoleDepartment, "water-affairs"), "", 3, huangpu[0], xuhui[0]},
		{"assisting department", h.as(auth.RoleDepartment, "traffic-police"), "", 3, huangpu[1], xuhui[1]},
		{"department asking for another's", h.as(auth.RoleDepartment, "traffic-police"), "department=gas", 0, huangpu[2], nil},
		{"gas", h.as(auth.RoleDepartment, "gas"), "", 3, xuhui[0], huangpu[0]},
		{"commander filtering by department", h.as(auth.RoleCommander, ""), "department=traffic-police", 3, nil, nil},
		{"commander filtering by district", h.as(auth.RoleCommander, ""), "district=huangpu&status=dispatched", 3, nil, nil},
		{"commander filtering by status", h.as(auth.RoleCommander, ""), "status=closed", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, l := tt.c.list(tt.query)
			if status != http.StatusOK || len(l.Items) != tt.sees {
				t.Errorf("list: %d with %d items, want 200 with %d", status, len(l.Items), tt.sees)
			}
			if tt.hidden != nil {
				if status, body := tt.c.do("GET", "/v1/cases/"+tt.hidden.Id, nil); status != http.StatusNotFound {
					t.Errorf("case outside scope: %d %s, want 404", status, body)
				}
				for _, it := range l.Items {
					if it.ID == tt.hidden.Id {
						t.Errorf("list shows %s", it.ID)
					}
				}
			}
			if tt.shown != nil {
				status, body := tt.c.do("GET", "/v1/cases/"+tt.shown.Id, nil)
				var v view.Case
				if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.ID != tt.shown.Id || len(v.History) != 1 {
					t.Errorf("case in scope: %d %s", status, body)
				}
			}
		})
	}
	if status, _ := h.as(auth.RoleCommander, "").do("GET", "/v1/cases/xuhui-01jz2g93z0ptff52h35j58yj80", nil); status != http.StatusNotFound {
		t.Errorf("missing case: %d", status)
	}
	if status, _ := h.as(auth.RoleCommander, "").do("GET", "/v1/cases/..%2f..%2fetc", nil); status != http.StatusNotFound {
		t.Errorf("malformed id: %d", status)
	}
}

func TestAPIListPagingAndBadParams(t *testing.T) {
	h := start(t)
	xuhui, huangpu := h.seed(7)
	c := h.as(auth.RoleCommander, "")
	seen := map[string]bool{}
	query := url.Values{"limit": {"3"}}
	for pages := 1; ; pages++ {
		status, l := c.list(query.Encode())
		if status != http.StatusOK || len(l.Items) > 3 {
			t.Fatalf("page %d: %d with %d items", pages, status, len(l.Items))
		}
		for _, it := range l.Items {
			if seen[it.ID] {
				t.Errorf("%s listed twice", it.ID)
			}
			seen[it.ID] = true
		}
		if l.NextCursor == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		query.Set("cursor", l.NextCursor)
	}
	if len(seen) != len(xuhui)+len(huangpu) {
		t.Errorf("paging saw %d cases, want %d", len(seen), len(xuhui)+len(huangpu))
	}

	for query, param := range map[string]string{
		"limit=0":                  "limit",
		"limit=501":                "limit",
		"limit=ten":                "limit",
		"status=lost":              "status",
		"district=atlantis":        "district",
		"department=secret-police": "department",
		"cursor=%%%":               "",
		"cursor=bm90IGEgY3Vyc29y":  "cursor",
		"colour=red":               "colour",
		"status=new&status=closed": "status",
	} {
		status, body := c.do("GET", "/v1/cases?"+query, nil)
		var e struct {
			Error struct {
				Code    string            `json:"code"`
				Details map[string]string `json:"details"`
			} `json:"error"`
		}
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || (param != "" && e.Error.Details["parameter"] != param) {
			t.Errorf("%s: %d %s, want 400 naming %q", query, status, body, param)
		}
	}
}

type action struct {
	Action          string `json:"action"`
	Department      string `json:"department,omitempty"`
	Note            string `json:"note,omitempty"`
	ExpectedVersion int64  `json:"expected_version"`
	RequestID       string `json:"request_id"`
	Pass            *bool  `json:"pass,omitempty"`
}

func TestAPIActions(t *testing.T) {
	h := start(t)
	xuhui, _ := h.seed(1)
	id := xuhui[0].Id
	path := "/v1/cases/" + id + "/actions"
	water := h.as(auth.RoleDepartment, "water-affairs")
	traffic := h.as(auth.RoleDepartment, "traffic-police")
	gas := h.as(auth.RoleDepartment, "gas")
	disp := h.as(auth.RoleDispatcher, "", "xuhui")
	yes := true
	steps := []struct {
		name string
		c    *client
		body any
		want int
	}{
		{"viewer may not act", h.as(auth.RoleViewer, ""), action{Action: "accept", ExpectedVersion: 1, RequestID: "v"}, 403},
		{"gas cannot see the case", gas, action{Action: "accept", ExpectedVersion: 1, RequestID: "g"}, 404},
		{"other district", h.as(auth.RoleDispatcher, "", "huangpu"), action{Action: "cancel", Note: "x", ExpectedVersion: 1, RequestID: "h"}, 404},
		{"unknown field", water, `{"action":"accept","expected_version":1,"request_id":"w","colour":"red"}`, 400},
		{"no request id", water, action{Action: "accept", ExpectedVersion: 1}, 400},
		{"no version", water, action{Action: "accept", RequestID: "w"}, 400},
		{"unknown action", water, action{Action: "explode", ExpectedVersion: 1, RequestID: "w"}, 400},
		{"two objects", water, `{"action":"accept","expected_version":1,"request_id":"w"} {}`, 400},
		{"too large", water, `{"note":"` + strings.Repeat("x", dispatch.MaxBodyBytes) + `"}`, 413},
		{"water accepts for traffic", water, action{Action: "accept", Department: "traffic-police", ExpectedVersion: 1, RequestID: "w0"}, 403},
		{"water accepts", water, action{Action: "accept", ExpectedVersion: 1, RequestID: "w1"}, 200},
		{"repeated request", water, action{Action: "accept", ExpectedVersion: 1, RequestID: "w1"}, 200},
		{"stale version", traffic, action{Action: "accept", ExpectedVersion: 1, RequestID: "t1"}, 409},
		{"traffic accepts", traffic, action{Action: "accept", ExpectedVersion: 2, RequestID: "t1"}, 200},
		{"verify too early", disp, action{Action: "verify", Pass: &yes, ExpectedVersion: 3, RequestID: "d1"}, 409},
		{"water handles", water, action{Action: "handle", Note: "pumped out", ExpectedVersion: 3, RequestID: "w2"}, 200},
		{"traffic handles", traffic, action{Action: "handle", Note: "diverted", ExpectedVersion: 4, RequestID: "t2"}, 200},
		{"department may not verify", water, action{Action: "verify", Pass: &yes, ExpectedVersion: 5, RequestID: "w3"}, 403},
		{"no suspending a handled case", water, action{Action: "suspend", Note: "x", ExpectedVersion: 5, RequestID: "w4"}, 409},
		{"dispatcher verifies", disp, action{Action: "verify", Pass: &yes, ExpectedVersion: 5, RequestID: "d2"}, 200},
		{"dispatcher comments", disp, action{Action: "comment", Note: "well done", ExpectedVersion: 6, RequestID: "d3"}, 200},
		{"cancel a closed case", disp, action{Action: "cancel", Note: "x", ExpectedVersion: 7, RequestID: "d4"}, 409},
	}
	var first []byte
	for _, st := range steps {
		status, body := st.c.do("POST", path, st.body)
		if status != st.want {
			t.Fatalf("%s: %d %s, want %d", st.name, status, body, st.want)
		}
		switch st.name {
		case "water accepts":
			first = body
		case "repeated request":
			if !bytes.Equal(body, first) {
				t.Errorf("repeated request answered %s, want %s", body, first)
			}
		}
	}
	status, body := disp.do("GET", "/v1/cases/"+id, nil)
	var v view.Case
	if status != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("get: %d %s", status, body)
	}
	if v.Status != "closed" || v.Version != 7 || len(v.History) != 7 {
		t.Errorf("case %s v%d with %d entries, want closed v7 with 7", v.Status, v.Version, len(v.History))
	}
	// Every change is on the topic: six actions (the repeat published again).
	if got := len(h.changes()); got != 7 {
		t.Errorf("%d changes published, want 7", got)
	}
}

func TestAPICreateByHand(t *testing.T) {
	h := start(t)
	disp := h.as(auth.RoleDispatcher, "", "xuhui")
	body := map[string]any{
		"title": "井盖缺失", "district": "xuhui", "severity": "moderate", "event_type": "waterlogging",
		"lead": "water-affairs", "sla": map[string]string{"accept": "30m"}, "request_id": "call-17",
	}
	status, b1 := disp.do("POST", "/v1/cases", body)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b1)
	}
	status, b2 := disp.do("POST", "/v1/cases", body)
	if status != http.StatusOK || !bytes.Equal(b1, b2) {
		t.Errorf("repeated create: %d %s, want 200 with %s", status, b2, b1)
	}
	if n := len(h.allCases()); n != 1 {
		t.Errorf("%d cases, want 1", n)
	}
	body["district"] = "huangpu"
	body["request_id"] = "call-18"
	if status, b := disp.do("POST", "/v1/cases", body); status != http.StatusForbidden {
		t.Errorf("outside district: %d %s", status, b)
	}
	if status, _ := h.as(auth.RoleDepartment, "gas").do("POST", "/v1/cases", body); status != http.StatusForbidden {
		t.Errorf("department creating: %d", status)
	}
	body["lead"] = "nobody"
	if status, _ := h.as(auth.RoleCommander, "").do("POST", "/v1/cases", body); status != http.StatusBadRequest {
		t.Errorf("unknown lead: %d", status)
	}
}

func TestRaceOnOneAction(t *testing.T) {
	h := start(t)
	xuhui, _ := h.seed(1)
	path := "/v1/cases/" + xuhui[0].Id + "/actions"
	water := h.as(auth.RoleDepartment, "water-affairs")
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			status, _ := water.do("POST", path, action{Action: "accept", ExpectedVersion: 1, RequestID: fmt.Sprintf("r-%d", i)})
			mu.Lock()
			counts[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[200] != 1 || counts[409] != 49 {
		t.Errorf("statuses %v, want one 200 and 49 409", counts)
	}
}

func TestRebuildFromKafka(t *testing.T) {
	h := start(t)
	h.run()
	for i := range 4 {
		h.produceAlert(firing(fmt.Sprintf("a%d", i), []string{"xuhui", "huangpu"}[i%2], true))
	}
	waitFor(t, "four cases", func() bool { return len(h.changes()) >= 4 })
	// Move some cases along through the API, so versions differ.
	water := h.as(auth.RoleDepartment, "water-affairs")
	for i, c := range h.allCases() {
		for v := range i {
			status, body := water.do("POST", "/v1/cases/"+c.Id+"/actions", action{Action: "comment", Note: "on it", ExpectedVersion: int64(v + 1), RequestID: fmt.Sprintf("c%d", v)})
			if status != 200 {
				t.Fatalf("comment: %d %s", status, body)
			}
		}
	}
	want := h.allCases()

	fresh := redistest.Start(t)
	store := casestore.New(fresh.Client, h.svc.Store().Districts())
	n, err := dispatch.Rebuild(context.Background(), h.k.Brokers, h.k.Topics.Cases, store)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4+0+1+2+3 {
		t.Errorf("rebuild restored %d changes, want 10", n)
	}
	page, err := store.List(context.Background(), casestore.Filter{Limit: casestore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Cases) != len(want) {
		t.Fatalf("rebuilt %d cases, want %d", len(page.Cases), len(want))
	}
	for i := range want {
		if !proto.Equal(page.Cases[i], want[i]) {
			t.Errorf("rebuilt case\n%v\nwant\n%v", page.Cases[i], want[i])
		}
		_, gotHist, err1 := store.Get(context.Background(), want[i].Id)
		_, wantHist, err2 := h.svc.Store().Get(context.Background(), want[i].Id)
		if err1 != nil || err2 != nil || len(gotHist) != len(wantHist) {
			t.Errorf("history of %s: %d entries (%v), want %d (%v)", want[i].Id, len(gotHist), err1, len(wantHist), err2)
		}
	}
	open1, err1 := store.OpenCases(context.Background())
	open2, err2 := h.svc.Store().OpenCases(context.Background())
	if err1 != nil || err2 != nil || len(open1) != len(open2) || len(open1) != 4 {
		t.Errorf("open cases after rebuild: %d (%v), before: %d (%v)", len(open1), err1, len(open2), err2)
	}
	// A second rebuild over the same Redis changes nothing.
	if _, err := dispatch.Rebuild(context.Background(), h.k.Brokers, h.k.Topics.Cases, store); err != nil {
		t.Fatal(err)
	}
	again, _ := store.List(context.Background(), casestore.Filter{Limit: casestore.MaxLimit})
	for i := range want {
		if !proto.Equal(again.Cases[i], want[i]) {
			t.Errorf("second rebuild changed %s", want[i].Id)
		}
	}
}

// TestOneBatchOfManyAlerts: the alerts of a batch are applied side by
// side, yet each opens one case, the changes are published in the
// batch's order, and a street alert that a district-wide alert inhibits
// links its case into that alert's even when the district alert comes
// behind it in the same batch.
func TestOneBatchOfManyAlerts(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	street := firing("street", "xuhui", true)
	if err := dispatch.ApplyAlerts(h.svc, ctx, street); err != nil {
		t.Fatal(err)
	}
	var batch []*cityhubv1.Alert
	inhibited := proto.CloneOf(street)
	inhibited.Version, inhibited.InhibitedBy = 2, []string{"district"}
	batch = append(batch, inhibited)
	for i := range 40 {
		a := firing(fmt.Sprintf("a%02d", i), []string{"xuhui", "huangpu"}[i%2], true)
		batch = append(batch, a)
		if i%10 == 0 {
			again := proto.CloneOf(a) // the same firing twice in one batch
			batch = append(batch, again)
		}
	}
	district := firing("district", "xuhui", true)
	district.Labels = map[string]string{"district": "xuhui"}
	batch = append(batch, district)
	if err := dispatch.ApplyAlerts(h.svc, ctx, batch...); err != nil {
		t.Fatal(err)
	}

	cases := h.allCases()
	byAlert := map[string]*cityhubv1.Case{}
	for _, c := range cases {
		if byAlert[c.GetAlertId()] != nil {
			t.Errorf("alert %s opened two cases", c.GetAlertId())
		}
		byAlert[c.GetAlertId()] = c
	}
	if len(cases) != 42 {
		t.Errorf("%d cases, want 42 (the street, 40 alerts, the district)", len(cases))
	}
	if got, want := byAlert["street"].GetLinkedInto(), byAlert["district"].GetId(); got == "" || got != want {
		t.Errorf("the street case is linked into %q, want the district's %s", got, want)
	}
	// Published in the batch's order, on each district's partition: the
	// street's opening, then the alerts' (a repeated firing published
	// again), then the district's.
	order := map[string][]string{}
	for _, ch := range h.changes() {
		if ch.GetChange().GetAction() == "create" {
			order[ch.GetCase().GetDistrict()] = append(order[ch.GetCase().GetDistrict()], ch.GetCase().GetAlertId())
		}
	}
	want := map[string][]string{"xuhui": {"street"}}
	for _, a := range batch[1:] {
		want[a.GetDistrict()] = append(want[a.GetDistrict()], a.GetId())
	}
	for d := range want {
		if !slices.Equal(order[d], want[d]) {
			t.Errorf("%s: creations published in the order\n%v\nwant\n%v", d, order[d], want[d])
		}
	}
	// On the district's partition the district case's creation comes
	// before the link recorded on it.
	var districtChanges []string
	for _, ch := range h.changes() {
		if ch.GetCase().GetId() == byAlert["district"].GetId() {
			districtChanges = append(districtChanges, ch.GetChange().GetAction())
		}
	}
	if !slices.Equal(districtChanges, []string{"create", "attach"}) {
		t.Errorf("the district case's changes came in the order %v, want create, attach", districtChanges)
	}
}
