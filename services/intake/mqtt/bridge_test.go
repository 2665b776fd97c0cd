package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/intake/mqtt/mqtttest"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
)

// running is a bridge running in a goroutine of the test.
type running struct {
	*mqtt.Bridge
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

// stop ends the bridge's context and waits for Run to return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after its context ended")
	}
}

// testOptions are options for a bridge of broker addr under clientID.
func testOptions(t testing.TB, addr, clientID string, sub mqtt.Submitter, dl mqtt.DeadLetterer) mqtt.Options {
	return mqtt.Options{
		Broker:       addr,
		ClientID:     clientID,
		Registry:     testRegistry(t),
		Submitter:    sub,
		DeadLetters:  dl,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		DrainTimeout: 2 * time.Second,
	}
}

// startBridge runs a bridge with opts until stopped or the test ends, and
// waits until it is connected.
func startBridge(t testing.TB, opts mqtt.Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	b, err := mqtt.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Bridge: b, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for b.Check(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not connect within 10s: %v", b.Check(ctx))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

// counter returns the value of the metric name with the labels, 0 when
// absent.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func waitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveDecoder validates as intake does, on the real clock.
func liveDecoder(t testing.TB) *events.Decoder {
	return &events.Decoder{Catalog: testCatalog(t)}
}

func reading(ts int64, values string) []byte {
	return []byte(`{"ts": ` + strconv.FormatInt(ts, 10) + `, "values": ` + values + `}`)
}

func TestBridge(t *testing.T) {
	t.Parallel()
	broker := mqtttest.StartMosquitto(t)
	sub := &mqtttest.Submitter{Decoder: liveDecoder(t)}
	dl := &mqtttest.DeadLetters{}
	opts := testOptions(t, broker.Addr, "cityhub-test-bridge", sub, dl)
	b := startBridge(t, opts)
	pub := mqtttest.Connect(t, broker.Addr, mqtttest.ClientOptions{ClientID: "publisher"})

	ts := time.Now().Add(-time.Minute).UnixMilli()
	mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(ts, `{"depth": 31, "rain": 40}`))
	mqtttest.Publish(t, pub, "v1/gateway/gw-1/telemetry", []byte(`{"Device A": [`+string(reading(ts, `{"level_mm": 250}`))+`]}`))
	mqtttest.Publish(t, pub, "v1/devices/ghost/telemetry", []byte(`{"depth": 1}`))
	mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(ts, `{"depth": 31, "rain": 40}`)) // again: the same event
	mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(ts+1000, `{"battery": 80}`))      // nothing mapped
	mqtttest.Publish(t, pub, "v1/devices/gas-1/telemetry", []byte(`[`+string(reading(ts, `{"lel": 40}`))+`, `+string(reading(ts+1, `{"lel": "high"}`))+`]`))

	sub.WaitDistinct(t, 3, 10*time.Second)
	waitFor(t, "every message acknowledged", 10*time.Second, func() bool {
		n := 0.0
		for _, o := range []string{mqtt.OutcomeBridged, mqtt.OutcomeDuplicate, mqtt.OutcomeIgnored, mqtt.OutcomeDLQ, mqtt.OutcomePartial} {
			n += counter(t, b.reg, "cityhub_mqtt_messages_total", map[string]string{"outcome": o})
		}
		return n == 6
	})
	for outcome, want := range map[string]float64{mqtt.OutcomeBridged: 2, mqtt.OutcomeDuplicate: 1, mqtt.OutcomeIgnored: 1, mqtt.OutcomeDLQ: 1, mqtt.OutcomePartial: 1} {
		if got := counter(t, b.reg, "cityhub_mqtt_messages_total", map[string]string{"outcome": outcome}); got != want {
			t.Errorf("messages %s: %v, want %v", outcome, got, want)
		}
	}
	counts := sub.Counts()
	want := []string{"wl-1:" + strconv.FormatInt(ts, 10), "wl-2:" + strconv.FormatInt(ts, 10), "gas-1:" + strconv.FormatInt(ts, 10)}
	for _, id := range want {
		if counts[id] != 1 {
			t.Errorf("event %s written %d times, want once (all %v)", id, counts[id], counts)
		}
	}
	for _, in := range sub.Inputs() {
		if in.ID == want[0] && (in.Attrs["water_depth_cm"] != 31.0 || in.Location.Street != "tianping" || in.Source != "iot") {
			t.Errorf("event %+v", in)
		}
	}
	letters := dl.Letters()
	if len(letters) != 2 {
		t.Fatalf("dead letters %+v, want 2", letters)
	}
	for i, w := range []struct{ topic, publisher, reason string }{
		{"v1/devices/ghost/telemetry", "", `device "ghost" is not in the registry`},
		{"v1/devices/gas-1/telemetry", "gas-1", `reading 1: "lel": want a number, got a string`},
	} {
		l := letters[i]
		if l.Topic != w.topic || l.Publisher != w.publisher || !strings.Contains(l.Reason, w.reason) || len(l.Payload) == 0 {
			t.Errorf("dead letter %d: %+v, want topic %s, publisher %q, reason %q", i, l, w.topic, w.publisher, w.reason)
		}
	}

	// Everything was acknowledged: a bridge that starts again under the
	// same session gets nothing again.
	b.stop(t)
	calls := sub.Calls()
	again := startBridge(t, opts)
	time.Sleep(300 * time.Millisecond)
	if sub.Calls() != calls || len(dl.Letters()) != 2 {
		t.Errorf("after a restart: %d more writes, %d dead letters: acknowledged messages came again", sub.Calls()-calls, len(dl.Letters()))
	}
	again.stop(t)
}

