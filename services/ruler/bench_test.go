package ruler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/workload"
	"github.com/cityhub/cityhub/services/ruler"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

// stageEvents is how many events each round of BenchmarkStage consumes.
const stageEvents = 50000

// BenchmarkStage measures the ruler as a stage of the pipeline: stageEvents
// events on the events topic (kfake over TCP, three partitions), consumed
// by the ruler with the city's packs, its alert state in a real
// redis-server and its alerts written to the alerts topic. In the same run,
// on the same broker and topic, it measures the floor any consumer of the
// topic stands on: a kafka-go group reader configured as stream.Consumer
// configures it, fetching and decoding every event and committing in batches
// of up to ruler.MaxBatch, doing nothing else. Both start from a new
// consumer group (group join included) and stop when the last event is
// done.
//
// Three streams (cityWorkload, stageWorkload):
//   - mix=city, as a city sends events on an ordinary day: 93% are
//     readings of sensors and cameras, most of them unremarkable, the rest
//     reports — 12345 calls, inspectors, video-AI detections;
//   - mix=reports, a day of many reports: 30% of all events, one in five
//     adding to a count rule's window;
//   - mix=uniform, every event type equally often with attribute values
//     spread evenly over their ranges, so that a quarter of all events
//     change an alert: a storm, the worst case.
//
// Reported: ruler-events/s, raw-events/s, and ruler/raw, the share of the
// raw consumption rate the ruler keeps.
func BenchmarkStage(b *testing.B) {
	b.Run("mix=city", func(b *testing.B) {
		benchmarkStage(b, func(cat *catalog.Catalog, n int) []*cityhubv1.Event { return cityWorkload(cat, n, 0.93) })
	})
	b.Run("mix=reports", func(b *testing.B) {
		benchmarkStage(b, func(cat *catalog.Catalog, n int) []*cityhubv1.Event { return cityWorkload(cat, n, 0.70) })
	})
	b.Run("mix=uniform", func(b *testing.B) { benchmarkStage(b, stageWorkload) })
}

func benchmarkStage(b *testing.B, workload func(*catalog.Catalog, int) []*cityhubv1.Event) {
	k := kafkatest.Start(b)
	rdb := redistest.Start(b)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cat, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		b.Fatal(err)
	}
	produceAll(b, w, k, workload(cat, stageEvents))

	var rulerTime, rawTime time.Duration
	var alerts float64
	b.ResetTimer()
	for range b.N {
		if err := redistest.Flush(context.Background(), rdb.Client); err != nil {
			b.Fatal(err)
		}
		d, published := runRuler(b, k, w, rdb, cat, 0)
		rulerTime += d
		alerts += published
		rawTime += runRaw(b, k)
	}
	b.StopTimer()
	rulerRate := float64(b.N*stageEvents) / rulerTime.Seconds()
	rawRate := float64(b.N*stageEvents) / rawTime.Seconds()
	b.ReportMetric(rulerRate, "ruler-events/s")
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(rulerRate/rawRate, "ruler/raw")
	b.ReportMetric(alerts/float64(b.N*stageEvents), "alerts/event")
}

