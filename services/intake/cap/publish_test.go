package cap_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	capxml "github.com/cityhub/cityhub/services/intake/cap"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

var t0 = time.Date(2026, 7, 12, 6, 0, 0, 0, time.UTC)

// change is one version of alert fp-1: waterlogging on a street of Xuhui.
func change(version int64, state cityhubv1.AlertState, sev cityhubv1.Severity) *cityhubv1.Alert {
	return &cityhubv1.Alert{
		Id: "0123456789abcdef", Rule: "flood-control/deep-waterlogging", State: state, Severity: sev,
		Title: "道路积水 35 cm：漕溪北路", Summary: "徐汇区 漕溪北路 积水 35 cm", District: "xuhui", EventType: "waterlogging",
		Location:  &cityhubv1.Location{District: "xuhui", Street: "漕溪北路", Lon: 121.4365, Lat: 31.1886},
		StartsAt:  timestamppb.New(t0),
		UpdatedAt: timestamppb.New(t0.Add(time.Duration(version) * time.Minute)),
		Version:   version,
	}
}

const (
	firing   = cityhubv1.AlertState_ALERT_STATE_FIRING
	resolved = cityhubv1.AlertState_ALERT_STATE_RESOLVED
	pending  = cityhubv1.AlertState_ALERT_STATE_PENDING
	moderate = cityhubv1.Severity_SEVERITY_MODERATE
	severe   = cityhubv1.Severity_SEVERITY_SEVERE
	minor    = cityhubv1.Severity_SEVERITY_MINOR
)

type pubHarness struct {
	redis *redistest.Server
	pub   *capxml.Publisher
	srv   *httptest.Server
	reg   *prometheus.Registry
}

func startPublisher(t *testing.T, publishes func(*cityhubv1.Alert) bool) *pubHarness {
	t.Helper()
	r := redistest.Start(t)
	return newPublisher(t, r, publishes)
}

