package replicas_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/cityhub/simulate"
	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/live"
	"github.com/cityhub/cityhub/services/live/snapshot"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The shape of the run: how many events, how often a marker, and in which
// batch a ruler and a dispatcher stop and their successors start.
const (
	totalEvents = 20_000
	markerEvery = 40
	batchSize   = 100
	batches     = totalEvents / batchSize
	stopAt      = batches / 3
	restartAt   = 2 * batches / 3
	// batchPause spreads the stream over a few seconds, so that the stops
	// and starts fall while events are still coming.
	batchPause = 30 * time.Millisecond
	// origin is the page origin the watchers' websockets present.
	origin = "http://wall.city.test"
)

// TestReplicas runs 3 rulers, 3 dispatchers and 2 live gateways, each a
// service instance of its own, on one Kafka and one Redis; drives 20,000
// events of the city mix through intake, one in 40 of them a marker (a
// methane reading over a quarter of the LEL from a sensor of its own, which
// fires an alert and opens a case of three parts); stops a ruler and a
// dispatcher a third of the way in and starts new ones two thirds in, so
// that both groups rebalance twice under load; then moves the
// dispatchers' clock past the accept deadlines. It checks that every
// marker's alert and case reached a commander on each gateway, that no
// alert fired twice and no alert opened two cases, and that every deadline
// moment of the markers' cases was applied once — however many sweepers
// raced for it and however many times a change was published again.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the replica test drives 20,000 events")
	}
	c := newCity(t)

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	gateways := []string{c.startGateway(t, "live-1"), c.startGateway(t, "live-2")}
	watchers := make([]*watcher, len(gateways))
	for i, url := range gateways {
		watchers[i] = &watcher{name: fmt.Sprintf("commander on live-%d", i+1), url: url, token: c.token(t, auth.Principal{Subject: "wall", Role: auth.RoleCommander}),
			alerts: map[string]bool{}, casesOfAlert: map[string]bool{}}
		wg.Add(1)
		go func() { defer wg.Done(); watchers[i].run(ctx, t) }()
	}
	for _, w := range watchers {
		waitFor(t, w.name+"'s first snapshot", time.Minute, func() bool { return w.subscribed.Load() > 0 })
	}
	rulers := []*replica{c.startRuler(t, "ruler-1"), c.startRuler(t, "ruler-2"), c.startRuler(t, "ruler-3")}
	dispatchers := []*replica{c.startDispatcher(t, "dispatch-1"), c.startDispatcher(t, "dispatch-2"), c.startDispatcher(t, "dispatch-3")}
	defer func() {
		for _, r := range append(rulers, dispatchers...) {
			r.stop()
		}
	}()

	markers := c.drive(t, func(batch int) {
		switch batch {
		case stopAt:
			rulers[2].stop()
			dispatchers[2].stop()
		case restartAt:
			rulers = append(rulers, c.startRuler(t, "ruler-4"))
			dispatchers = append(dispatchers, c.startDispatcher(t, "dispatch-4"))
		}
	})

	// Every marker becomes an alert and a case, on the log and on both
	// gateways.
	alertOf := map[string]string{} // marker event id → alert id
	waitFor(t, "an alert for every marker", 3*time.Minute, func() bool {
		for _, a := range c.alerts(t) {
			for _, id := range a.GetEventIds() {
				if markers[id] {
					alertOf[id] = a.GetId()
				}
			}
		}
		if len(alertOf) < len(markers) {
			t.Logf("%d of %d markers have an alert", len(alertOf), len(markers))
		}
		return len(alertOf) == len(markers)
	})
	markerAlerts := map[string]bool{}
	for _, id := range alertOf {
		markerAlerts[id] = true
	}
	if len(markerAlerts) != len(markers) {
		t.Fatalf("%d markers became %d alerts; each has a sensor of its own", len(markers), len(markerAlerts))
	}
	caseOf := map[string]string{} // alert id → case id
	waitFor(t, "a case for every marker's alert", 3*time.Minute, func() bool {
		for _, ch := range c.changes(t) {
			if a := ch.GetCase().GetAlertId(); markerAlerts[a] {
				caseOf[a] = ch.GetCase().GetId()
			}
		}
		return len(caseOf) == len(markerAlerts)
	})
	for _, w := range watchers {
		waitFor(t, "every marker's alert and case on "+w.name, 3*time.Minute, func() bool {
			return len(w.missing(markerAlerts)) == 0
		})
	}

	republishedBefore := len(c.changes(t)) - distinctVersions(c.changes(t))

	// Every marker case's parts have an accept deadline of five minutes:
	// at 5½ minutes on, each part's warning (80%) and escalation are due.
	c.clock.Store(int64(5*time.Minute + 30*time.Second))
	waitFor(t, "the accept deadlines of every marker's case to fire", 3*time.Minute, func() bool {
		moments := timerMoments(c.changes(t))
		for _, id := range caseOf {
			if len(moments[id]) < 6 {
				return false
			}
		}
		return true
	})
	// Let the sweepers race a little longer: a moment applied twice would
	// show now.
	time.Sleep(500 * time.Millisecond)

	changes := c.changes(t)
	alerts := c.alerts(t)
	var problems []string

	// No alert fired twice: one firing episode per fingerprint.
	episodes := map[string]map[int64]bool{}
	alertVersions := map[string]bool{}
	for _, a := range alerts {
		alertVersions[fmt.Sprint(a.GetId(), "@", a.GetVersion())] = true
		if a.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING {
			continue
		}
		if episodes[a.GetId()] == nil {
			episodes[a.GetId()] = map[int64]bool{}
		}
		episodes[a.GetId()][a.GetStartsAt().AsTime().UnixMilli()] = true
	}
	for id, e := range episodes {
		if len(e) > 1 {
			problems = append(problems, fmt.Sprintf("alert %s fired %d times", id, len(e)))
		}
	}
	// No alert opened two cases, and no case version was two changes.
	casesOf := map[string]map[string]bool{}
	versions := map[string]map[int64]string{}
	republished := 0
	for _, ch := range changes {
		k := ch.GetCase()
		if a := k.GetAlertId(); a != "" {
			if casesOf[a] == nil {
				casesOf[a] = map[string]bool{}
			}
			casesOf[a][k.GetId()] = true
		}
		if versions[k.GetId()] == nil {
			versions[k.GetId()] = map[int64]string{}
		}
		v, req := k.GetVersion(), ch.GetChange().GetRequestId()
		if seen, ok := versions[k.GetId()][v]; ok {
			republished++
			if seen != req {
				problems = append(problems, fmt.Sprintf("case %s version %d is two changes: %q and %q", k.GetId(), v, seen, req))
			}
		}
		versions[k.GetId()][v] = req
	}
	for a, ids := range casesOf {
		if len(ids) > 1 {
			problems = append(problems, fmt.Sprintf("alert %s opened %d cases", a, len(ids)))
		}
	}
	// Each deadline moment once: a moment is named by its request id, and
	// every change that carries one is a single version of its case.
	moments := timerMoments(changes)
	fired := 0
	for a, id := range caseOf {
		m := moments[id]
		fired += len(m)
		for req, vs := range m {
			if len(vs) > 1 {
				problems = append(problems, fmt.Sprintf("case %s (alert %s): moment %s applied %d times", id, a, req, len(vs)))
			}
		}
		if len(m) != 6 {
			problems = append(problems, fmt.Sprintf("case %s: %d deadline moments, want 6 (a warning and an escalation for each of its three parts)", id, len(m)))
		}
	}
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
	}
	for _, p := range problems {
		t.Error(p)
	}

	resets := 0
	for _, w := range watchers {
		resets += int(w.resets.Load())
	}
	t.Logf("%d events (%d markers) through 3 rulers and 3 dispatchers, one of each stopped at batch %d of %d and a new one started at batch %d; "+
		"%d alert messages for %d alerts (%d published again), %d case changes for %d cases (%d published again, %d of them before the deadlines came); "+
		"%d deadline moments of the markers' cases fired once each; both gateways' commanders saw all %d markers (%d resets)",
		totalEvents, len(markers), stopAt, batches, restartAt,
		len(alerts), len(episodes), len(alerts)-len(alertVersions), len(changes), len(versions), republished, republishedBefore, fired, len(markers), resets)
}

