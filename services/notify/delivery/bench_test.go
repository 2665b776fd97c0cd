package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/notify/queue"
	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// BenchmarkDelivery measures deliveries per second to a local webhook
// through the engine — claimed from the Redis queue, rendered, signed as a
// CloudEvent, sent, recorded and settled — against bare HTTP client loops
// posting bodies of the same size to the same server, in the same run,
// with as many requests in flight as the receiver's parallel allows. The
// ratio is what the engine's durability costs.
func BenchmarkDelivery(b *testing.B) {
	for _, parallel := range []int{1, 4} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) { benchmarkDelivery(b, parallel) })
	}
}

func benchmarkDelivery(b *testing.B, parallel int) {
	var took atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		took.Add(1)
	}))
	defer srv.Close()
	rdb := redistest.Start(b).Client
	q := queue.New(rdb)
	tpl, err := message.Default("zh", "webhook")
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	hook := &receiver.Webhook{URL: srv.URL, Secret: []byte("k"), Client: client}
	e, err := New(Options{
		Queue: q, Log: NewLog(rdb), Registerer: prometheus.NewRegistry(), Batch: 64,
		Receivers:  map[string]*Receiver{"hook": {Config: &config.Receiver{Name: "hook", Timeout: 5 * time.Second, Parallel: parallel}, Notifier: hook, Template: tpl}},
		DeadLetter: func(context.Context, *queue.Delivery, error) error { return nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n := b.N
	now := time.Now()
	for i := range n {
		m := message.Sample()
		m.Case.ID = fmt.Sprintf("xuhui-%06d", i%500)
		d := &queue.Delivery{ID: fmt.Sprintf("b%d-%d", n, i), Receiver: "hook", CaseID: m.Case.ID, Group: fmt.Sprintf("g%d", i), Due: now, Message: m}
		if _, err := q.Enqueue(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	// The baseline: the same number of posts of a CloudEvent-sized body,
	// from parallel loops.
	body := bytes.Repeat([]byte("x"), 1400)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(srv.URL, "application/cloudevents+json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	raw := time.Since(start)

	took.Store(0)
	b.ResetTimer()
	start = time.Now()
	for took.Load() < int64(n) {
		if _, err := e.Step(ctx, "hook"); err != nil {
			b.Fatal(err)
		}
	}
	engine := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/engine.Seconds(), "deliveries/s")
	b.ReportMetric(float64(n)/raw.Seconds(), "raw_posts/s")
	b.ReportMetric(raw.Seconds()/engine.Seconds(), "ratio")
}
