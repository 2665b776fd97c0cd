package rulecheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Bounds on what a backtest reads, unless its options say otherwise.
const (
	// DefaultMaxEvents bounds the events a backtest holds in memory.
	DefaultMaxEvents = 1_000_000
	// DefaultMaxLineBytes bounds one line of an NDJSON recording: as large
	// as the biggest request body intake takes.
	DefaultMaxLineBytes = events.MaxBodyBytes
)

// ErrTooManyEvents means a recording holds more events than the backtest
// may keep; narrow the time range or raise the bound.
var ErrTooManyEvents = errors.New("too many events")

// Window selects events by time: From inclusive, To exclusive; a zero
// bound is open.
type Window struct {
	From, To time.Time
}

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Time) bool {
	return (w.From.IsZero() || !t.Before(w.From)) && (w.To.IsZero() || t.Before(w.To))
}

// NDJSONOptions configures ReadNDJSON.
type NDJSONOptions struct {
	// Catalog validates each event as intake would.
	Catalog *catalog.Catalog
	// Window keeps only the events whose occurred_at falls in it.
	Window Window
	// MaxEvents and MaxLineBytes bound the input; the defaults above when
	// zero.
	MaxEvents    int
	MaxLineBytes int
}

// ReadNDJSON reads events recorded as newline-delimited JSON, one event of
// the intake's JSON form per line; blank lines are skipped. Every event is
// validated against the catalog; the first invalid line is an error naming
// name, the line and the field. An event without an id is given one, as
// intake would.
func ReadNDJSON(r io.Reader, name string, opts NDJSONOptions) ([]*cityhubv1.Event, error) {
	if opts.Catalog == nil {
		return nil, errors.New("read events: a catalog is required")
	}
	maxEvents := cmpOr(opts.MaxEvents, DefaultMaxEvents)
	maxLine := cmpOr(opts.MaxLineBytes, DefaultMaxLineBytes)
	// A recording is history: occurred_at may be anywhere in the past, and
	// "too far in the future" means nothing for it.
	dec := &events.Decoder{Catalog: opts.Catalog, Now: func() time.Time { return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }}
	sc := bufio.NewScanner(r)
	// The scanner's limit is the larger of its buffer's capacity and max.
	sc.Buffer(make([]byte, 0, min(64<<10, maxLine)), maxLine)
	var out []*cityhubv1.Event
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		if b[0] != '{' {
			return nil, fmt.Errorf("%s:%d: want one JSON event object per line", name, line)
		}
		evs, err := dec.DecodeBody(b)
		if err != nil {
			var be *events.BatchError
			if errors.As(err, &be) && len(be.Items) > 0 {
				var parts []string
				for _, fe := range be.Items[0].Errors {
					parts = append(parts, strings.TrimPrefix(fe.Field+": "+fe.Message, ": "))
				}
				return nil, fmt.Errorf("%s:%d: %s", name, line, strings.Join(parts, "; "))
			}
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		ev := evs[0]
		ev.ReceivedAt = ev.GetOccurredAt()
		if !opts.Window.Contains(ev.GetOccurredAt().AsTime()) {
			continue
		}
		if len(out) == maxEvents {
			return nil, fmt.Errorf("%s:%d: %w: more than %d; narrow --from/--to or raise --max-events", name, line, ErrTooManyEvents, maxEvents)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: a line longer than %d bytes", name, line+1, maxLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// KafkaOptions configures ReadKafka.
type KafkaOptions struct {
	Brokers []string
	Topic   string
	// Window selects messages by their Kafka timestamp: reading starts, in
	// every partition, at the first offset whose timestamp is at or after
	// From and stops before the first at or after To (the end of the
	// partition as it is now when To is zero).
	Window    Window
	MaxEvents int
}

// KafkaStats says what ReadKafka read.
type KafkaStats struct {
	Messages int
	// Undecodable counts messages that were not events: the ruler would
	// have sent them to the dead-letter topic.
	Undecodable int
}

// ReadKafka reads the events of topic whose message timestamps fall in
// the window, partition by partition, without a consumer group and
// without committing anything.
func ReadKafka(ctx context.Context, opts KafkaOptions) ([]*cityhubv1.Event, KafkaStats, error) {
	var stats KafkaStats
	if len(opts.Brokers) == 0 || opts.Topic == "" {
		return nil, stats, errors.New("read kafka: brokers and a topic are required")
	}
	maxEvents := cmpOr(opts.MaxEvents, DefaultMaxEvents)
	parts, err := stream.Partitions(ctx, opts.Brokers, opts.Topic)
	if err != nil {
		return nil, stats, fmt.Errorf("read kafka: %w", err)
	}
	var out []*cityhubv1.Event
	for _, p := range parts {
		from, to, err := timeOffsets(ctx, opts.Brokers, opts.Topic, p, opts.Window)
		if err != nil {
			return nil, stats, fmt.Errorf("read kafka: %s/%d: %w", opts.Topic, p, err)
		}
		if from < 0 || to <= from {
			continue
		}
		err = readRange(ctx, opts.Brokers, opts.Topic, p, from, to, func(m kafka.Message) error {
			stats.Messages++
			if !opts.Window.Contains(m.Time) {
				return nil
			}
			ev := &cityhubv1.Event{}
			if err := stream.Unmarshal(m, ev); err != nil || ev.GetOccurredAt() == nil {
				stats.Undecodable++
				return nil
			}
			if len(out) == maxEvents {
				return fmt.Errorf("%w: more than %d; narrow --from/--to or raise --max-events", ErrTooManyEvents, maxEvents)
			}
			out = append(out, ev)
			return nil
		})
		if err != nil {
			return nil, stats, fmt.Errorf("read kafka: %s/%d: %w", opts.Topic, p, err)
		}
	}
	return out, stats, nil
}

// timeOffsets returns the offsets to read of one partition: from the first
// message at or after w.From to before the first at or after w.To. from is
// -1 when no message is that recent.
func timeOffsets(ctx context.Context, brokers []string, topic string, partition int, w Window) (from, to int64, err error) {
	d := &kafka.Dialer{Timeout: 10 * time.Second}
	var conn *kafka.Conn
	for _, b := range brokers {
		if conn, err = d.DialLeader(ctx, "tcp", b, topic, partition); err == nil {
			break
		}
	}
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	last, err := conn.ReadLastOffset()
	if err != nil {
		return 0, 0, err
	}
	if w.From.IsZero() {
		if from, err = conn.ReadFirstOffset(); err != nil {
			return 0, 0, err
		}
	} else if from, err = conn.ReadOffset(w.From); err != nil {
		return 0, 0, err
	}
	to = last
	if !w.To.IsZero() {
		if at, err := conn.ReadOffset(w.To); err != nil {
			return 0, 0, err
		} else if at >= 0 {
			to = at
		}
	}
	return from, to, nil
}

// fetchTimeout bounds the wait for one message of a range known to exist.
const fetchTimeout = 30 * time.Second

// readRange reads offsets [from, to) of one partition.
func readRange(ctx context.Context, brokers []string, topic string, partition int, from, to int64, fn func(kafka.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   brokers,
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return err
	}
	for off := from; off < to; {
		// A fetch that makes no progress for this long is a stuck reader,
		// not a slow one: the range is known to hold the message.
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("no message at offset %d after %s", off, fetchTimeout)
			}
			return err
		}
		off = m.Offset + 1
		if m.Offset >= to {
			break
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}
