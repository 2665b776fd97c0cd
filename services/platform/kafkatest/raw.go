package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ConsumeRaw is the baseline of the consumers' benchmarks: a bare group
// reader, configured as stream.Consumer configures its own, that consumes
// n messages of topic from the start — decoding each with decode, taking
// what has arrived as a batch of at most maxBatch and committing it — and
// returns how long that took. It does what every consumer must do and
// nothing of what any consumer is for.
func ConsumeRaw(tb testing.TB, brokers []string, topic string, n, maxBatch int, decode func(kafka.Message) error) time.Duration {
	tb.Helper()
	start := time.Now()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:               brokers,
		GroupID:               Group("bench-raw"),
		Topic:                 topic,
		MinBytes:              1,
		MaxBytes:              16 << 20,
		MaxWait:               250 * time.Millisecond,
		CommitInterval:        time.Second,
		StartOffset:           kafka.FirstOffset,
		WatchPartitionChanges: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// As stream.Consumer does: one goroutine fetches and decodes, the loop
	// takes what has arrived as a batch.
	msgs := make(chan kafka.Message, 4*maxBatch)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	go func() {
		defer close(msgs)
		for {
			m, err := r.FetchMessage(fetchCtx)
			if err != nil {
				return
			}
			if err := decode(m); err != nil {
				tb.Error(err)
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
	done := 0
	for done < n {
		m, ok := <-msgs
		if !ok {
			tb.Fatalf("kafkatest: the raw consumer stopped after %d messages: %v", done, ctx.Err())
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
		if err := r.CommitMessages(ctx, batch...); err != nil {
			tb.Fatal(err)
		}
		done += len(batch)
	}
	elapsed := time.Since(start)
	stopFetch()
	for range msgs {
	}
	if err := r.Close(); err != nil {
		tb.Fatal(err)
	}
	return elapsed
}
