package ruler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
)

// stageEvents is how many events each round of BenchmarkStage consumes.
const stageEvents = 20000

// BenchmarkStage measures the ruler as a stage of the pipeline: stageEvents
// events on the events topic (kfake over TCP, three partitions), consumed
// by the ruler with the city's packs, its alert state in a real
// redis-server and its alerts written to the alerts topic. In the same run,
// on the same broker and topic, it measures the floor any consumer of the
// topic stands on: a kafka-go group reader configured as stream.Consumer
// configures it, fetching, decoding every event and committing in batches
// of up to 256, doing nothing else. Both start from a new consumer group
// (group join included) and stop when the last event is done.
//
// Reported: ruler-events/s, raw-events/s, and ruler/raw, the share of the
// raw consumption rate the ruler keeps.
func BenchmarkStage(b *testing.B) {
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
	evs := stageWorkload(cat, stageEvents)
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		if msgs[i], err = stream.Marshal(k.Topics.Events, ev.GetLocation().GetDistrict(), ev); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < len(msgs); i += 1000 {
		if err := w.Write(context.Background(), msgs[i:min(i+1000, len(msgs))]...); err != nil {
			b.Fatal(err)
		}
	}

	var rulerTime, rawTime time.Duration
	var alerts float64
	b.ResetTimer()
	for range b.N {
		if err := rdb.Client.FlushAll(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		d, published := runRuler(b, k, w, rdb, cat)
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
func runRuler(b *testing.B, k *kafkatest.Cluster, w *stream.Writer, rdb *redistest.Server, cat *catalog.Catalog) (time.Duration, float64) {
	b.Helper()
	reg := prometheus.NewRegistry()
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("bench-ruler"),
		Redis: rdb.Client, Writer: w, PacksDir: "../../rules/packs", Catalog: cat,
		Logger: logging.Discard(), Registerer: reg, PollInterval: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(ctx) }()
	deadline := start.Add(5 * time.Minute)
	for gather(b, reg, "cityhub_ruler_events_total") < stageEvents {
		if time.Now().After(deadline) {
			b.Fatal("the ruler did not consume every event within 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed, gather(b, reg, "cityhub_ruler_alerts_published_total")
}

// runRaw consumes every event with a bare group reader and returns how
// long that took.
func runRaw(b *testing.B, k *kafkatest.Cluster) time.Duration {
	b.Helper()
	const maxBatch = ruler.MaxBatch
	start := time.Now()
	// The configuration of stream.Consumer's reader.
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:               k.Brokers,
		GroupID:               kafkatest.Group("bench-raw"),
		Topic:                 k.Topics.Events,
		MinBytes:              1,
		MaxBytes:              16 << 20,
		MaxWait:               250 * time.Millisecond,
		CommitInterval:        time.Second,
		StartOffset:           kafka.FirstOffset,
		WatchPartitionChanges: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// As stream.Consumer does: one goroutine fetches, the loop takes what
	// has arrived as a batch.
	msgs := make(chan kafka.Message, maxBatch)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	go func() {
		defer close(msgs)
		for {
			m, err := r.FetchMessage(fetchCtx)
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-fetchCtx.Done():
				return
			}
		}
	}()
	batch := make([]kafka.Message, 0, maxBatch)
	n := 0
	for n < stageEvents {
		m, ok := <-msgs
		if !ok {
			b.Fatalf("raw consumer stopped after %d events: %v", n, ctx.Err())
		}
		batch = append(batch[:0], m)
	fill:
		for len(batch) < maxBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		for _, m := range batch {
			ev := &cityhubv1.Event{}
			if err := stream.Unmarshal(m, ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.CommitMessages(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
	}
	elapsed := time.Since(start)
	stopFetch()
	for range msgs {
	}
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	return elapsed
}

func gather(b *testing.B, reg *prometheus.Registry, name string) float64 {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
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
