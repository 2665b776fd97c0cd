package dispatch_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// killAfter cancels a run once the client has run n scripts, from inside
// the n-th: the dispatcher dies in the middle of opening a case, as a
// killed process would.
type killAfter struct {
	n      int64
	count  atomic.Int64
	cancel context.CancelFunc
}

func (k *killAfter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (k *killAfter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			if k.count.Add(1) == k.n {
				k.cancel()
			}
		}
		return next(ctx, cmd)
	}
}

func (k *killAfter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestKilledConsumerOpensNoDuplicateCase kills the alert consumer in the
// middle of a batch — some cases opened in Redis, their changes not yet on
// Kafka, the batch not committed — starts it again in the same group, and
// checks that every alert firing has exactly one case and one creation on
// city.cases.v1 at least.
func TestKilledConsumerOpensNoDuplicateCase(t *testing.T) {
	const alerts = 150
	h := start(t)
	msgs := make([]kafka.Message, alerts)
	for i := range msgs {
		m, err := stream.Marshal(h.k.Topics.Alerts, "xuhui", firing(fmt.Sprintf("alert-%03d", i), "xuhui", true))
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	h.produce(msgs...)
	group := kafkatest.Group("dispatch-kill")

	// Lives that die while opening their 30th case, until one dies in the
	// middle of a batch: a kill that lands between two batches (the first
	// had everything that had arrived) leaves nothing unpublished, and
	// tests nothing; the next life goes on from there.
	var opened, published int
	for life := 1; ; life++ {
		rdb, err := redisclient.New(h.redis.URL)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		rdb.AddHook(&killAfter{n: 30, cancel: cancel})
		err = newDispatcher(t, h, rdb, group).Run(ctx)
		cancel()
		rdb.Close()
		if err != nil {
			t.Fatalf("life %d: %v", life, err)
		}
		opened, published = len(h.allCases()), len(h.changes())
		if published < opened && opened < alerts {
			t.Logf("life %d killed with %d cases opened and %d published", life, opened, published)
			break
		}
		if life == 4 {
			t.Fatalf("no life died mid-batch in %d: %d cases opened, %d published", life, opened, published)
		}
	}

	// Second life, same group: takes the uncommitted batch again.
	second := newDispatcher(t, h, h.redis.Client, group)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx2) }()
	waitFor(t, "every alert's case on the cases topic", func() bool {
		seen := map[string]bool{}
		for _, ch := range h.changes() {
			seen[ch.GetCase().GetAlertId()] = true
		}
		return len(seen) == alerts
	})
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("second run: %v", err)
	}

	perAlert := map[string][]string{}
	for _, c := range h.allCases() {
		perAlert[c.GetAlertId()] = append(perAlert[c.GetAlertId()], c.GetId())
	}
	if len(perAlert) != alerts {
		t.Errorf("%d alerts have cases, want %d", len(perAlert), alerts)
	}
	for a, ids := range perAlert {
		if len(ids) != 1 {
			t.Errorf("alert %s opened %d cases: %v", a, len(ids), ids)
		}
	}
	created := map[string]string{} // alert → case id on the topic
	for _, ch := range h.changes() {
		a, id := ch.GetCase().GetAlertId(), ch.GetCase().GetId()
		if prev, ok := created[a]; ok && prev != id {
			t.Errorf("alert %s published as two cases: %s and %s", a, prev, id)
		}
		created[a] = id
	}
}

// newDispatcher is a dispatch service on the harness's Kafka, consuming as
// group, with its own Redis client.
func newDispatcher(t *testing.T, h *harness, rdb redis.UniversalClient, group string) *dispatch.Service {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dispatch.New(dispatch.Options{
		Brokers: h.k.Brokers, Topics: h.k.Topics, Group: group, Redis: rdb, Writer: h.writer,
		Catalog: cat, Verifier: verifier, Registerer: prometheus.NewRegistry(), Now: h.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