// Nothing is acknowledged before Kafka acknowledged it: while writes fail,
// a bridge that stops leaves every message to the next one, which writes
// them all.
func TestBridgeAcknowledgesOnlyWhatKafkaHas(t *testing.T) {
	t.Parallel()
	broker := mqtttest.StartMosquitto(t)
	down := &mqtttest.Submitter{}
	down.Fail(nil)
	dl := &mqtttest.DeadLetters{}
	opts := testOptions(t, broker.Addr, "cityhub-test-unacked", down, dl)
	opts.DrainTimeout = 100 * time.Millisecond
	b := startBridge(t, opts)
	pub := mqtttest.Connect(t, broker.Addr, mqtttest.ClientOptions{ClientID: "publisher"})
	ts := time.Now().Add(-time.Minute).UnixMilli()
	for i := range 5 {
		mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(ts+int64(i), `{"depth": 10}`))
	}
	waitFor(t, "retries of the failing write", 10*time.Second, func() bool { return down.Failed() >= 3 })
	if got := counter(t, b.reg, "cityhub_mqtt_write_retries_total", nil); got < 2 {
		t.Errorf("retries counted %v", got)
	}
	b.stop(t)

	up := &mqtttest.Submitter{Decoder: liveDecoder(t)}
	opts.Submitter = up
	next := startBridge(t, opts)
	up.WaitDistinct(t, 5, 10*time.Second)

	// A write that fails and then passes holds the acknowledgement
	// meanwhile, and loses nothing.
	up.Fail(nil)
	for i := range 5 {
		mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(ts+100+int64(i), `{"depth": 10}`))
	}
	waitFor(t, "retries", 10*time.Second, func() bool { return up.Failed() >= 2 })
	up.Heal()
	up.WaitDistinct(t, 10, 10*time.Second)
	next.stop(t)
	for id, n := range up.Counts() {
		if n != 1 {
			t.Errorf("event %s written %d times", id, n)
		}
	}
}

// A message that cannot be mapped is acknowledged only once the dead-letter
// topic has it.
func TestBridgeDeadLettersBeforeAcknowledging(t *testing.T) {
	t.Parallel()
	broker := mqtttest.StartMosquitto(t)
	sub := &mqtttest.Submitter{}
	dl := &mqtttest.DeadLetters{}
	dl.Fail(errors.New("kafka is down"))
	opts := testOptions(t, broker.Addr, "cityhub-test-dlq", sub, dl)
	opts.DrainTimeout = 100 * time.Millisecond
	b := startBridge(t, opts)
	pub := mqtttest.Connect(t, broker.Addr, mqtttest.ClientOptions{ClientID: "publisher"})
	mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", []byte(`not json`))
	waitFor(t, "retries of the dead letter", 10*time.Second, func() bool { return dl.Failed() >= 2 })
	b.stop(t)
	dl.Heal()
	next := startBridge(t, opts)
	waitFor(t, "the dead letter", 10*time.Second, func() bool { return len(dl.Letters()) == 1 })
	next.stop(t)
	l := dl.Letters()[0]
	if l.Topic != "v1/devices/wl-1/telemetry" || string(l.Payload) != "not json" || !strings.Contains(l.Reason, "payload is not JSON") {
		t.Errorf("dead letter %+v", l)
	}
}