func newPublisher(t *testing.T, r *redistest.Server, publishes func(*cityhubv1.Alert) bool) *pubHarness {
	t.Helper()
	cat := testCatalog(t)
	reg := prometheus.NewRegistry()
	p, err := capxml.NewPublisher(capxml.PublisherOptions{
		Config: testConfig(t, cat), Catalog: cat, Redis: r.Client, Publishes: publishes, Registerer: reg,
		Now: func() time.Time { return t0.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &pubHarness{redis: r, pub: p, srv: srv, reg: reg}
}

func always(*cityhubv1.Alert) bool { return true }

func (h *pubHarness) fold(t *testing.T, alerts ...*cityhubv1.Alert) {
	t.Helper()
	batch := make([]stream.Record[*cityhubv1.Alert], len(alerts))
	for i, a := range alerts {
		batch[i].Value = a
	}
	if err := h.pub.Apply(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func (h *pubHarness) messages(t *testing.T) []capxml.Message {
	t.Helper()
	ms, err := h.pub.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// summary lists messages as "TYPE identifier refs=N".
func summary(t *testing.T, ms []capxml.Message) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		a, err := capxml.Parse([]byte(m.XML))
		if err != nil {
			t.Fatalf("a stored message is not valid CAP: %v\n%s", err, m.XML)
		}
		refs := make([]string, len(a.References))
		for i, r := range a.References {
			refs[i] = r.Identifier
		}
		out = append(out, a.MsgType+" "+a.Identifier+" ["+strings.Join(refs, " ")+"]")
	}
	return out
}

// The alert's life, as the feed tells it: Alert when it fires, nothing for
// a change at the same severity, Update when it escalates, Cancel when it
// resolves, a new Alert when it fires again. Redelivered changes change
// nothing, and the feed keeps its newest three (feed.size).
func TestPublisherLifecycle(t *testing.T) {
	h := startPublisher(t, always)
	ctx := context.Background()
	steps := []struct {
		alert *cityhubv1.Alert
		want  []string // the feed after it, newest first
	}{
		{change(1, pending, moderate), nil},
		{change(2, firing, moderate), []string{"Alert cityhub-0123456789abcdef-2 []"}},
		{change(3, firing, moderate), []string{"Alert cityhub-0123456789abcdef-2 []"}},
		{change(4, firing, minor), []string{"Alert cityhub-0123456789abcdef-2 []"}},
		{change(5, firing, severe), []string{
			"Update cityhub-0123456789abcdef-5 [cityhub-0123456789abcdef-2]",
			"Alert cityhub-0123456789abcdef-2 []",
		}},
		{change(2, firing, moderate), nil}, // redelivered: as before
		{change(6, resolved, severe), []string{
			"Cancel cityhub-0123456789abcdef-6 [cityhub-0123456789abcdef-2 cityhub-0123456789abcdef-5]",
			"Update cityhub-0123456789abcdef-5 [cityhub-0123456789abcdef-2]",
			"Alert cityhub-0123456789abcdef-2 []",
		}},
		{change(7, resolved, severe), nil},
		{change(5, firing, severe), nil},
		{change(8, firing, minor), []string{
			"Alert cityhub-0123456789abcdef-8 []",
			"Cancel cityhub-0123456789abcdef-6 [cityhub-0123456789abcdef-2 cityhub-0123456789abcdef-5]",
			"Update cityhub-0123456789abcdef-5 [cityhub-0123456789abcdef-2]",
		}},
	}
	var prev []string
	for i, s := range steps {
		h.fold(t, s.alert)
		got := summary(t, h.messages(t))
		want := s.want
		if want == nil {
			want = prev
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d (v%d %s): feed\n  %s\nwant\n  %s", i, s.alert.Version, s.alert.State, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		prev = got
	}
	if n := h.redis.Client.HLen(ctx, capxml.MessagesKey).Val(); n != 3 {
		t.Errorf("%d messages kept, want the feed's 3", n)
	}
	for typ, want := range map[string]float64{"Alert": 2, "Update": 1, "Cancel": 1} {
		if got := counter(t, h.reg, "cityhub_cap_messages_published_total", typ); got != want {
			t.Errorf("published %s: %v, want %v", typ, got, want)
		}
	}
	if ttl := h.redis.Client.TTL(ctx, capxml.AlertKey("0123456789abcdef")).Val(); ttl != -1 {
		t.Errorf("an open warning's state expires in %v", ttl)
	}
}

// What the messages say of the alert.
func TestPublishedContent(t *testing.T) {
	h := startPublisher(t, always)
	h.fold(t, change(1, firing, moderate), change(2, firing, severe), change(3, resolved, severe))
	ms := h.messages(t)
	if len(ms) != 3 {
		t.Fatalf("%d messages", len(ms))
	}
	cancel, _ := capxml.Parse([]byte(ms[0].XML))
	update, _ := capxml.Parse([]byte(ms[1].XML))
	alert, _ := capxml.Parse([]byte(ms[2].XML))
	in := alert.Infos[0]
	if alert.Sender != "cityhub@ops.city.example" || alert.Status != "Actual" || alert.Scope != "Public" {
		t.Errorf("sender %s status %s scope %s", alert.Sender, alert.Status, alert.Scope)
	}
	if capxml.FormatTime(alert.Sent) != "2026-07-12T14:01:00+08:00" {
		t.Errorf("sent %s: the alert's updated_at, in the city's zone", capxml.FormatTime(alert.Sent))
	}
	if in.Event != "道路积水" || in.Categories[0] != "Met" || in.Severity != "Moderate" || in.Urgency != "Immediate" || in.Headline != "道路积水 35 cm：漕溪北路" {
		t.Errorf("info %+v", in)
	}
	ar := in.Areas[0]
	if ar.Desc != "徐汇区 漕溪北路" || len(ar.Circles) != 1 || ar.Circles[0].Centre.Lat != 31.1886 || ar.Circles[0].RadiusKM != 1 {
		t.Errorf("area %+v", ar)
	}
	if !slices.Equal(ar.Geocodes, []capxml.Value{{Name: "GB2260", Value: "310104"}}) {
		t.Errorf("geocodes %v", ar.Geocodes)
	}
	if update.Infos[0].Severity != "Severe" || update.References[0].Identifier != alert.Identifier || !update.References[0].Sent.Equal(alert.Sent) {
		t.Errorf("update %+v references %+v", update.Infos[0], update.References)
	}
	ci := cancel.Infos[0]
	if ci.Urgency != "Past" || !slices.Equal(ci.ResponseTypes, []string{"AllClear"}) || len(cancel.References) != 2 {
		t.Errorf("cancel %+v references %+v", ci, cancel.References)
	}
}

func TestPublisherSkips(t *testing.T) {
	onlyFlood := func(a *cityhubv1.Alert) bool { return strings.HasPrefix(a.GetRule(), "flood-control/") }
	h := startPublisher(t, onlyFlood)
	other := change(1, firing, severe)
	other.Id, other.Rule = "00000000000000aa", "gas/leak"
	shadow := change(1, firing, severe)
	shadow.Id, shadow.Shadow = "00000000000000bb", true
	unseen := change(4, resolved, severe)
	unseen.Id = "00000000000000cc"
	h.fold(t, other, shadow, unseen)
	if ms := h.messages(t); len(ms) != 0 {
		t.Errorf("published %v", summary(t, ms))
	}
	for _, id := range []string{"00000000000000aa", "00000000000000bb", "00000000000000cc"} {
		if n := h.redis.Client.Exists(context.Background(), capxml.AlertKey(id)).Val(); n != 0 {
			t.Errorf("state kept for %s", id)
		}
	}
	// Without a predicate nothing publishes.
	none := newPublisher(t, h.redis, nil)
	none.fold(t, change(1, firing, severe))
	if ms := none.messages(t); len(ms) != 0 {
		t.Errorf("published without a predicate: %v", summary(t, ms))
	}
}

// Two replicas folding the same changes at once (a rebalance) publish each
// message once, and every Update and Cancel references messages the feed
// published before it.
func TestPublisherReplicas(t *testing.T) {
	r := redistest.Start(t)
	a, b := newPublisher(t, r, always), newPublisher(t, r, always)
	seq := []*cityhubv1.Alert{
		change(1, firing, minor), change(2, firing, moderate), change(3, firing, severe),
		change(4, resolved, severe), change(5, firing, moderate), change(6, resolved, moderate),
	}
	var wg sync.WaitGroup
	for _, h := range []*pubHarness{a, b} {
		wg.Go(func() {
			for _, x := range seq {
				if err := h.pub.Fold(context.Background(), x); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// The feed keeps 3; read every message that was stored instead.
	all := r.Client.HGetAll(context.Background(), capxml.MessagesKey).Val()
	ids := r.Client.LRange(context.Background(), capxml.EntriesKey, 0, -1).Val()
	if len(ids) != len(all) {
		t.Errorf("%d entries for %d messages", len(ids), len(all))
	}
	seen := map[string]bool{}
	for i := len(ids) - 1; i >= 0; i-- {
		if seen[ids[i]] {
			t.Errorf("%s listed twice", ids[i])
		}
		seen[ids[i]] = true
	}
	last := seq[len(seq)-1]
	var newest capxml.Message
	if err := json.Unmarshal([]byte(all[ids[0]]), &newest); err != nil {
		t.Fatal(err)
	}
	if newest.MsgType != "Cancel" || newest.Identifier != "cityhub-0123456789abcdef-6" {
		t.Errorf("the feed ends with %s %s, want the Cancel of v%d", newest.MsgType, newest.Identifier, last.Version)
	}
}

type feedDoc struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string   `xml:"id"`
	Title   string   `xml:"title"`
	Updated string   `xml:"updated"`
	Author  struct {
		Name string `xml:"name"`
	} `xml:"author"`
	Links []struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	} `xml:"link"`
	Entries []struct {
		ID       string `xml:"id"`
		Title    string `xml:"title"`
		Updated  string `xml:"updated"`
		Category struct {
			Term string `xml:"term,attr"`
		} `xml:"category"`
		Link struct {
			Rel  string `xml:"rel,attr"`
			Type string `xml:"type,attr"`
			Href string `xml:"href,attr"`
		} `xml:"link"`
		Content struct {
			Type  string `xml:"type,attr"`
			Inner []byte `xml:",innerxml"`
		} `xml:"content"`
	} `xml:"entry"`
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// The feed read back as Atom: anonymous, newest first, every message
// inline and at its own address, only public Actual messages.
func TestFeed(t *testing.T) {
	h := startPublisher(t, always)
	status, _, body := get(t, h.srv.URL+capxml.FeedPath)
	if status != 200 {
		t.Fatalf("empty feed: %d %s", status, body)
	}
	h.fold(t, change(1, firing, moderate), change(2, firing, severe))
	// A message that is not for the public: kept, never shown.
	drill, _ := json.Marshal(capxml.Message{Identifier: "drill-1", MsgType: "Alert", Status: "Exercise", Scope: "Public", XML: "<alert/>", Sent: t0})
	ctx := context.Background()
	h.redis.Client.HSet(ctx, capxml.MessagesKey, "drill-1", drill)
	h.redis.Client.LPush(ctx, capxml.EntriesKey, "drill-1")

	status, header, body := get(t, h.srv.URL+capxml.FeedPath)
	if status != 200 || !strings.HasPrefix(header.Get("Content-Type"), "application/atom+xml") {
		t.Fatalf("status %d type %s", status, header.Get("Content-Type"))
	}
	var f feedDoc
	if err := xml.Unmarshal(body, &f); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if f.ID != "tag:ops.city.example,2026:cap" || f.Title != "城市运行公共预警" || f.Author.Name != "市城运中心" {
		t.Errorf("feed %q %q %q", f.ID, f.Title, f.Author.Name)
	}
	if len(f.Links) != 1 || f.Links[0].Rel != "self" || f.Links[0].Href != "https://ops.city.example/v1/cap/feed.atom" {
		t.Errorf("links %+v", f.Links)
	}
	if len(f.Entries) != 2 {
		t.Fatalf("%d entries:\n%s", len(f.Entries), body)
	}
	if f.Updated != f.Entries[0].Updated || f.Updated != "2026-07-12T06:02:00Z" {
		t.Errorf("feed updated %s, newest entry %s", f.Updated, f.Entries[0].Updated)
	}
	for i, want := range []string{"Update", "Alert"} {
		e := f.Entries[i]
		if e.Category.Term != want {
			t.Errorf("entry %d is %s, want %s (newest first)", i, e.Category.Term, want)
		}
		inline, err := capxml.Parse(e.Content.Inner)
		if err != nil {
			t.Fatalf("entry %d: inline CAP: %v\n%s", i, err, e.Content.Inner)
		}
		if e.Content.Type != "application/cap+xml" || inline.MsgType != want || e.ID != f.ID+":"+inline.Identifier {
			t.Errorf("entry %d: content %s, message %s, id %s", i, e.Content.Type, inline.MsgType, e.ID)
		}
		if e.Title == "" || !strings.Contains(e.Title, "道路积水") {
			t.Errorf("entry %d title %q", i, e.Title)
		}
		path, ok := strings.CutPrefix(e.Link.Href, "https://ops.city.example")
		if !ok || e.Link.Rel != "alternate" || e.Link.Type != "application/cap+xml" {
			t.Fatalf("entry %d link %+v", i, e.Link)
		}
		status, header, doc := get(t, h.srv.URL+path)
		if status != 200 || !strings.HasPrefix(header.Get("Content-Type"), "application/cap+xml") {
			t.Fatalf("GET %s: %d %s", path, status, doc)
		}
		linked, err := capxml.Parse(doc)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if linked.Identifier != inline.Identifier || !strings.HasPrefix(string(doc), "<?xml") {
			t.Errorf("the linked message is %s, the inline %s", linked.Identifier, inline.Identifier)
		}
	}
	for _, path := range []string{capxml.MessagesPath + "drill-1.xml", capxml.MessagesPath + "nothing.xml", capxml.MessagesPath + "cityhub-0123456789abcdef-1"} {
		if status, _, _ := get(t, h.srv.URL+path); status != 404 {
			t.Errorf("GET %s: %d, want 404", path, status)
		}
	}
}
