package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// WriterOptions configures a Writer.
type WriterOptions struct {
	Brokers []string
	// BatchTimeout bounds how long a message waits for its batch to fill;
	// 1ms when zero. Every write here waits for its acknowledgement, so the
	// timeout is added to each one that does not fill a batch: kafka-go's
	// default of a second would make each take a second, and even 5ms held
	// the ruler to one batch of alerts per 5ms. Concurrent writers within a
	// millisecond of each other still share a request.
	BatchTimeout time.Duration
	Logger       *slog.Logger
}

// Writer writes messages and returns once every in-sync replica has them.
// Messages name their own topic. It is safe for concurrent use.
type Writer struct {
	w *kafka.Writer
	t *kafka.Transport
}

// NewWriter returns a Writer; Close it when done.
func NewWriter(opts WriterOptions) (*Writer, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("stream: writer needs brokers")
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	log := opts.Logger.With("component", "kafka-writer")
	// A transport of its own, so that Close can end its pooled connections
	// (kafka-go's default transport keeps them for the life of the process).
	t := &kafka.Transport{}
	return &Writer{t: t, w: &kafka.Writer{
		Transport:    t,
		Addr:         kafka.TCP(opts.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{}, // the Java client's, so keys land alike whoever writes
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: opts.BatchTimeout,
		// kafka-go allocates room for BatchSize messages with every batch,
		// however few it carries: 1,000 made each small write cost
		// 150 KB per partition. A larger write goes as several requests.
		BatchSize:   100,
		MaxAttempts: 5,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { log.Warn("kafka writer", "detail", fmt.Sprintf(f, a...)) }),
	}}, nil
}

// Write writes msgs and waits for their acknowledgement. On error some of
// msgs may have been written; callers retry the whole set, which every
// consumer tolerates because effects are idempotent.
func (w *Writer) Write(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return w.w.WriteMessages(ctx, msgs...)
}

// Close flushes and closes the writer and its connections.
func (w *Writer) Close() error {
	err := w.w.Close()
	w.t.CloseIdleConnections()
	return err
}
