package mqtt_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/intake/mqtt/mqtttest"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
)

// BenchmarkBridge measures the messages per second the bridge takes from a
// mosquitto broker — mapping, batching, Submit (a fake that only counts)
// and acknowledging each message after its batch — against a raw paho
// subscriber that does nothing with a message but acknowledge it, on the
// same broker in the same run.
//
// The b.N readings are published in four rounds while both sessions are
// away, so that each drains the same queue; within a round one goes first,
// the other in the next round, so that a machine whose load drifts weighs
// on both alike. The timed part is the bridge's. It reports msg/s of both
// and x-raw, the bridge's rate over the raw subscriber's. Run it with a
// fixed count:
//
//	go test -run '^$' -bench BenchmarkBridge -benchtime 40000x ./mqtt/
func BenchmarkBridge(b *testing.B) {
	b.StopTimer()
	broker := mqtttest.StartMosquitto(b)
	run := strconv.Itoa(b.N)
	rawID, bridgeID := "raw-"+run, "cityhub-bench-"+run

	// Both sessions subscribe, then go away.
	raw := mqtttest.Connect(b, broker.Addr, mqtttest.ClientOptions{ClientID: rawID, SessionExpiry: time.Hour, CleanStart: true})
	mqtttest.Subscribe(b, raw, "v1/devices/+/telemetry")
	mqtttest.Disconnect(raw)
	var submitted atomic.Int64
	submit := intake.SubmitFunc(func(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
		submitted.Add(int64(len(in)))
		return nil, nil
	})
	opts := testOptions(b, broker.Addr, bridgeID, submit, &mqtttest.DeadLetters{})
	tune(&opts)
	// One bridge runs in every round, as a bridge restarts: what it wrote
	// and the broker delivers again (an acknowledgement a stop cut off) it
	// acknowledges as a duplicate.
	br := newRestartable(b, opts)
	br.run(b)()

	const rounds = 4
	var rawTime, bridgeTime time.Duration
	var bridged float64
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for r := range rounds {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		if n == 0 {
			continue
		}
		publish(b, broker.Addr, ts, n)
		ts += int64(n)
		drainRaw := func() {
			var got atomic.Int64
			all := make(chan struct{})
			start := time.Now()
			c := mqtttest.Connect(b, broker.Addr, mqtttest.ClientOptions{ClientID: rawID, SessionExpiry: time.Hour, ReceiveMaximum: opts.ReceiveMaximum,
				OnPublish: func(*paho.Publish) {
					if got.Add(1) == int64(n) {
						close(all)
					}
				}})
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("the raw subscriber got %d of %d messages in 5 minutes", got.Load(), n)
			}
			rawTime += time.Since(start)
			mqtttest.Disconnect(c)
		}
		drainBridge := func() {
			want := submitted.Load() + int64(n)
			b.StartTimer()
			start := time.Now()
			stop := br.run(b)
			for submitted.Load() < want {
				time.Sleep(100 * time.Microsecond)
			}
			bridgeTime += time.Since(start)
			b.StopTimer()
			bridged += float64(n)
			waitFor(b, "every message acknowledged", time.Minute, func() bool {
				return counter(b, br.reg, "cityhub_mqtt_messages_total", map[string]string{"outcome": mqtt.OutcomeBridged}) == bridged
			})
			stop()
		}
		if r%2 == 0 {
			drainRaw()
			drainBridge()
		} else {
			drainBridge()
			drainRaw()
		}
	}
	if bridged != float64(b.N) || submitted.Load() != int64(b.N) {
		b.Fatalf("bridged %v, submitted %d events of %d messages", bridged, submitted.Load(), b.N)
	}
	rawRate := float64(b.N) / rawTime.Seconds()
	bridgeRate := float64(b.N) / bridgeTime.Seconds()
	b.ReportMetric(bridgeRate, "msg/s")
	b.ReportMetric(rawRate, "raw-msg/s")
	b.ReportMetric(bridgeRate/rawRate, "x-raw")
}

// restartable is one bridge that runs and stops again and again.
type restartable struct {
	*mqtt.Bridge
	reg *prometheus.Registry
}

func newRestartable(b *testing.B, opts mqtt.Options) *restartable {
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	br, err := mqtt.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return &restartable{Bridge: br, reg: reg}
}

// run runs the bridge until the func it returns is called, which waits
// for Run to return. It returns once the bridge is connected.
func (r *restartable) run(b *testing.B) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); r.Check(ctx) != nil; time.Sleep(200 * time.Microsecond) {
		if time.Now().After(deadline) {
			b.Fatal("the bridge did not connect within 10s")
		}
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// tune lets a run try other batching settings:
// MQTT_BENCH_BATCH=250 MQTT_BENCH_ACK=1ms MQTT_BENCH_LINGER=2ms MQTT_BENCH_RECEIVE=1000.
func tune(o *mqtt.Options) {
	if v, err := strconv.Atoi(os.Getenv("MQTT_BENCH_BATCH")); err == nil {
		o.MaxBatch = v
	}
	if v, err := strconv.Atoi(os.Getenv("MQTT_BENCH_RECEIVE")); err == nil {
		o.ReceiveMaximum = v
	}
	if v, err := time.ParseDuration(os.Getenv("MQTT_BENCH_ACK")); err == nil {
		o.AckInterval = v
	}
	if v, err := time.ParseDuration(os.Getenv("MQTT_BENCH_LINGER")); err == nil {
		o.Linger = v
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = mqtt.DefaultReceiveMaximum
	}
}

// publish publishes n readings, from ts on, with QoS 1 from a few
// connections at once and returns once the broker acknowledged them all.
func publish(b *testing.B, addr string, ts int64, n int) {
	b.Helper()
	const publishers = 8
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		c := mqtttest.Connect(b, addr, mqtttest.ClientOptions{ClientID: fmt.Sprintf("publisher-%d", p)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer mqtttest.Disconnect(c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for i := p; i < n; i += publishers {
				payload := reading(ts+int64(i), `{"depth": `+strconv.Itoa(i%90)+`, "rain": 12.5, "battery": 87}`)
				if err := mqtttest.Send(ctx, c, "v1/devices/wl-1/telemetry", payload); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
