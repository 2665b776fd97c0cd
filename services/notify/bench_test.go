package notify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// benchCases is how many case changes one run of BenchmarkDecide decides.
const benchCases = 20000

// BenchmarkDecide measures the deciding half of notify — case changes
// consumed from city.cases.v1, routed through the shipped notify.yaml
// (rosters, paging ladders, repeats), written to the outbox, consumed from
// it and applied to the Redis delivery queue — against a bare group
// reader consuming and decoding the same changes, in the same run. The
// changes are dispatches to the catalog's departments and the accepts
// that stop their paging, so both notifications and cancels are decided.
//
// Reported: changes/s through notify, raw-changes/s, and notify/raw.
func BenchmarkDecide(b *testing.B) {
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
	cfg, err := config.Load("../../rules/notify.yaml", cat)
	if err != nil {
		b.Fatal(err)
	}
	changes := caseWorkload(b, cat, benchCases)
	decider := NewDecider(cfg, cat, holidays{}, cat.WorkCalendar().Location(), nil, "https://hub.example")
	// The floor's outbox: what the changes decide, decided beforehand, on
	// a topic of its own.
	floor := &Service{opts: Options{Topics: stream.Topics{Notifications: "bench.floor.v1"}}}
	if err := stream.EnsureTopics(context.Background(), k.Brokers, kafkatest.Partitions, 1, floor.opts.Topics.Notifications); err != nil {
		b.Fatal(err)
	}
	var decided []kafka.Message
	msgs := make([]kafka.Message, len(changes))
	for i, cc := range changes {
		out, err := floor.encode(decider.Case(cc), cfg)
		if err != nil {
			b.Fatal(err)
		}
		decided = append(decided, out.outbox...)
		if msgs[i], err = stream.Marshal(k.Topics.Cases, cc.GetCase().GetDistrict(), cc); err != nil {
			b.Fatal(err)
		}
	}
	outbox := len(decided)
	for i := 0; i < len(msgs); i += 1000 {
		if err := w.Write(context.Background(), msgs[i:min(i+1000, len(msgs))]...); err != nil {
			b.Fatal(err)
		}
	}

	var notifyTime, rawTime, floorTime time.Duration
	b.ResetTimer()
	for range b.N {
		if err := redistest.Flush(context.Background(), rdb.Client); err != nil {
			b.Fatal(err)
		}
		notifyTime += runDecide(b, k, w, rdb, cat, cfg, outbox)
		rawTime += kafkatest.ConsumeRaw(b, k.Brokers, k.Topics.Cases, len(changes), 4096, func(m kafka.Message) error {
			return stream.Unmarshal(m, &cityhubv1.CaseChange{})
		})
		floorTime += runFloor(b, k, w, rdb, len(changes), decided)
	}
	b.StopTimer()
	rate := float64(b.N*len(changes)) / notifyTime.Seconds()
	raw := float64(b.N*len(changes)) / rawTime.Seconds()
	floorRate := float64(b.N*len(changes)) / floorTime.Seconds()
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(raw, "raw-changes/s")
	b.ReportMetric(rate/raw, "notify/raw")
	b.ReportMetric(floorRate/raw, "floor/raw")
	b.ReportMetric(float64(outbox)/float64(len(changes)), "outbox/change")
	b.ReportMetric(rate*float64(outbox)/float64(len(changes)), "notifications/s")
}

