package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

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
//
// The server answers at once, which makes the comparison one of CPU on
// the machine they share; answer=2ms has it take 2 ms per request, as a
// department system on the same network might, which makes it one of
// keeping the receiver busy.
func BenchmarkDelivery(b *testing.B) {
	for _, c := range []struct {
		parallel int
		answer   time.Duration
	}{{1, 0}, {4, 0}, {4, 2 * time.Millisecond}} {
		name := fmt.Sprintf("parallel=%d", c.parallel)
		if c.answer > 0 {
			name += "/answer=" + c.answer.String()
		}
		b.Run(name, func(b *testing.B) { benchmarkDelivery(b, c.parallel, c.answer) })
	}
}

func benchmarkDelivery(b *testing.B, parallel int, answer time.Duration) {
	var took atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(answer)
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
	bare := func(int) error {
		resp, err := client.Post(srv.URL, "application/cloudevents+json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	raw := loops(b, n, parallel, bare)
	floor := runFloor(b, rdb, n, func() time.Duration { return loops(b, n, parallel, bare) })
	// What every delivery must also do whatever the engine: render its
	// receiver's template and send the signed CloudEvent.
	m := message.Sample()
	rendered := runFloor(b, rdb, n, func() time.Duration {
		return loops(b, n, parallel, func(i int) error {
			r, err := tpl.Render(m)
			if err != nil {
				return err
			}
			return hook.Notify(ctx, &receiver.Notification{ID: strconv.Itoa(i), Receiver: "hook", Message: m, Rendered: r})
		})
	})

	took.Store(0)
	b.ResetTimer()
	start := time.Now()
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
	b.ReportMetric(raw.Seconds()/floor.Seconds(), "floor_ratio")
	b.ReportMetric(raw.Seconds()/rendered.Seconds(), "rendered_floor_ratio")
}

// loops calls post n times from parallel loops and returns how long that
// took.
func loops(b *testing.B, n, parallel int, post func(i int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := post(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// runFloor runs send — n posts from parallel loops — while, beside it,
// what any delivery must keep in Redis at least is read and written: each
// delivery read from the queue (64 to a round trip) and its done mark and
// attempt written (64 to a round trip). Nothing waits for Redis: the posts
// and the round trips overlap entirely. With bare posts nothing is
// decided, rendered or signed, so no engine can be faster: floor_ratio
// bounds ratio from above, and with rendered and signed posts
// rendered_floor_ratio does, more tightly.
func runFloor(b *testing.B, rdb redis.UniversalClient, n int, send func() time.Duration) time.Duration {
	b.Helper()
	ctx := context.Background()
	p := rdb.Pipeline()
	p.Del(ctx, "bench:floor:d", "bench:floor:attempts")
	for i := range n {
		p.HSet(ctx, "bench:floor:d", strconv.Itoa(i), "a queued delivery of a kilobyte or so")
	}
	if _, err := p.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	const batch = 64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		for first := 0; first < n; first += batch {
			ids := make([]string, 0, batch)
			for i := first; i < min(first+batch, n); i++ {
				ids = append(ids, strconv.Itoa(i))
			}
			if err := rdb.HMGet(ctx, "bench:floor:d", ids...).Err(); err != nil {
				b.Error(err)
				return
			}
			p := rdb.Pipeline()
			for _, id := range ids {
				p.Set(ctx, "bench:floor:done:"+id, 1, time.Hour)
				p.LPush(ctx, "bench:floor:attempts", id)
			}
			if _, err := p.Exec(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	send()
	wg.Wait()
	return time.Since(start)
}
