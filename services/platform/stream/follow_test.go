package stream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// followed records what a follower handed over, per partition.
type followed struct {
	mu   sync.Mutex
	offs map[int][]int64
	n    int
}

func (r *followed) handle(m kafka.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.offs[m.Partition] = append(r.offs[m.Partition], m.Offset)
	r.n++
}

func (r *followed) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// checkOnceInOrder fails unless every partition's offsets run without a gap
// or a repeat.
func (r *followed) checkOnceInOrder(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, offs := range r.offs {
		for i := 1; i < len(offs); i++ {
			if offs[i] != offs[i-1]+1 {
				t.Errorf("partition %d: offset %d followed by %d", p, offs[i-1], offs[i])
			}
		}
	}
}

func startFollower(t *testing.T, opts stream.FollowerOptions, tweak func(*stream.Follower)) (stop func()) {
	t.Helper()
	f, err := stream.NewFollower(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func produceKeyed(t *testing.T, w *stream.Writer, topic string, n int) {
	t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		m, err := stream.Marshal(topic, fmt.Sprint("d", i), wrapperspb.String(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	if err := w.Write(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestFollowerWatchdogReplacesAStalledReader makes the broker swallow every
// fetch of the followed topic, so that the readers deliver nothing while
// messages wait: the watchdog must notice, count the stall and read again
// from where it stopped, and once fetches are answered again every message
// arrives once.
func TestFollowerWatchdogReplacesAStalledReader(t *testing.T) {
	k := kafkatest.Start(t)
	if k.Fake == nil {
		t.Skip("swallowing fetches needs the in-process kfake; KAFKA_BROKERS points at an external Kafka")
	}
	w := newWriter(t, k)
	topic := k.Topics.Alerts
	got := &followed{offs: map[int][]int64{}}
	var f *stream.Follower
	startFollower(t, stream.FollowerOptions{
		Brokers: k.Brokers, Topics: []string{topic}, Handle: got.handle,
		StallTimeout: 100 * time.Millisecond,
	}, func(x *stream.Follower) { f = x })

	produceKeyed(t, w, topic, 6)
	waitFor(t, "the first messages", func() bool { return got.count() == 6 })

	var swallow atomic.Bool
	swallow.Store(true)
	k.Fake.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		if !swallow.Load() {
			return nil, nil, false
		}
		for _, ft := range req.(*kmsg.FetchRequest).Topics {
			if ft.Topic == topic {
				return nil, nil, true // no answer at all: the fetch hangs
			}
		}
		return nil, nil, false
	})
	produceKeyed(t, w, topic, 30)

	waitFor(t, "the watchdog to replace a reader twice", func() bool { return stream.Stalls(f, topic) >= 2 })
	swallow.Store(false)
	waitFor(t, "every message", func() bool { return got.count() >= 36 })
	if n := got.count(); n != 36 {
		t.Errorf("followed %d messages, want 36", n)
	}
	got.checkOnceInOrder(t)
}

// TestFollowerWatchdogLeavesHealthyPartitionsAlone ticks the watchdog by
// hand while the partitions are idle and while they deliver: nothing may
// count as a stall.
func TestFollowerWatchdogLeavesHealthyPartitionsAlone(t *testing.T) {
	k := kafkatest.Start(t)
	w := newWriter(t, k)
	topic := k.Topics.Cases
	got := &followed{offs: map[int][]int64{}}
	ticks := make(chan time.Time)
	var f *stream.Follower
	stop := startFollower(t, stream.FollowerOptions{
		Brokers: k.Brokers, Topics: []string{topic}, Handle: got.handle,
	}, func(x *stream.Follower) { f = x; stream.SetWatchdogTicks(x, ticks) })

	tick := func(n int) {
		for range n {
			select {
			case ticks <- time.Now():
			case <-time.After(20 * time.Second):
				t.Fatal("no watchdog took a tick")
			}
		}
	}
	tick(4 * kafkatest.Partitions) // idle
	for range 3 {
		want := got.count() + 10
		produceKeyed(t, w, topic, 10)
		waitFor(t, "the messages", func() bool { return got.count() == want })
		tick(4 * kafkatest.Partitions) // caught up
	}
	stop()
	if n := stream.Stalls(f, topic); n != 0 {
		t.Errorf("%v stalls counted on healthy partitions", n)
	}
	got.checkOnceInOrder(t)
	if n := got.count(); n != 30 {
		t.Errorf("followed %d messages, want 30", n)
	}
}

func TestNewFollowerChecksOptions(t *testing.T) {
	for _, opts := range []stream.FollowerOptions{
		{Topics: []string{"t"}, Handle: func(kafka.Message) {}},
		{Brokers: []string{"127.0.0.1:1"}, Handle: func(kafka.Message) {}},
		{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"t"}},
		{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"t"}, Handle: func(kafka.Message) {}, StallTimeout: -time.Second},
	} {
		if _, err := stream.NewFollower(context.Background(), opts); err == nil {
			t.Errorf("NewFollower(%+v) accepted", opts)
		}
	}
}