// runFloor does, in the least time it can, what any notify must do for
// the changes under DESIGN §4.9 whatever it decides: read them, write the
// notifications they decide to the outbox (acknowledged before anything
// is sent), and keep each in Redis for its receiver's worker (one HSET
// and one ZADD, pipelined, no scripts). Nothing is decided — the
// notifications were decided beforehand — and nothing waits for anything:
// the three run side by side. No implementation can be faster, so
// floor/raw bounds notify/raw from above.
func runFloor(b *testing.B, k *kafkatest.Cluster, w *stream.Writer, rdb *redistest.Server, changes int, decided []kafka.Message) time.Duration {
	b.Helper()
	ctx := context.Background()
	if err := redistest.Flush(ctx, rdb.Client); err != nil {
		b.Fatal(err)
	}
	const chunk = 4096
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	start := time.Now()
	wg.Go(func() {
		for i := 0; i < len(decided); i += chunk {
			if err := w.Write(ctx, decided[i:min(i+chunk, len(decided))]...); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; i < len(decided); i += chunk {
			p := rdb.Client.Pipeline()
			for j, m := range decided[i:min(i+chunk, len(decided))] {
				id := strconv.Itoa(i + j)
				p.HSet(ctx, "bench:floor:d", id, m.Value)
				p.ZAdd(ctx, "bench:floor:due", redis.Z{Score: float64(i + j), Member: id})
			}
			if _, err := p.Exec(ctx); err != nil {
				errs <- err
				return
			}
		}
	})
	kafkatest.ConsumeRaw(b, k.Brokers, k.Topics.Cases, changes, 4096, func(m kafka.Message) error {
		return stream.Unmarshal(m, &cityhubv1.CaseChange{})
	})
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}

// runDecide runs the service on new consumer groups until every outbox
// message the changes decide is applied to the queue, and returns how long
// that took. The outbox topic holds the earlier runs' messages too: the
// count goes on from them.
func runDecide(b *testing.B, k *kafkatest.Cluster, w *stream.Writer, rdb *redistest.Server, cat *catalog.Catalog, cfg *config.Config, outbox int) time.Duration {
	b.Helper()
	svc, err := New(Options{
		Brokers: k.Brokers, Topics: k.Topics, GroupPrefix: kafkatest.Group("bench") + "-", Redis: rdb.Client, Writer: w,
		Config: cfg, Catalog: cat, Calendar: holidays{}, BaseURL: "https://hub.example", Dev: true,
		AckKey: []byte("0123456789abcdef0123456789abcdef"), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- svc.Run(ctx) }()
	deadline := start.Add(5 * time.Minute)
	for testutil.ToFloat64(svc.metrics.decided.WithLabelValues(config.StreamCases)) < float64(outbox) || testutil.ToFloat64(svc.metrics.applied) < testutil.ToFloat64(svc.metrics.decided.WithLabelValues(config.StreamCases)) {
		if time.Now().After(deadline) {
			b.Fatalf("notify did not decide and queue every change within 5 minutes: %v of %d decided, %v queued",
				testutil.ToFloat64(svc.metrics.decided.WithLabelValues(config.StreamCases)), outbox, testutil.ToFloat64(svc.metrics.applied))
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// caseWorkload returns n case changes: cases of the catalog's event types
// in every district dispatched to their owners (some with an assisting
// department), and for about half of them the accept that follows.
func caseWorkload(b *testing.B, cat *catalog.Catalog, n int) []*cityhubv1.CaseChange {
	b.Helper()
	rnd := rand.New(rand.NewPCG(7, 11))
	now := time.Now()
	var out []*cityhubv1.CaseChange
	for i := 0; len(out) < n; i++ {
		et := cat.EventTypes[rnd.IntN(len(cat.EventTypes))]
		d := cat.Districts[rnd.IntN(len(cat.Districts))]
		c := &cityhubv1.Case{Id: fmt.Sprintf("%s-bench%06d", d.Code, i), District: d.Code, Title: et.Name, EventType: et.Code,
			Severity: cityhubv1.Severity(1 + rnd.IntN(4))}
		spec := &cityhubv1.DispatchSpec{Lead: et.Owner, Sla: &cityhubv1.Sla{Accept: durationpb.New(10 * time.Minute), Handle: durationpb.New(2 * time.Hour)}}
		if rnd.IntN(4) == 0 && et.Owner != "district-centre" {
			spec.Assist = []string{"district-centre"}
		}
		entry, err := lifecycle.New(c, spec, lifecycle.Actor{Subject: "rule:bench", Role: lifecycle.RoleSystem}, now, nil)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, &cityhubv1.CaseChange{Case: proto.Clone(c).(*cityhubv1.Case), Change: entry})
		if rnd.IntN(2) == 0 && len(out) < n {
			e, err := lifecycle.Apply(c, lifecycle.Request{Action: lifecycle.Accept}, lifecycle.Actor{Subject: "duty", Role: auth.RoleDepartment, Dept: et.Owner}, now.Add(time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			c.Version++ // as the case store numbers a change
			e.Version = c.GetVersion()
			out = append(out, &cityhubv1.CaseChange{Case: proto.Clone(c).(*cityhubv1.Case), Change: e})
		}
	}
	return out
}
