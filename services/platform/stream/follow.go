package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// DefaultStallTimeout is FollowerOptions.StallTimeout when it is zero.
const DefaultStallTimeout = 15 * time.Second

// FollowerOptions configures a Follower.
type FollowerOptions struct {
	Brokers []string
	Topics  []string
	// Handle receives every message, from one goroutine per partition.
	Handle func(kafka.Message)
	// StallTimeout is the watchdog's interval: a partition that has
	// messages waiting (its high watermark is past the reader's position)
	// and delivers none for about this long is read again by a new reader
	// from where the old one stopped. DefaultStallTimeout when zero.
	StallTimeout time.Duration
	Logger       *slog.Logger
	// Registerer takes cityhub_stream_follower_stalls_total; nil keeps it
	// private. Several followers may share one registry.
	Registerer prometheus.Registerer
}

// Follower reads every partition of its topics from where they ended when
// the Follower was made, outside any consumer group, so that every replica
// of a service sees every message. Offsets are never committed.
//
// kafka-go's FetchMessage has been seen to block for good while messages
// wait; a watchdog per partition notices a reader that makes no progress
// although the partition has lag, counts the stall and replaces the reader,
// which resumes at the offset after the last message handed to Handle, so
// nothing is lost or repeated.
type Follower struct {
	opts   FollowerOptions
	start  map[string]map[int]int64
	log    *slog.Logger
	stalls *prometheus.CounterVec

	// ticker and highWater are the watchdog's clock and its view of the
	// broker; tests replace them.
	ticker    func(time.Duration) (<-chan time.Time, func())
	highWater func(ctx context.Context, topic string, partition int) (int64, error)
}

// NewFollower resolves the current end of every partition: every message
// written after NewFollower returns reaches Handle once Run runs.
func NewFollower(ctx context.Context, opts FollowerOptions) (*Follower, error) {
	if len(opts.Brokers) == 0 || len(opts.Topics) == 0 || opts.Handle == nil {
		return nil, errors.New("stream: a follower needs brokers, topics and a handler")
	}
	if opts.StallTimeout < 0 {
		return nil, errors.New("stream: a follower's stall timeout cannot be negative")
	}
	if opts.StallTimeout == 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	f := &Follower{
		opts:  opts,
		start: make(map[string]map[int]int64),
		log:   opts.Logger.With("component", "follower"),
		stalls: register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_stream_follower_stalls_total",
			Help: "Partition readers replaced because they delivered nothing while the partition had messages waiting, by topic.",
		}, []string{"topic"})),
		ticker: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
	}
	f.highWater = f.brokerHighWater
	for _, t := range opts.Topics {
		_, last, err := offsets(ctx, opts.Brokers, t)
		if err != nil {
			return nil, fmt.Errorf("stream: follow %s: %w", t, err)
		}
		f.start[t] = last
		f.stalls.WithLabelValues(t)
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
				if err := f.follow(ctx, &wg, topic, p, off); err != nil && ctx.Err() == nil {
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

// errStalled ends a reader that the watchdog gave up on.
var errStalled = errors.New("partition reader stalled")

// follow reads one partition from offset until ctx ends or reading fails,
// replacing the reader each time it stalls. Readers it gives up on are
// closed on goroutines counted in wg.
func (f *Follower) follow(ctx context.Context, wg *sync.WaitGroup, topic string, partition int, offset int64) error {
	for {
		next, err := f.readUntilStalled(ctx, wg, topic, partition, offset)
		if !errors.Is(err, errStalled) {
			return err
		}
		f.stalls.WithLabelValues(topic).Inc()
		f.log.Warn("partition reader made no progress while messages waited; reading again", "topic", topic, "partition", partition, "offset", next)
		offset = next
	}
}

// readUntilStalled hands every message of the partition from offset to
// Handle until ctx ends, reading fails, or the watchdog finds the reader
// stalled. It returns the offset to read next.
func (f *Follower) readUntilStalled(ctx context.Context, wg *sync.WaitGroup, topic string, partition int, offset int64) (int64, error) {
	r := newPartitionReader(f.opts.Brokers, topic, partition, f.log)
	if err := r.SetOffset(offset); err != nil {
		r.Close()
		return offset, err
	}
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	var pos atomic.Int64 // the offset after the last message handed over
	pos.Store(offset)
	fetched := make(chan error, 1)
	go func() {
		for {
			m, err := r.FetchMessage(fetchCtx)
			if err != nil {
				fetched <- err
				return
			}
			pos.Store(m.Offset + 1)
			f.opts.Handle(m)
		}
	}()
	// stop ends the fetching goroutine, waiting for it when it is still
	// running (FetchMessage returns when its context ends, so Handle never
	// runs after stop), and closes the reader in the background: Close may
	// take as long as a read timeout, and a stuck reader must not hold up
	// its replacement.
	stop := func(running bool) {
		stopFetch()
		if running {
			<-fetched
		}
		wg.Go(func() { r.Close() })
	}

	tick, stopTick := f.ticker(f.opts.StallTimeout)
	defer stopTick()
	last, lagging := offset, false
	for {
		select {
		case err := <-fetched:
			stop(false)
			if ctx.Err() != nil {
				return pos.Load(), ctx.Err()
			}
			return pos.Load(), fmt.Errorf("read %s/%d: %w", topic, partition, err)
		case <-tick:
			cur := pos.Load()
			switch {
			case cur != last:
				// Progress; look at the lag again once it stops.
				last, lagging = cur, false
			case lagging:
				// Messages were waiting a whole interval ago and none
				// has arrived since.
				stop(true)
				return pos.Load(), errStalled
			default:
				hctx, cancel := context.WithTimeout(ctx, f.opts.StallTimeout)
				hw, err := f.highWater(hctx, topic, partition)
				cancel()
				lagging = err == nil && hw > cur
			}
		}
	}
}

// brokerHighWater asks the brokers for the offset after the last message
// of topic/partition.
func (f *Follower) brokerHighWater(ctx context.Context, topic string, partition int) (int64, error) {
	c, done := adminClient(f.opts.Brokers)
	defer done()
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(partition)}}})
	if err != nil {
		return 0, err
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition == partition {
			if p.Error != nil {
				return 0, p.Error
			}
			return p.LastOffset, nil
		}
	}
	return 0, fmt.Errorf("no offsets for %s/%d", topic, partition)
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

func newPartitionReader(brokers []string, topic string, partition int, log *slog.Logger) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:     brokers,
		Topic:       topic,
		Partition:   partition,
		MinBytes:    1,
		MaxBytes:    16 << 20,
		MaxWait:     250 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { log.Warn("kafka reader", "detail", fmt.Sprintf(f, a...)) }),
	})
}

// readPartition reads topic/partition from offset until ctx ends or, when
// until >= 0, until the message before offset until has been read.
func readPartition(ctx context.Context, brokers []string, topic string, partition int, offset, until int64, log *slog.Logger, fn func(kafka.Message) error) error {
	r := newPartitionReader(brokers, topic, partition, log)
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