// Intake's refusal of an event (here: a time too far ahead by intake's
// clock) dead-letters its message; the other events of the batch are
// written.
func TestBridgeDeadLettersWhatIntakeRefuses(t *testing.T) {
	t.Parallel()
	broker := mqtttest.StartMosquitto(t)
	// Intake's clock is an hour behind the bridge's.
	sub := &mqtttest.Submitter{Decoder: &events.Decoder{Catalog: testCatalog(t), Now: func() time.Time { return time.Now().Add(-time.Hour) }}}
	dl := &mqtttest.DeadLetters{}
	opts := testOptions(t, broker.Addr, "cityhub-test-refused", sub, dl)
	opts.Linger = 200 * time.Millisecond // one batch
	b := startBridge(t, opts)
	pub := mqtttest.Connect(t, broker.Addr, mqtttest.ClientOptions{ClientID: "publisher"})
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(old, `{"depth": 1}`))
	mqtttest.Publish(t, pub, "v1/devices/wl-1/telemetry", reading(time.Now().UnixMilli(), `{"depth": 2}`))
	sub.WaitDistinct(t, 1, 10*time.Second)
	waitFor(t, "the dead letter", 10*time.Second, func() bool { return len(dl.Letters()) == 1 })
	b.stop(t)
	if l := dl.Letters()[0]; !strings.Contains(l.Reason, "intake refused event wl-1:") || !strings.Contains(l.Reason, "occurred_at") {
		t.Errorf("dead letter %+v", l)
	}
	if c := sub.Counts(); c["wl-1:"+strconv.FormatInt(old, 10)] != 1 || len(c) != 1 {
		t.Errorf("written %v", c)
	}
}

// killDialer dials the broker and can cut every connection it made, as a
// crash or a network fault would: no DISCONNECT, no acknowledgement.
type killDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.conns = append(k.conns, c)
	return c, nil
}

func (k *killDialer) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.(*net.TCPConn).SetLinger(0) // a reset, as from a dead process
		c.Close()
	}
	k.conns = nil
}

// flakySubmitter fails one call in every few, as a Kafka leader election
// would, and every call once it is dead: a crashed bridge writes nothing
// more.
type flakySubmitter struct {
	*mqtttest.Submitter
	calls atomic.Int64
	every int64
	dead  atomic.Bool
}

func (f *flakySubmitter) Submit(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	if f.dead.Load() {
		return nil, errors.New("the bridge crashed")
	}
	if f.calls.Add(1)%f.every == 0 {
		return nil, mqtttest.ErrUnavailable
	}
	return f.Submitter.Submit(ctx, via, p, in)
}

// TestBridgeKilledMidStreamLosesNothing publishes N readings while the
// bridge is stopped again and again — by its context (a graceful stop) or
// by cutting its connection and abandoning it (a crash: no drain, nothing
// in memory kept) — while one write in four fails. At the end every
// reading reached Submit, and by their ids they are exactly N events.
func TestBridgeKilledMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	const n = 3000
	broker := mqtttest.StartMosquitto(t)
	written := &mqtttest.Submitter{Decoder: liveDecoder(t)}
	sub := &flakySubmitter{Submitter: written, every: 4}
	dl := &mqtttest.DeadLetters{}

	pub := mqtttest.Connect(t, broker.Addr, mqtttest.ClientOptions{ClientID: "publisher"})
	start := time.Now().Add(-time.Hour).UnixMilli()
	published := make(chan error, 1)
	// The first bridge subscribes before anything is published, so its
	// session holds every message from the first on.
	kd := &killDialer{}
	opts := testOptions(t, broker.Addr, "cityhub-test-killed", sub, dl)
	opts.Dial = kd.dial
	opts.MaxBatch = 50 // many batches, so that kills land between and within them
	b := startBridge(t, opts)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := range n {
			if err := mqtttest.Send(ctx, pub, "v1/devices/wl-1/telemetry", reading(start+int64(i), `{"depth": `+strconv.Itoa(i%90)+`}`)); err != nil {
				published <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			if i%50 == 0 {
				time.Sleep(20 * time.Millisecond) // spread the stream over the kills
			}
		}
		published <- nil
	}()

	rnd := rand.New(rand.NewPCG(1, 2))
	kills := 0
	for done := false; !done; {
		time.Sleep(time.Duration(30+rnd.IntN(100)) * time.Millisecond)
		if kills%3 == 0 {
			b.stop(t) // graceful: drains the batch under way
		} else {
			// A crash: the bridge is abandoned with whatever it held, its
			// connection cut before it could acknowledge or write anything
			// more.
			sub.dead.Store(true)
			b.cancel()
			kd.cut()
			b.stop(t)
			sub = &flakySubmitter{Submitter: written, every: 4}
			opts.Submitter = sub
		}
		kills++
		select {
		case err := <-published:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		b = startBridge(t, opts)
	}
	written.WaitDistinct(t, n, 60*time.Second)
	b.stop(t)

	counts := written.Counts()
	total := 0
	for i := range n {
		id := "wl-1:" + strconv.FormatInt(start+int64(i), 10)
		if counts[id] == 0 {
			t.Errorf("reading %d (%s) never reached Submit", i, id)
		}
		total += counts[id]
	}
	if len(counts) != n {
		t.Errorf("%d distinct events, want %d", len(counts), n)
	}
	if len(dl.Letters()) != 0 {
		t.Errorf("dead letters: %+v", dl.Letters())
	}
	t.Logf("%d readings, %d kills, %d writes of them (%d again after a kill)", n, kills, total, total-n)
	if kills < 3 {
		t.Errorf("only %d kills during the stream", kills)
	}
}