// city is what the replicas share: one Kafka, one Redis, the catalog and
// the packs, the token key, and the dispatchers' clock.
type city struct {
	k        *kafkatest.Cluster
	redisURL string
	cat      *catalog.Catalog
	packs    string
	signer   *auth.Signer
	verifier *auth.Verifier
	// rulerGroup and dispatchGroup are the groups the replicas share.
	rulerGroup, dispatchGroup string
	// clock is how far the dispatchers' clock runs ahead of the real one,
	// in nanoseconds.
	clock atomic.Int64
	// intake is the way events come in, as a source posting them.
	intake *intake.Service
}

func newCity(t *testing.T) *city {
	t.Helper()
	rules := filepath.Join("..", "..", "..", "rules")
	cat, err := catalog.Load(filepath.Join(rules, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	c := &city{
		k: kafkatest.Start(t), redisURL: redistest.Start(t).URL, cat: cat, packs: filepath.Join(rules, "packs"),
		signer: auth.NewSigner(priv), verifier: v,
		rulerGroup: kafkatest.Group("ruler"), dispatchGroup: kafkatest.Group("dispatch"),
	}
	w := c.writer(t)
	c.intake, err = intake.New(intake.Options{Writer: w, Topics: c.k.Topics, Catalog: cat, Verifier: v, Redis: c.redis(t), Logger: logging.Discard(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *city) token(t *testing.T, p auth.Principal) string {
	t.Helper()
	tok, err := c.signer.Sign(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// redis returns a client of the replica's own, closed when the test ends.
func (c *city) redis(t *testing.T) redis.UniversalClient {
	t.Helper()
	rdb, err := redisclient.New(c.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// writer returns a Kafka writer of the replica's own, closed when the test
// ends.
func (c *city) writer(t *testing.T) *stream.Writer {
	t.Helper()
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: c.k.Brokers, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// replica is one running service instance.
type replica struct {
	name    string
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
	t       *testing.T
}

func run(t *testing.T, name string, fn func(context.Context) error) *replica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, cancel: cancel, done: make(chan error, 1), t: t}
	go func() { r.done <- fn(ctx) }()
	return r
}

// stop ends the replica as a pod's SIGTERM would, and waits for it.
func (r *replica) stop() {
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				r.t.Errorf("%s: %v", r.name, err)
			}
		case <-time.After(time.Minute):
			r.t.Errorf("%s did not stop within a minute", r.name)
		}
	})
}

func (c *city) startRuler(t *testing.T, name string) *replica {
	t.Helper()
	r, err := ruler.New(ruler.Options{
		Brokers: c.k.Brokers, Topics: c.k.Topics, Group: c.rulerGroup,
		Redis: c.redis(t), Writer: c.writer(t), PacksDir: c.packs, Catalog: c.cat,
		Logger: logging.Discard(), Registerer: prometheus.NewRegistry(), Verifier: c.verifier,
		PollInterval: -1,
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return run(t, name, r.Run)
}

func (c *city) startDispatcher(t *testing.T, name string) *replica {
	t.Helper()
	s, err := dispatch.New(dispatch.Options{
		Brokers: c.k.Brokers, Topics: c.k.Topics, Group: c.dispatchGroup,
		Redis: c.redis(t), Writer: c.writer(t), Catalog: c.cat, Verifier: c.verifier,
		Logger: logging.Discard(), Registerer: prometheus.NewRegistry(),
		Now:           func() time.Time { return time.Now().Add(time.Duration(c.clock.Load())) },
		SweepInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return run(t, name, s.Run)
}

// startGateway starts a live gateway that runs until the test ends, and
// returns its websocket's URL.
func (c *city) startGateway(t *testing.T, name string) string {
	t.Helper()
	rdb := c.redis(t)
	alerts, err := alertstate.New(alertstate.Options{Client: rdb})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := live.New(live.Options{
		Brokers: c.k.Brokers, Topics: c.k.Topics, Verifier: c.verifier, AllowedOrigins: []string{origin},
		Snapshot: snapshot.Stores{Alerts: alerts, Cases: casestore.New(rdb, c.cat.DistrictCodes())},
		Catalog:  c.cat, Logger: logging.Discard(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	r := run(t, name, gw.Run)
	mux := http.NewServeMux()
	gw.Routes(mux)
	srv := httptest.NewServer(mux)
	// Cleanups run last first: the server closes its connections, then
	// the gateway stops.
	t.Cleanup(r.stop)
	t.Cleanup(srv.Close)
	waitFor(t, name+" to follow Kafka", time.Minute, gw.Ready)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/live"
}

// drive posts the city mix through intake in batches, calling between(i)
// before batch i, and returns the markers among the events, as alerts name
// them (source/id).
func (c *city) drive(t *testing.T, between func(batch int)) map[string]bool {
	t.Helper()
	gen := simulate.NewGenerator(c.cat, 7)
	source := auth.Principal{Subject: "city-platform", Role: auth.RoleSource, Sources: append(gen.Sources(), "iot")}
	markers := map[string]bool{}
	ctx := context.Background()
	for b := range batches {
		between(b)
		batch := make([]*events.Input, 0, batchSize)
		for i := range batchSize {
			n := b*batchSize + i
			now := time.Now()
			if n%markerEvery == 0 {
				id := fmt.Sprintf("marker-%05d", n)
				markers["iot/"+id] = true // alerts name events by source and id
				batch = append(batch, marker(id, c.cat.Districts[n/markerEvery%len(c.cat.Districts)].Code, now))
				continue
			}
			ev := gen.Next(now)
			batch = append(batch, &ev)
		}
		if _, err := c.intake.Submit(ctx, intake.ViaEvents, source, batch); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		time.Sleep(batchPause)
	}
	return markers
}

// marker is a methane reading over a quarter of the lower explosive limit
// from a sensor no other event names: gas-safety/explosive-concentration
// fires one alert for it and opens a case led by the gas company with fire
// and public security assisting.
func marker(id, district string, now time.Time) *events.Input {
	lon, lat := 121.44, 31.19
	return &events.Input{
		ID: id, Source: "iot", Type: "gas_leak", OccurredAt: now.UTC().Format(time.RFC3339Nano),
		Location: &events.LocationInput{Lon: &lon, Lat: &lat, District: district, Street: "replica-road"},
		Attrs:    map[string]any{"lel_percent": 40.0, "sensor_id": "rs-" + id},
	}
}

// alerts reads every alert message the log holds.
func (c *city) alerts(t *testing.T) []*cityhubv1.Alert {
	t.Helper()
	var out []*cityhubv1.Alert
	replay(t, c.k, c.k.Topics.Alerts, func(m kafka.Message) error {
		a := &cityhubv1.Alert{}
		out = append(out, a)
		return stream.Unmarshal(m, a)
	})
	return out
}

// changes reads every case change the log holds.
func (c *city) changes(t *testing.T) []*cityhubv1.CaseChange {
	t.Helper()
	var out []*cityhubv1.CaseChange
	replay(t, c.k, c.k.Topics.Cases, func(m kafka.Message) error {
		ch := &cityhubv1.CaseChange{}
		out = append(out, ch)
		return stream.Unmarshal(m, ch)
	})
	return out
}

func replay(t *testing.T, k *kafkatest.Cluster, topic string, fn func(kafka.Message) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stream.Replay(ctx, k.Brokers, topic, fn); err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
}

// distinctVersions counts the case versions among changes.
func distinctVersions(changes []*cityhubv1.CaseChange) int {
	seen := map[string]bool{}
	for _, ch := range changes {
		seen[fmt.Sprint(ch.GetCase().GetId(), "@", ch.GetCase().GetVersion())] = true
	}
	return len(seen)
}

// timerMoments gathers, per case, the deadline moments applied to it (by
// their request ids) and the versions each was published as.
func timerMoments(changes []*cityhubv1.CaseChange) map[string]map[string]map[int64]bool {
	out := map[string]map[string]map[int64]bool{}
	for _, ch := range changes {
		req := ch.GetChange().GetRequestId()
		if !strings.HasPrefix(req, lifecycle.TimerRequestPrefix) {
			continue
		}
		id := ch.GetCase().GetId()
		if out[id] == nil {
			out[id] = map[string]map[int64]bool{}
		}
		if out[id][req] == nil {
			out[id][req] = map[int64]bool{}
		}
		out[id][req][ch.GetCase().GetVersion()] = true
	}
	return out
}

// watcher is a commander's screen on one gateway: it keeps the firing
// alerts and the cases' alerts it was shown, and subscribes again (a fresh
// snapshot) whenever the gateway resets or drops it.
type watcher struct {
	name, url, token string

	subscribed, resets atomic.Int64

	mu           sync.Mutex
	alerts       map[string]bool // firing alert ids
	casesOfAlert map[string]bool // the alerts cases were opened for
}

func (w *watcher) run(ctx context.Context, t *testing.T) {
	for ctx.Err() == nil {
		if err := w.watch(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("%s: %v", w.name, err)
			return
		}
	}
}

// watch follows one connection until it ends; an error is a broken
// contract, not a closed connection.
func (w *watcher) watch(ctx context.Context) error {
	h := http.Header{"Authorization": {"Bearer " + w.token}, "Origin": {origin}}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, w.url, h)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %v (HTTP %d)", err, resp.StatusCode)
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	defer ws.Close()
	ws.SetReadLimit(64 << 20)
	sub := `{"type": "subscribe", "streams": ["alerts", "cases"]}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
		return nil // the connection went: subscribe again
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return nil
		}
		var f struct {
			Type   string            `json:"type"`
			Stream string            `json:"stream"`
			Items  []json.RawMessage `json:"items"`
			Data   json.RawMessage   `json:"data"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("unreadable frame %.80q: %v", b, err)
		}
		switch f.Type {
		case "snapshot":
			w.subscribed.Add(1)
			for _, it := range f.Items {
				if err := w.see(f.Stream, it); err != nil {
					return err
				}
			}
		case "alert":
			if err := w.see("alerts", f.Data); err != nil {
				return err
			}
		case "case":
			if err := w.see("cases", f.Data); err != nil {
				return err
			}
		case "reset":
			w.resets.Add(1)
			return nil
		case "removed":
		default:
			return fmt.Errorf("unexpected frame %.80q", b)
		}
	}
}

func (w *watcher) see(stream string, item json.RawMessage) error {
	var v struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		AlertID string `json:"alert_id"`
	}
	if err := json.Unmarshal(item, &v); err != nil || v.ID == "" {
		return fmt.Errorf("unreadable %s item %.80q", stream, item)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch stream {
	case "alerts":
		if v.State == "firing" {
			w.alerts[v.ID] = true
		}
	case "cases":
		if v.AlertID != "" {
			w.casesOfAlert[v.AlertID] = true
		}
	}
	return nil
}

// missing returns the alerts of want the watcher has not seen firing, or
// not seen a case for.
func (w *watcher) missing(want map[string]bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for id := range want {
		if !w.alerts[id] || !w.casesOfAlert[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(time.Second)
	}
}
