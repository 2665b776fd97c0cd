package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

func newWriter(t *testing.T, k *kafkatest.Cluster) *stream.Writer {
	t.Helper()
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func produce(t *testing.T, w *stream.Writer, topic string, n int) {
	t.Helper()
	var msgs []kafka.Message
	for i := range n {
		m, err := stream.Marshal(topic, "d"+strconv.Itoa(i%5), wrapperspb.String("v"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := w.Write(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func decode(m kafka.Message) (string, error) {
	var v wrapperspb.StringValue
	if err := stream.Unmarshal(m, &v); err != nil {
		return "", err
	}
	return v.Value, nil
}

// collector records what a consumer applied.
type collector struct {
	mu   sync.Mutex
	seen map[string]int
	// fail makes Apply fail this many more times.
	fail int
}

func (c *collector) apply(_ context.Context, batch []stream.Record[string]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("transient")
	}
	for _, r := range batch {
		c.seen[r.Value]++
	}
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func runConsumer(t *testing.T, k *kafkatest.Cluster, group string, col *collector) (stop func()) {
	t.Helper()
	c, err := stream.NewConsumer(stream.ConsumerOptions[string]{
		Brokers: k.Brokers, Topic: k.Topics.Events, Group: group,
		Decode: decode, Apply: col.apply,
		DeadLetter: newWriter(t, k), DeadLetterTopic: k.Topics.EventsDLQ,
		CommitInterval: 50 * time.Millisecond, Backoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConsumerAppliesCommitsAndDeadLetters(t *testing.T) {
	k := kafkatest.Start(t)
	w := newWriter(t, k)
	produce(t, w, k.Topics.Events, 50)
	bad := kafka.Message{Topic: k.Topics.Events, Key: []byte("d1"), Value: []byte{0xff, 0xff, 0xff}}
	if err := w.Write(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	produce(t, w, k.Topics.Events, 0)

	group := kafkatest.Group("consumer")
	col := &collector{seen: map[string]int{}, fail: 2}
	stop := runConsumer(t, k, group, col)
	waitFor(t, "50 applied", func() bool { return col.count() == 50 })

	// The undecodable message is on the DLQ, with its provenance.
	var dlq []kafka.Message
	waitFor(t, "the dead letter", func() bool {
		dlq = nil
		err := stream.Replay(context.Background(), k.Brokers, k.Topics.EventsDLQ, func(m kafka.Message) error {
			dlq = append(dlq, m)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(dlq) > 0
	})
	if len(dlq) != 1 {
		t.Fatalf("DLQ holds %d messages, want 1", len(dlq))
	}
	if got := stream.Header(dlq[0], stream.DLQTopicHeader); got != k.Topics.Events {
		t.Errorf("DLQ topic header %q", got)
	}
	if got := stream.Header(dlq[0], stream.DLQReasonHeader); got == "" {
		t.Error("DLQ message has no reason")
	}
	if string(dlq[0].Value) != string(bad.Value) || string(dlq[0].Key) != "d1" {
		t.Error("DLQ message does not carry the original key and bytes")
	}
	stop()

	// A second member of the same group starts after the committed offsets:
	// nothing is applied again, and new messages are.
	expectOnlyNew(t, k, w, group)
}

// expectOnlyNew writes three messages and checks that a new member of
// group applies just those: v0..v2 again, which it would see twice if it
// started before them.
func expectOnlyNew(t *testing.T, k *kafkatest.Cluster, w *stream.Writer, group string) {
	t.Helper()
	produce(t, w, k.Topics.Events, 3)
	col := &collector{seen: map[string]int{}}
	stop := runConsumer(t, k, group, col)
	waitFor(t, "3 new applied", func() bool { return col.count() == 3 })
	stop()
	col.mu.Lock()
	defer col.mu.Unlock()
	for v, n := range col.seen {
		if n != 1 {
			t.Errorf("%s applied %d times: the group did not start after what it had committed", v, n)
		}
	}
}

func TestFollowerSeesOnlyWhatComesAfterIt(t *testing.T) {
	k := kafkatest.Start(t)
	w := newWriter(t, k)
	produce(t, w, k.Topics.Alerts, 10)
	var mu sync.Mutex
	var got []string
	f, err := stream.NewFollower(context.Background(), stream.FollowerOptions{
		Brokers: k.Brokers, Topics: []string{k.Topics.Alerts},
		Handle: func(m kafka.Message) {
			v, err := decode(m)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Written after NewFollower and before Run: still delivered.
	var msgs []kafka.Message
	for i := range 7 {
		m, _ := stream.Marshal(k.Topics.Alerts, fmt.Sprint(i), wrapperspb.String(fmt.Sprint("new", i)))
		msgs = append(msgs, m)
	}
	if err := w.Write(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	waitFor(t, "7 followed", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 7 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 7 {
		t.Errorf("followed %d messages, want 7: %v", len(got), got)
	}
	for _, v := range got {
		if len(v) < 3 || v[:3] != "new" {
			t.Errorf("followed an old message %q", v)
		}
	}
}

func TestUnmarshalRefusesForeignContent(t *testing.T) {
	m := kafka.Message{Value: []byte(`{"a":1}`), Headers: []kafka.Header{{Key: stream.ContentTypeHeader, Value: []byte("application/json")}}}
	var v wrapperspb.StringValue
	if err := stream.Unmarshal(m, &v); err == nil {
		t.Error("Unmarshal accepted a JSON value")
	}
	if err := stream.Unmarshal(kafka.Message{}, &v); err == nil {
		t.Error("Unmarshal accepted an empty value")
	}
}

// TestConsumerOverlapsPendingBatches: the consumer applies the next batch
// while one batch is pending, never two ahead, and commits a batch only
// once its Pending has returned nil.
func TestConsumerOverlapsPendingBatches(t *testing.T) {
	k := kafkatest.Start(t)
	w := newWriter(t, k)
	produce(t, w, k.Topics.Events, 40)
	group := kafkatest.Group("pending")

	var (
		mu       sync.Mutex
		calls    int
		released bool
		first    []string // the first batch, whose Pending never returns nil
	)
	release := make(chan struct{})
	joined := make(chan struct{})
	apply := func(_ context.Context, batch []stream.Record[string]) (stream.Pending, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch calls {
		case 1:
			for _, r := range batch {
				first = append(first, r.Value)
			}
			return func(ctx context.Context) error {
				defer close(joined)
				select {
				case <-release:
					return errors.New("could not finish")
				case <-ctx.Done():
					return ctx.Err()
				}
			}, nil
		case 2:
		default:
			if !released {
				t.Errorf("batch %d applied while batch 1 was still pending", calls)
			}
		}
		return func(context.Context) error { return nil }, nil
	}
	_, done := startPending(t, k, w, group, apply, 4)
	// The second batch is applied while the first is pending.
	waitFor(t, "a second batch", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls == 2
	})
	mu.Lock()
	released = true
	mu.Unlock()
	close(release)
	// The failed Pending stops the consumer, its batch uncommitted.
	if err := <-done; err == nil || !strings.Contains(err.Error(), "could not finish") {
		t.Fatalf("Run = %v, want the Pending's error", err)
	}
	<-joined

	// A new member of the group gets the first batch again.
	col := &collector{seen: map[string]int{}}
	stop := runConsumer(t, k, group, col)
	waitFor(t, "the first batch again", func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, v := range first {
			if col.seen[v] == 0 {
				return false
			}
		}
		return true
	})
	stop()
}

// TestConsumerJoinsPendingOnStop: a batch pending when ctx ends is waited
// for, so nothing it started outlives Run, and is not committed.
func TestConsumerJoinsPendingOnStop(t *testing.T) {
	k := kafkatest.Start(t)
	w := newWriter(t, k)
	produce(t, w, k.Topics.Events, 10)
	group := kafkatest.Group("pending-stop")

	var mu sync.Mutex
	applied := map[string]bool{}
	finished := make(chan struct{}, 100)
	apply := func(_ context.Context, batch []stream.Record[string]) (stream.Pending, error) {
		mu.Lock()
		for _, r := range batch {
			applied[r.Value] = true
		}
		mu.Unlock()
		return func(ctx context.Context) error {
			<-ctx.Done() // never finishes by itself
			finished <- struct{}{}
			return ctx.Err()
		}, nil
	}
	cancel, done := startPending(t, k, w, group, apply, 0)
	waitFor(t, "a batch applied", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Run returned before the pending batch was joined")
	}
	// Nothing was committed: all ten come again.
	col := &collector{seen: map[string]int{}}
	stop := runConsumer(t, k, group, col)
	waitFor(t, "all ten again", func() bool { return col.count() == 10 })
	stop()
}

// startPending starts a consumer of group with apply as its ApplyPending,
// and returns how to stop it and where Run's result arrives.
func startPending(t *testing.T, k *kafkatest.Cluster, w *stream.Writer, group string,
	apply func(context.Context, []stream.Record[string]) (stream.Pending, error), maxBatch int,
) (cancel func(), done <-chan error) {
	t.Helper()
	c, err := stream.NewConsumer(stream.ConsumerOptions[string]{
		Brokers: k.Brokers, Topic: k.Topics.Events, Group: group,
		Decode: decode, ApplyPending: apply, MaxBatch: maxBatch,
		DeadLetter: w, DeadLetterTopic: k.Topics.EventsDLQ,
		CommitInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- c.Run(ctx) }()
	t.Cleanup(stop)
	return stop, result
}

func TestConsumerNeedsOneApply(t *testing.T) {
	apply := func(context.Context, []stream.Record[string]) error { return nil }
	applyPending := func(context.Context, []stream.Record[string]) (stream.Pending, error) { return nil, nil }
	for _, o := range []stream.ConsumerOptions[string]{
		{Decode: decode},
		{Decode: decode, Apply: apply, ApplyPending: applyPending},
	} {
		o.Brokers, o.Topic, o.Group = []string{"127.0.0.1:1"}, "t", "g"
		o.DeadLetter, o.DeadLetterTopic = &stream.Writer{}, "dlq"
		if _, err := stream.NewConsumer(o); err == nil || !strings.Contains(err.Error(), "one of Apply and ApplyPending") {
			t.Errorf("NewConsumer = %v, want an error naming Apply and ApplyPending", err)
		}
	}
}

// TestConsumerCommitsAPendingBatchWithoutANextOne: a batch whose Pending
// finishes is committed even when no further batch arrives, so a member
// that takes over later starts after it.
func TestConsumerCommitsAPendingBatchWithoutANextOne(t *testing.T) {
	k := kafkatest.Start(t)
	w := newWriter(t, k)
	produce(t, w, k.Topics.Events, 10)
	group := kafkatest.Group("pending-idle")

	var mu sync.Mutex
	finished := map[string]bool{}
	apply := func(_ context.Context, batch []stream.Record[string]) (stream.Pending, error) {
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range batch {
				finished[r.Value] = true
			}
			return nil
		}, nil
	}
	cancel, done := startPending(t, k, w, group, apply, 0)
	waitFor(t, "ten finished", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(finished) == 10
	})
	// Committed while the consumer waits for more, not when it leaves.
	waitFor(t, "ten committed", func() bool { return committed(t, k, group) == 10 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	expectOnlyNew(t, k, w, group)
}

// committed returns the sum over the events topic's partitions of group's
// committed offsets: the messages it has committed, counting from the
// first.
func committed(t *testing.T, k *kafkatest.Cluster, group string) int64 {
	t.Helper()
	parts := make([]int, kafkatest.Partitions)
	for i := range parts {
		parts[i] = i
	}
	cl := &kafka.Client{Addr: kafka.TCP(k.Brokers...), Timeout: 5 * time.Second}
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{k.Topics.Events: parts},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range resp.Topics[k.Topics.Events] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}
