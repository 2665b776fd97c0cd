package open311_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/intake/open311"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// t0 is the hub's clock when a test starts.
var t0 = time.Date(2026, 7, 1, 10, 0, 0, 0, shanghai)

var shanghai = time.FixedZone("CST", 8*3600)

// errLogDown stands for intake.ErrUnavailable.
var errLogDown = errors.New("the event log did not acknowledge")

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// fakeIntake validates events as intake does, with the real decoder, and
// keeps them instead of writing them to Kafka.
type fakeIntake struct {
	mu   sync.Mutex
	dec  events.Decoder
	err  error
	vias []string
	in   []*events.Input
	who  []auth.Principal
}

func (f *fakeIntake) Submit(_ context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	dec := f.dec
	dec.SpeaksFor = p.SpeaksFor
	evs, err := dec.DecodeInputs(in)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.GetId()
	}
	f.vias = append(f.vias, via)
	f.in = append(f.in, in...)
	f.who = append(f.who, p)
	return ids, nil
}

func (f *fakeIntake) fail(err error) { f.mu.Lock(); defer f.mu.Unlock(); f.err = err }

// submitted returns the events taken so far.
func (f *fakeIntake) submitted() []*events.Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*events.Input(nil), f.in...)
}

// fakeCases is the cases the hub knows, by source/event id.
type fakeCases struct {
	mu    sync.Mutex
	cases map[string]open311.Status
	err   error
	calls int
}

func (c *fakeCases) Follow(_ context.Context, _, source, id string) (open311.Status, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return open311.Status{}, false, c.err
	}
	st, ok := c.cases[source+"/"+id]
	return st, ok, nil
}

func (c *fakeCases) set(source, id string, st open311.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cases[source+"/"+id] = st
}

type harness struct {
	srv    *httptest.Server
	signer *auth.Signer
	intake *fakeIntake
	cases  *fakeCases
	store  *open311.RedisStore
	rdb    redis.UniversalClient
	clock  *clock
	reg    *prometheus.Registry
	cat    *catalog.Catalog
}

func loadCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// start serves the API over a real redis-server, with fake intake and
// cases; opts may change the options before New.
func start(t *testing.T, opts ...func(*open311.Options)) *harness {
	t.Helper()
	cat := loadCatalog(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	rdb := redistest.Start(t).Client
	h := &harness{
		signer: auth.NewSigner(priv),
		intake: &fakeIntake{dec: events.Decoder{Catalog: cat, Now: clk.Now}},
		cases:  &fakeCases{cases: map[string]open311.Status{}},
		store:  open311.NewRedisStore(rdb, open311.StoreOptions{Now: clk.Now}),
		rdb:    rdb,
		clock:  clk,
		reg:    prometheus.NewRegistry(),
		cat:    cat,
	}
	o := open311.Options{
		Catalog: cat, Submit: h.intake.Submit, Unavailable: errLogDown, Verifier: v,
		Requests: h.store, Cases: h.cases, Jurisdiction: "city.example.gov",
		Changeset:  time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC),
		Registerer: h.reg, Now: clk.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	handler, err := open311.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	handler.Routes(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// key returns an api_key for p.
func (h *harness) key(t *testing.T, p auth.Principal) string {
	t.Helper()
	if p.Subject == "" {
		p.Subject = "test"
	}
	tok, err := h.signer.Sign(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sourceKey is the api_key of a citizens' app posting as citizen_app.
func (h *harness) sourceKey(t *testing.T) string {
	return h.key(t, auth.Principal{Role: auth.RoleSource, Sources: []string{"citizen_app"}})
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// get reads path as a wall screen's viewer token would; anonymous reads
// are getAnon's.
func (h *harness) get(t *testing.T, path string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.key(t, auth.Principal{Subject: "wall", Role: auth.RoleViewer}))
	return h.do(t, req)
}

func (h *harness) getAnon(t *testing.T, path string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h.do(t, req)
}

// post sends form to requests.{f}; header pairs are added to the request.
func (h *harness) post(t *testing.T, f string, form url.Values, header ...string) answer {
	t.Helper()
	return h.postBody(t, f, "application/x-www-form-urlencoded; charset=utf-8", form.Encode(), header...)
}

func (h *harness) postBody(t *testing.T, f, contentType, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+open311.Prefix+"requests."+f, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return h.do(t, req)
}

// report is a good report of waterlogging on Caoxi Road, in Xuhui.
func (h *harness) report(t *testing.T) url.Values {
	return url.Values{
		"api_key":                   {h.sourceKey(t)},
		"jurisdiction_id":           {"city.example.gov"},
		"service_code":              {"waterlogging"},
		"lat":                       {"31.1880"},
		"long":                      {"121.4372"},
		"address_string":            {"漕溪北路 88 号"},
		"description":               {"积水没过脚踝，车辆绕行"},
		"attribute[water_depth_cm]": {"15"},
	}
}

// create posts form and returns the service_request_id.
func (h *harness) create(t *testing.T, form url.Values) string {
	t.Helper()
	a := h.post(t, "json", form)
	if a.status != http.StatusOK {
		t.Fatalf("POST = %d %s", a.status, a.body)
	}
	got := conforms(t, "post_response", "json", a.body).([]specRequest)
	if len(got) != 1 || got[0].ServiceRequestID == "" {
		t.Fatalf("POST answered %s", a.body)
	}
	return got[0].ServiceRequestID
}

// errorsOf parses an error answer in f and returns its descriptions,
// checking that each carries the HTTP status as its code.
func errorsOf(t *testing.T, f string, a answer) []string {
	t.Helper()
	errs := conforms(t, "errors", f, a.body).([]specError)
	if len(errs) == 0 {
		t.Fatalf("an error answer without errors: %s", a.body)
	}
	var out []string
	for _, e := range errs {
		if e.Code != a.status {
			t.Errorf("error code %d in an answer of status %d", e.Code, a.status)
		}
		out = append(out, e.Description)
	}
	return out
}

func ptr(f float64) *float64 { return &f }

func fmtFloat(f *float64) string {
	if f == nil {
		return "nil"
	}
	return fmt.Sprint(*f)
}
