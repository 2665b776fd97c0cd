package ruler_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

func loadCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func event(id, typ, district, street string, attrs map[string]any) *cityhubv1.Event {
	s, _ := structpb.NewStruct(attrs)
	return &cityhubv1.Event{
		Id: id, Source: "iot", Type: typ,
		OccurredAt: timestamppb.New(time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)),
		Location:   &cityhubv1.Location{District: district, Street: street, Lon: 121.43, Lat: 31.18},
		Attrs:      s,
	}
}

func produce(t *testing.T, w *stream.Writer, topic string, evs ...*cityhubv1.Event) {
	t.Helper()
	var msgs []kafka.Message
	for _, ev := range evs {
		m, err := stream.Marshal(topic, ev.GetLocation().GetDistrict(), ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := w.Write(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// readAll returns every message topic holds now.
func readAll(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	err := stream.Replay(context.Background(), brokers, topic, func(m kafka.Message) error {
		out = append(out, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func alerts(t *testing.T, k *kafkatest.Cluster) []*cityhubv1.Alert {
	t.Helper()
	var out []*cityhubv1.Alert
	for _, m := range readAll(t, k.Brokers, k.Topics.Alerts) {
		a := &cityhubv1.Alert{}
		if err := stream.Unmarshal(m, a); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != a.District {
			t.Errorf("alert keyed %q, district %q", m.Key, a.District)
		}
		out = append(out, a)
	}
	return out
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

func TestRulerEndToEnd(t *testing.T) {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Date(2025, 7, 1, 8, 1, 0, 0, time.UTC)
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("ruler"),
		Redis: rdb.Client, Writer: w, PacksDir: "../../rules/packs", Catalog: loadCatalog(t),
		Logger: logging.Discard(), Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	deep := event("ev-1", "waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 35, "camera_id": "c-17"})
	produce(t, w, k.Topics.Events, deep)
	var got []*cityhubv1.Alert
	waitFor(t, "the first alert", func() bool { got = alerts(t, k); return len(got) > 0 })
	a := got[0]
	if a.Rule != "flood-control/deep-waterlogging" || a.Pack != "flood-control" || a.State != cityhubv1.AlertState_ALERT_STATE_FIRING ||
		a.Severity != cityhubv1.Severity_SEVERITY_SEVERE || a.Version != 1 || !slices.Equal(a.EventIds, []string{"iot/ev-1"}) || a.EventCount != 1 {
		t.Errorf("alert = %v", a)
	}
	if a.Labels["district"] != "xuhui" || a.Labels["street"] != "tianping" || a.District != "xuhui" || a.EventType != "waterlogging" || a.Location.GetStreet() != "tianping" {
		t.Errorf("labels/place = %v %s %s %v", a.Labels, a.District, a.EventType, a.Location)
	}
	if a.Title != "道路积水 35 cm：tianping" || a.Shadow || a.StartsAt == nil || !a.UpdatedAt.AsTime().Equal(now) {
		t.Errorf("title/shadow/times = %q %v %v %v", a.Title, a.Shadow, a.StartsAt, a.UpdatedAt)
	}
	d := a.Dispatch
	if d.GetLead() != "water-affairs" || !slices.Equal(d.GetAssist(), []string{"traffic-police"}) ||
		d.GetSla().GetAccept().AsDuration() != 10*time.Minute || d.GetSla().GetHandle().AsDuration() != 2*time.Hour {
		t.Errorf("dispatch = %v", d)
	}
	var expl []string
	for _, x := range a.Explanation {
		expl = append(expl, x.Expr+" = "+x.Value)
	}
	if len(expl) == 0 || !strings.HasSuffix(expl[0], "= true") || !slices.Contains(expl, "event.attrs.water_depth_cm ?? 0 = 35") {
		t.Errorf("explanation = %q", expl)
	}

	// Redelivery of the same event, an undecodable message, then another
	// event: consumption goes on past the bad message and the redelivered
	// event makes no new version.
	produce(t, w, k.Topics.Events, deep)
	if err := w.Write(context.Background(), kafka.Message{Topic: k.Topics.Events, Key: []byte("xuhui"), Value: []byte{0xff, 0xfe, 0x01}}); err != nil {
		t.Fatal(err)
	}
	produce(t, w, k.Topics.Events, event("ev-2", "manhole_cover_missing", "xuhui", "hengshan", map[string]any{"cover_id": "mh-9"}))
	waitFor(t, "the manhole alert", func() bool {
		got = alerts(t, k)
		return slices.ContainsFunc(got, func(a *cityhubv1.Alert) bool { return a.Rule == "manhole-covers/cover-missing" })
	})
	for _, x := range got {
		if x.Id == a.Id && x.Version != 1 {
			t.Errorf("the redelivered event made version %d", x.Version)
		}
	}
	stored, err := r.Store().Get(context.Background(), a.Id)
	if err != nil || stored.Version != 1 || stored.EventCount != 1 {
		t.Errorf("stored alert = %v, %v", stored, err)
	}
	firing, err := r.Store().Firing(context.Background())
	if err != nil || len(firing) != 2 {
		t.Errorf("Firing = %d alerts, %v", len(firing), err)
	}
	var dlq []kafka.Message
	waitFor(t, "the dead letter", func() bool { dlq = readAll(t, k.Brokers, k.Topics.EventsDLQ); return len(dlq) > 0 })
	if len(dlq) != 1 || stream.Header(dlq[0], stream.DLQReasonHeader) == "" || string(dlq[0].Value) != "\xff\xfe\x01" {
		t.Errorf("DLQ = %v", dlq)
	}
}

func TestNewReportsEveryProblemWithPositions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "pack: a\nowner: water-affairs\nrules:\n  - id: x\n    when: event.type == \"waterloging\"\n    severity: severe\n")
	write("b.yaml", "pack: b\nowner: water-affairs\nrules:\n  - id: y\n    when: event.type == \"waterlogging\"\n    severity: bad\n")
	write("c.yaml", "pack: c\nowner: water-affairs\nrules:\n  - id: z\n    when: event.type == \"waterlogging\"\n    severity: minor\n    for: 5m\n")
	opts := ruler.Options{
		Brokers: []string{"127.0.0.1:1"}, Topics: stream.DefaultTopics(""), Redis: redistest.Start(t).Client,
		Writer: &stream.Writer{}, PacksDir: dir, Catalog: loadCatalog(t),
	}
	_, err := ruler.New(opts)
	if err == nil {
		t.Fatal("New accepted bad packs")
	}
	for _, want := range []string{
		filepath.Join(dir, "a.yaml") + `:5:11: rule x: when: event type "waterloging" is not in the catalog`,
		filepath.Join(dir, "b.yaml") + `:6:15: rule y: severity: unknown severity "bad"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Once the others are fixed, a `for` that nothing could end is refused.
	os.Remove(filepath.Join(dir, "a.yaml"))
	os.Remove(filepath.Join(dir, "b.yaml"))
	_, err = ruler.New(opts)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7:10: rule z: for: needs resolve_after or clear_when") {
		t.Errorf("New = %v", err)
	}
	var perr rulepack.Errors
	if !errors.As(err, &perr) {
		t.Errorf("error is not a rulepack.Errors: %T", err)
	}
}

// TestAbsentRuleEndToEnd runs an absent rule through the ruler: a gauge
// reports, falls silent for longer than the rule's wait, and the sweep
// fires its alert, with its last reading behind it; its next reading
// resolves the alert, in the batch that brings it.
func TestAbsentRuleEndToEnd(t *testing.T) {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	pack := `pack: gauges
owner: water-affairs
rules:
  - id: silent
    when: event.type == "rainfall" && (event.attrs.gauge_id ?? "") != ""
    absent: {for: 10m}
    severity: moderate
    group_by: [district, attrs.gauge_id]
    title: "雨量计 {{ .event.attrs.gauge_id }} 无数据"
`
	if err := os.WriteFile(filepath.Join(dir, "gauges.yaml"), []byte(pack), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)
	var clock atomic.Int64 // minutes since t0
	now := func() time.Time { return t0.Add(time.Duration(clock.Load()) * time.Minute) }
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("ruler"),
		Redis: rdb.Client, Writer: w, PacksDir: dir, Catalog: loadCatalog(t),
		Logger: logging.Discard(), Registerer: prometheus.NewRegistry(),
		Now: now, SweepInterval: 50 * time.Millisecond, PollInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	reading := func(id string) *cityhubv1.Event {
		ev := event(id, "rainfall", "xuhui", "", map[string]any{"rain_mm_h": 12, "gauge_id": "g-7"})
		ev.OccurredAt = timestamppb.New(now())
		return ev
	}
	produce(t, w, k.Topics.Events, reading("r-1"))
	waitFor(t, "the gauge's wait", func() bool {
		n, err := rdb.Client.ZCard(context.Background(), alertstate.AbsentKey).Result()
		return err == nil && n == 1
	})
	if got := alerts(t, k); len(got) != 0 {
		t.Fatalf("a reading published %v", got)
	}
	clock.Store(9)
	time.Sleep(200 * time.Millisecond) // sweeps at 9m: nothing is due yet
	if got := alerts(t, k); len(got) != 0 {
		t.Fatalf("at 9m the sweep published %v", got)
	}
	clock.Store(11)
	var got []*cityhubv1.Alert
	waitFor(t, "the silence's alert", func() bool { got = alerts(t, k); return len(got) > 0 })
	a := got[0]
	if a.GetRule() != "gauges/silent" || a.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING ||
		!a.GetStartsAt().AsTime().Equal(t0.Add(10*time.Minute)) || !slices.Equal(a.GetEventIds(), []string{"iot/r-1"}) ||
		a.GetTitle() != "雨量计 g-7 无数据" || a.GetLabels()["attrs.gauge_id"] != "g-7" {
		t.Errorf("the silence's alert = %v", a)
	}
	clock.Store(12)
	produce(t, w, k.Topics.Events, reading("r-2"))
	waitFor(t, "the alert resolved", func() bool {
		got = alerts(t, k)
		return got[len(got)-1].GetState() == cityhubv1.AlertState_ALERT_STATE_RESOLVED
	})
	if n := len(got); n != 2 || got[1].GetId() != a.GetId() {
		t.Errorf("alerts = %v, want the firing and its resolution", got)
	}
}

// TestSilenceSetAtRunTime sets a silence through the ruler's API: the
// alert that fires under it names it and opens no case; expiring it marks
// the alert anew, unmuted, without any event.
func TestSilenceSetAtRunTime(t *testing.T) {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pub, priv, _ := ed25519.GenerateKey(nil)
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("ruler"),
		Redis: rdb.Client, Writer: w, PacksDir: "../../rules/packs", Catalog: loadCatalog(t),
		Logger: logging.Discard(), Registerer: prometheus.NewRegistry(), Verifier: v, PollInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	r.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	tok, err := auth.NewSigner(priv).Sign(auth.Principal{Subject: "chief", Role: auth.RoleCommander}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	sil := post("/v1/silences", `{"matchers": {"rule": "flood-control/deep-waterlogging", "district": "xuhui"},
		"ends_at": "`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`", "comment": "pump station works"}`)
	id, _ := sil["id"].(string)
	produce(t, w, k.Topics.Events, event("ev-1", "waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": 40}))
	var got []*cityhubv1.Alert
	waitFor(t, "the alert", func() bool { got = alerts(t, k); return len(got) > 0 })
	if a := got[0]; a.GetRule() != "flood-control/deep-waterlogging" || !slices.Equal(a.GetSilencedBy(), []string{id}) {
		t.Fatalf("alert under the silence = %v, want silenced by %s", a, id)
	}
	post("/v1/silences/"+id+"/expire", `{}`)
	waitFor(t, "the alert marked anew", func() bool {
		got = alerts(t, k)
		last := got[len(got)-1]
		return len(got) > 1 && last.GetState() == cityhubv1.AlertState_ALERT_STATE_FIRING && len(last.GetSilencedBy()) == 0
	})
}