// runRuler runs a ruler of a new group until it has applied every event,
// and returns how long that took and how many alerts it published.
// A sweep of zero sweeps every ruler.DefaultSweepInterval.
func runRuler(b *testing.B, k *kafkatest.Cluster, w *stream.Writer, rdb *redistest.Server, cat *catalog.Catalog, sweep time.Duration) (time.Duration, float64) {
	b.Helper()
	reg := &watching{Registerer: prometheus.NewRegistry(), name: "cityhub_ruler_events_total"}
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("bench-ruler"),
		Redis: rdb.Client, Writer: w, PacksDir: "../../rules/packs", Catalog: cat,
		Logger: logging.Discard(), Registerer: reg, PollInterval: -1, SweepInterval: sweep,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(ctx) }()
	deadline := start.Add(5 * time.Minute)
	for testutil.ToFloat64(reg.counter) < stageEvents {
		if time.Now().After(deadline) {
			b.Fatal("the ruler did not consume every event within 5 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed, counterValue(b, reg.Registerer.(*prometheus.Registry), "cityhub_ruler_alerts_published_total")
}

// silentDevices is how many waits BenchmarkSilentDevices arms.
const silentDevices = 10000

// BenchmarkSilentDevices measures what the waits of absent rules cost the
// ruler: the city mix as BenchmarkStage runs it, alternately on a Redis
// without waits and on one holding silentDevices armed waits (devices that
// reported once and will count as silent in an hour), the ruler sweeping
// every 100 ms rather than every 10 s so that the waits' index is read
// fifty times as often as in service. In both, the city mix's rain gauge
// and methane readings are signs of life for the packs' absent rules.
//
// Reported: without-events/s, with-events/s and with/without.
func BenchmarkSilentDevices(b *testing.B) {
	k := kafkatest.Start(b)
	rdb := redistest.Start(b)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cat, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		b.Fatal(err)
	}
	produceAll(b, w, k, cityWorkload(cat, stageEvents, 0.93))
	store, err := alertstate.New(alertstate.Options{Client: rdb.Client})
	if err != nil {
		b.Fatal(err)
	}
	arm := func() {
		at := time.Now()
		for i := 0; i < silentDevices; i += 1000 {
			signals := make([]alertstate.Signal, 0, 1000)
			for j := i; j < i+1000; j++ {
				id := fmt.Sprintf("device-%05d", j)
				signals = append(signals, alertstate.Signal{
					ID: id, Alert: &cityhubv1.Alert{Id: id, Rule: "flood-control/rain-gauge-silent", Labels: map[string]string{"attrs.gauge_id": id}},
					EventID: "iot/" + id, EventTime: at, For: time.Hour,
				})
			}
			if _, _, err := store.Signal(context.Background(), signals); err != nil {
				b.Fatal(err)
			}
			if err := store.Describe(context.Background(), signals); err != nil {
				b.Fatal(err)
			}
		}
	}
	const sweep = 100 * time.Millisecond
	var without, with time.Duration
	b.ResetTimer()
	for range b.N {
		if err := redistest.Flush(context.Background(), rdb.Client); err != nil {
			b.Fatal(err)
		}
		d, _ := runRuler(b, k, w, rdb, cat, sweep)
		without += d
		b.StopTimer()
		if err := redistest.Flush(context.Background(), rdb.Client); err != nil {
			b.Fatal(err)
		}
		arm()
		b.StartTimer()
		d, _ = runRuler(b, k, w, rdb, cat, sweep)
		with += d
	}
	b.StopTimer()
	if n, err := rdb.Client.ZCard(context.Background(), alertstate.AbsentKey).Result(); err != nil || n < silentDevices {
		b.Fatalf("%d waits armed at the end (%v), want at least %d", n, err, silentDevices)
	}
	withoutRate := float64(b.N*stageEvents) / without.Seconds()
	withRate := float64(b.N*stageEvents) / with.Seconds()
	b.ReportMetric(withoutRate, "without-events/s")
	b.ReportMetric(withRate, "with-events/s")
	b.ReportMetric(withRate/withoutRate, "with/without")
}

// produceAll writes evs to the events topic.
func produceAll(b *testing.B, w *stream.Writer, k *kafkatest.Cluster, evs []*cityhubv1.Event) {
	b.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		var err error
		if msgs[i], err = stream.Marshal(k.Topics.Events, ev.GetLocation().GetDistrict(), ev); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < len(msgs); i += 1000 {
		if err := w.Write(context.Background(), msgs[i:min(i+1000, len(msgs))]...); err != nil {
			b.Fatal(err)
		}
	}
}

// watching is a Registerer that keeps the counter named name when it is
// registered, so that the benchmark can watch it without gathering the
// whole registry, which at this rate costs a good part of the ruler's own
// work.
type watching struct {
	prometheus.Registerer
	name    string
	counter prometheus.Counter
}

func (w *watching) Register(c prometheus.Collector) error {
	if ctr, ok := c.(prometheus.Counter); ok && strings.Contains(ctr.Desc().String(), `"`+w.name+`"`) {
		w.counter = ctr
	}
	return w.Registerer.Register(c)
}

func (w *watching) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := w.Register(c); err != nil {
			panic(err)
		}
	}
}

