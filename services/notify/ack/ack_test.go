package ack

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestSignAndVerify(t *testing.T) {
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_790_000_000, 0)
	c := Claims{Case: "xuhui-01", Dept: "gas", Person: "li-na", Via: "sms", Expires: now.Add(time.Hour).Unix()}
	tok := s.Sign(c)
	if got, err := s.Verify(tok, now); err != nil || got != c {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	other, _ := NewSigner([]byte("fedcba9876543210fedcba9876543210"))
	payload, sig, _ := strings.Cut(tok, ".")
	altered := Claims{Case: "xuhui-01", Dept: "fire", Person: "li-na", Via: "sms", Expires: c.Expires}
	for name, bad := range map[string]string{
		"another key":    other.Sign(c),
		"altered claims": strings.Split(s.Sign(altered), ".")[0] + "." + sig,
		"no signature":   payload,
		"garbage":        "%%%.***",
		"empty":          "",
		"too long":       strings.Repeat("a", MaxLinkBytes) + "." + sig,
	} {
		if _, err := s.Verify(bad, now); err != ErrForged {
			t.Errorf("%s: %v, want ErrForged", name, err)
		}
	}
	if _, err := s.Verify(tok, now.Add(time.Hour)); err != ErrExpired {
		t.Errorf("an expired link: %v", err)
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("a short key was taken")
	}
}

// harness is a case service on a real redis-server, with a gas leak case
// dispatched to the gas company and the fire brigade, and the link pages.
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	signer *Signer
	svc    *cases.Service
	id     string
	mu     sync.Mutex
	pub    []*cityhubv1.CaseChange
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cal, err := workcal.FromCatalog(cat.WorkCalendar())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Start(t).Client
	h := &harness{t: t}
	h.svc, err = cases.New(cases.Options{Store: casestore.New(rdb, cat.DistrictCodes()), Catalog: cat, Calendar: cal,
		Publisher: cases.PublisherFunc(func(_ context.Context, c *cityhubv1.CaseChange) error {
			h.mu.Lock()
			h.pub = append(h.pub, c)
			h.mu.Unlock()
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	h.signer, _ = NewSigner(key)
	mux := http.NewServeMux()
	(&Handler{Signer: h.signer, Cases: h.svc, Redis: rdb, Catalog: cat}).Routes(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	c, _, err := h.svc.Create(context.Background(), &auth.Principal{Subject: "d", Role: auth.RoleCommander},
		cases.CreateRequest{Title: "燃气泄漏 天平路", District: "xuhui", Lead: "gas", Assist: []string{"fire"}, Sla: &cases.SLA{Accept: "10m", Handle: "2h"}, RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	h.id = c.Case.GetId()
	return h
}

func (h *harness) link(dept, person string, expires time.Duration) string {
	return h.srv.URL + "/ack/" + h.signer.Sign(Claims{Case: h.id, Dept: dept, Person: person, Via: "sms", Expires: time.Now().Add(expires).Unix()})
}

func (h *harness) get(u string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) post(u string, form url.Values) (int, string) {
	h.t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) current() *cityhubv1.Case {
	c, err := h.svc.Get(context.Background(), &auth.Principal{Subject: "c", Role: auth.RoleCommander}, h.id)
	if err != nil {
		h.t.Fatal(err)
	}
	return c.Case
}

func TestAcceptThroughTheLink(t *testing.T) {
	h := newHarness(t)
	link := h.link("gas", "li-na", time.Hour)
	code, body := h.get(link)
	if code != 200 || !strings.Contains(body, "燃气泄漏 天平路") || !strings.Contains(body, `value="accept"`) {
		t.Fatalf("GET = %d %s", code, body)
	}
	before := h.current().GetVersion()
	code, body = h.post(link, url.Values{"action": {"accept"}})
	if code != 200 || !strings.Contains(body, "已签收") {
		t.Fatalf("POST accept = %d %s", code, body)
	}
	c := h.current()
	var gas *cityhubv1.Part
	for _, p := range c.GetParts() {
		if p.GetDepartment() == "gas" {
			gas = p
		}
	}
	if gas.GetStatus() != cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED || c.GetVersion() != before+1 {
		t.Fatalf("gas part %v, version %d", gas.GetStatus(), c.GetVersion())
	}
	last := h.pub[len(h.pub)-1].GetChange()
	if last.GetActor() != "li-na" || last.GetVia() != "notify:sms" || last.GetDepartment() != "gas" {
		t.Errorf("audit entry %v", last)
	}
	// Single use: the link, used, changes nothing more.
	if code, body := h.post(link, url.Values{"action": {"return"}, "note": {"not ours"}}); code != http.StatusConflict || !strings.Contains(body, "已经用过") {
		t.Errorf("a used link: %d", code)
	}
	if code, body := h.get(link); code != 200 || strings.Contains(body, `value="accept"`) {
		t.Errorf("a used link's page still offers the actions: %d", code)
	}
	if v := h.current().GetVersion(); v != before+1 {
		t.Errorf("version %d after a used link", v)
	}
}

func TestReturnThroughTheLink(t *testing.T) {
	h := newHarness(t)
	code, body := h.post(h.link("fire", "he-jun", time.Hour), url.Values{"action": {"return"}, "note": {"不属于消防"}})
	if code != 200 || !strings.Contains(body, "已退回") {
		t.Fatalf("POST return = %d %s", code, body)
	}
	if s := h.current().GetStatus(); s != cityhubv1.CaseStatus_CASE_STATUS_NEW {
		t.Errorf("case %v after a return", s)
	}
}

// Forged, expired and stray links get a clear page and change nothing.
func TestBadLinksChangeNothing(t *testing.T) {
	h := newHarness(t)
	before := h.current().GetVersion()
	good := h.link("gas", "li-na", time.Hour)
	payload, _, _ := strings.Cut(strings.TrimPrefix(good, h.srv.URL+"/ack/"), ".")
	other, _ := NewSigner([]byte("fedcba9876543210fedcba9876543210"))
	noReason := h.link("gas", "zhang-wei", time.Hour)
	for _, tc := range []struct {
		name string
		link string
		form url.Values
		want int
	}{
		{"forged", h.srv.URL + "/ack/" + other.Sign(Claims{Case: h.id, Dept: "gas", Person: "x", Expires: time.Now().Add(time.Hour).Unix()}), url.Values{"action": {"accept"}}, http.StatusForbidden},
		{"altered", h.srv.URL + "/ack/" + payload + ".AAAA", url.Values{"action": {"accept"}}, http.StatusForbidden},
		{"expired", h.link("gas", "li-na", -time.Minute), url.Values{"action": {"accept"}}, http.StatusGone},
		{"another department's case", h.link("water-affairs", "zhao-min", time.Hour), url.Values{"action": {"accept"}}, http.StatusNotFound},
		{"no action", h.link("gas", "li-na", time.Hour), url.Values{}, http.StatusBadRequest},
		{"return without a reason", noReason, url.Values{"action": {"return"}}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := h.post(tc.link, tc.form)
			if code != tc.want || !strings.Contains(body, "<h1>") {
				t.Errorf("POST = %d, want %d: %s", code, tc.want, body)
			}
		})
	}
	if v := h.current().GetVersion(); v != before {
		t.Errorf("version %d → %d after bad links", before, v)
	}
	// A request refused for what it said leaves the link usable.
	if code, _ := h.post(noReason, url.Values{"action": {"accept"}}); code != 200 {
		t.Errorf("the link after a refused request: %d", code)
	}
}
