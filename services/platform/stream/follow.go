package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// FollowerOptions configures a Follower.
type FollowerOptions struct {
	Brokers []string
	Topics  []string
	// Handle receives every message, from one goroutine per partition.
	Handle func(kafka.Message)
	Logger *slog.Logger
}

// Follower reads every partition of its topics from where they ended when
// the Follower was made, outside any consumer group, so that every replica
// of a service sees every message. Offsets are never committed.
type Follower struct {
	opts  FollowerOptions
	start map[string]map[int]int64
	log   *slog.Logger
}

// NewFollower resolves the current end of every partition: every message
// written after NewFollower returns reaches Handle once Run runs.
func NewFollower(ctx context.Context, opts FollowerOptions) (*Follower, error) {
	if len(opts.Brokers) == 0 || len(opts.Topics) == 0 || opts.Handle == nil {
		return nil, errors.New("stream: a follower needs brokers, topics and a handler")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Follower{opts: opts, start: make(map[string]map[int]int64), log: opts.Logger.With("component", "follower")}
	for _, t := range opts.Topics {
		_, last, err := offsets(ctx, opts.Brokers, t)
		if err != nil {
			return nil, fmt.Errorf("stream: follow %s: %w", t, err)
		}
		f.start[t] = last
	}
	return f, nil
}

// Run reads until ctx ends. It returns nil when ctx ended.
func (f *Follower) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for topic, parts := range f.start {
		for p, off := range parts {
			wg.Go(func() {
				if err := f.read(ctx, topic, p, off); err != nil && ctx.Err() == nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
				}
			})
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (f *Follower) read(ctx context.Context, topic string, partition int, offset int64) error {
	return readPartition(ctx, f.opts.Brokers, topic, partition, offset, -1, f.log, func(m kafka.Message) error {
		f.opts.Handle(m)
		return nil
	})
}

// Replay reads every message topic holds now, partition by partition, and
// passes each to fn; it returns when all were read, or on fn's first error.
// Rebuilding Redis state from the Kafka log uses it.
func Replay(ctx context.Context, brokers []string, topic string, fn func(kafka.Message) error) error {
	first, last, err := offsets(ctx, brokers, topic)
	if err != nil {
		return fmt.Errorf("stream: replay %s: %w", topic, err)
	}
	for p, from := range first {
		if last[p] <= from {
			continue
		}
		if err := readPartition(ctx, brokers, topic, p, from, last[p], slog.New(slog.DiscardHandler), fn); err != nil {
			return fmt.Errorf("stream: replay %s/%d: %w", topic, p, err)
		}
	}
	return nil
}

// readPartition reads topic/partition from offset until ctx ends or, when
// until >= 0, until the message before offset until has been read.
func readPartition(ctx context.Context, brokers []string, topic string, partition int, offset, until int64, log *slog.Logger, fn func(kafka.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     brokers,
		Topic:       topic,
		Partition:   partition,
		MinBytes:    1,
		MaxBytes:    16 << 20,
		MaxWait:     250 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { log.Warn("kafka reader", "detail", fmt.Sprintf(f, a...)) }),
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		return err
	}
	for until < 0 || offset < until {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		offset = m.Offset + 1
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}