// runRaw consumes every event with a bare group reader and returns how
// long that took.
func runRaw(b *testing.B, k *kafkatest.Cluster) time.Duration {
	return kafkatest.ConsumeRaw(b, k.Brokers, k.Topics.Events, stageEvents, ruler.MaxBatch, func(m kafka.Message) error {
		return stream.Unmarshal(m, &cityhubv1.Event{})
	})
}

// stageWorkload returns n events of every type of the catalog from every
// district, with attribute values in their natural ranges, so that the
// city's packs raise alerts for some and most match nothing.
func stageWorkload(cat *catalog.Catalog, n int) []*cityhubv1.Event {
	rnd := rand.New(rand.NewPCG(3, 4))
	at := time.Now().Add(-time.Hour).UTC()
	out := make([]*cityhubv1.Event, n)
	for i := range out {
		t := cat.EventTypes[rnd.IntN(len(cat.EventTypes))]
		attrs := map[string]*structpb.Value{}
		for name, typ := range t.Attrs {
			switch typ {
			case catalog.AttrNumber:
				attrs[name] = structpb.NewNumberValue(float64(rnd.IntN(60)))
			case catalog.AttrString:
				attrs[name] = structpb.NewStringValue(fmt.Sprintf("%s-%d", name, rnd.IntN(100)))
			case catalog.AttrBool:
				attrs[name] = structpb.NewBoolValue(rnd.IntN(2) == 0)
			}
		}
		out[i] = &cityhubv1.Event{
			Id:         fmt.Sprintf("stage-%d", i),
			Source:     []string{"iot", "hotline", "video", "inspector"}[rnd.IntN(4)],
			Type:       t.Code,
			OccurredAt: timestamppb.New(at.Add(time.Duration(i) * 100 * time.Millisecond)),
			Location: &cityhubv1.Location{
				District: cat.Districts[rnd.IntN(len(cat.Districts))].Code,
				Street:   fmt.Sprintf("street-%d", rnd.IntN(200)),
				Lon:      121.3 + rnd.Float64()/2, Lat: 31.1 + rnd.Float64()/4,
			},
			Attrs: &structpb.Struct{Fields: attrs},
		}
	}
	return out
}

// cityWorkload returns n events as a city's stream brings them
// (workload.Day): readings as the readings' share, most of them ordinary,
// and the rest reports.
func cityWorkload(cat *catalog.Catalog, n int, readings float64) []*cityhubv1.Event {
	day := workload.NewDay(cat, readings, rand.New(rand.NewPCG(5, 6)))
	at := time.Now().Add(-time.Hour).UTC()
	out := make([]*cityhubv1.Event, n)
	for i := range out {
		e := day.Next()
		attrs, err := structpb.NewStruct(e.Attrs)
		if err != nil {
			panic(err) // numbers, strings and booleans always convert
		}
		out[i] = &cityhubv1.Event{
			Id:         fmt.Sprintf("city-%d", i),
			Source:     e.Source,
			Type:       e.Type.Code,
			OccurredAt: timestamppb.New(at.Add(time.Duration(i) * 100 * time.Millisecond)),
			Location: &cityhubv1.Location{
				District: e.District.Code, Street: e.Street, Grid: e.Grid, Lon: e.Lon, Lat: e.Lat,
			},
			Attrs: attrs,
		}
	}
	return out
}
