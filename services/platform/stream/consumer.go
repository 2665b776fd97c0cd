package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Record is a fetched message and its decoded value.
type Record[T any] struct {
	Message kafka.Message
	Value   T
}

// Rejected is returned by Apply for records it can never apply, by index in
// the batch; they are dead-lettered and every other record of the batch
// counts as applied.
type Rejected map[int]error

func (r Rejected) Error() string {
	idx := slices.Sorted(maps.Keys(r))
	if len(idx) == 0 {
		return "no records rejected"
	}
	return fmt.Sprintf("%d records rejected; record %d: %v", len(idx), idx[0], r[idx[0]])
}

// Pending is the part of applying a batch that finishes after ApplyPending
// returns — the ruler's alerts on their way to Kafka. Meanwhile the
// consumer applies the next batch; it commits this one only once Pending
// has returned nil. A Pending must retry transient failures itself and
// return promptly once ctx ends: an error from it stops the consumer with
// the batch uncommitted, to be redelivered.
type Pending func(ctx context.Context) error

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the whole batch is
// dead-lettered at once.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// ConsumerOptions configures a Consumer.
type ConsumerOptions[T any] struct {
	Brokers []string
	Topic   string
	Group   string
	// Decode turns a message into a value; an error dead-letters the message.
	Decode func(kafka.Message) (T, error)
	// Apply applies a batch of records, in order. It must be idempotent:
	// after a crash or a rebalance a batch may be applied again. A Rejected
	// error dead-letters the records it names; a Permanent one the whole
	// batch; any other error is retried with backoff (see MaxAttempts).
	Apply func(ctx context.Context, batch []Record[T]) error
	// ApplyPending, set instead of Apply, applies a batch as Apply does but
	// may leave its last step Pending, so that finishing one batch overlaps
	// applying the next. At most one batch is pending at a time, and
	// batches are committed in order. Errors are handled as Apply's; with
	// one, nothing is pending.
	ApplyPending func(ctx context.Context, batch []Record[T]) (Pending, error)
	// DeadLetter receives what cannot be applied, on topic DeadLetterTopic.
	DeadLetter      *Writer
	DeadLetterTopic string

	// MaxBatch bounds a batch; 256 when zero.
	MaxBatch int
	// CommitInterval is how often offsets are committed; 1s when zero.
	CommitInterval time.Duration
	// MaxAttempts, when positive, bounds the applications of a batch that
	// keeps failing with a transient error, after which it is dead-lettered.
	// Zero retries until ctx ends: an outage of Redis or Kafka must stall
	// the consumer, not send good messages to the dead-letter topic.
	MaxAttempts int
	// Backoff is the first retry delay, doubled up to 5s; 100ms when zero.
	Backoff time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Consumer consumes a topic as a member of a consumer group.
type Consumer[T any] struct {
	opts    ConsumerOptions[T]
	log     *slog.Logger
	metrics *consumerMetrics
}

// NewConsumer checks opts and returns a Consumer; Run starts it.
func NewConsumer[T any](opts ConsumerOptions[T]) (*Consumer[T], error) {
	var errs []error
	if len(opts.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if opts.Topic == "" || opts.Group == "" {
		errs = append(errs, errors.New("topic and group are required"))
	}
	if opts.Decode == nil || (opts.Apply == nil) == (opts.ApplyPending == nil) {
		errs = append(errs, errors.New("Decode and one of Apply and ApplyPending are required"))
	}
	if opts.DeadLetter == nil || opts.DeadLetterTopic == "" {
		errs = append(errs, errors.New("a dead-letter writer and topic are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("stream: consumer of %s: %w", opts.Topic, err)
	}
	if opts.ApplyPending == nil {
		apply := opts.Apply
		opts.ApplyPending = func(ctx context.Context, batch []Record[T]) (Pending, error) {
			return nil, apply(ctx, batch)
		}
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = time.Second
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	return &Consumer[T]{
		opts:    opts,
		log:     opts.Logger.With("component", "consumer", "topic", opts.Topic, "group", opts.Group),
		metrics: newConsumerMetrics(opts.Registerer),
	}, nil
}

// Run consumes until ctx ends or fetching fails, then commits what was
// applied and leaves the group. It returns nil when ctx ended.
//
// Three parts share the work: a fetcher (its own goroutine) fetches and
// decodes ahead; the loop below gathers what was fetched into batches and
// applies them; a pipeline holds the one batch whose Pending is still
// finishing and commits batches in order.
func (c *Consumer[T]) Run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:               c.opts.Brokers,
		GroupID:               c.opts.Group,
		Topic:                 c.opts.Topic,
		MinBytes:              1,
		MaxBytes:              16 << 20,
		MaxWait:               250 * time.Millisecond,
		CommitInterval:        c.opts.CommitInterval,
		StartOffset:           kafka.FirstOffset, // LastOffset can skip messages on restart
		WatchPartitionChanges: true,
		ErrorLogger:           kafka.LoggerFunc(func(f string, a ...any) { c.log.Warn("kafka reader", "detail", fmt.Sprintf(f, a...)) }),
	})
	f := startFetcher(ctx, r.FetchMessage, c.decode, c.opts.MaxBatch)
	defer func() {
		f.stop()
		if err := r.Close(); err != nil { // commits what was applied
			c.log.Warn("closing reader", "err", err)
		}
	}()
	p := &pipeline[T]{commit: r.CommitMessages, topic: c.opts.Topic}
	// Joined so that nothing the pending batch started outlives Run; ctx
	// has ended or a later step failed, so that batch stays uncommitted.
	defer p.join()
	err := c.loop(ctx, f, p)
	if ctx.Err() != nil {
		return nil // what is not committed is redelivered to whoever takes over
	}
	return err
}

// loop gathers batches from f and applies them until ctx ends or a step
// fails. A batch whose Pending finishes while no message waits is
// committed at once rather than with the next batch.
func (c *Consumer[T]) loop(ctx context.Context, f *fetcher[T], p *pipeline[T]) error {
	batch := make([]fetched[T], 0, c.opts.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-p.finished: // nil, and never ready, when nothing is pending
			if err := p.settle(ctx, err); err != nil {
				return err
			}
		case m, ok := <-f.msgs:
			if !ok {
				return fmt.Errorf("stream: fetch from %s: %w", c.opts.Topic, f.err())
			}
			var err error
			if batch, err = c.step(ctx, p, f.fill(append(batch[:0], m))); err != nil {
				return err
			}
		}
	}
}

// step applies batch and either commits it or leaves it pending in p. It
// returns a buffer for the next batch.
func (c *Consumer[T]) step(ctx context.Context, p *pipeline[T], batch []fetched[T]) ([]fetched[T], error) {
	next, err := c.process(ctx, batch)
	if err == nil {
		err = p.wait(ctx) // at most one batch pending: the one before this finishes first
	}
	if err != nil {
		if next != nil {
			_ = next(ctx)
		}
		return batch, err
	}
	if next == nil {
		if err := p.commit(ctx, messages(batch)...); err != nil {
			return batch, fmt.Errorf("stream: commit to %s: %w", c.opts.Topic, err)
		}
		return batch, nil
	}
	return p.start(ctx, next, batch), nil
}

// fetcher fetches messages and decodes them in a goroutine of its own, up
// to four batches ahead of the one being applied, so that fetching and
// decoding overlap applying.
type fetcher[T any] struct {
	msgs     chan fetched[T] // closed when the goroutine ends
	errc     chan error      // why it ended, unless stopped
	cancel   context.CancelFunc
	maxBatch int
}

func startFetcher[T any](ctx context.Context, fetch func(context.Context) (kafka.Message, error), decode func(kafka.Message) fetched[T], maxBatch int) *fetcher[T] {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher[T]{msgs: make(chan fetched[T], 4*maxBatch), errc: make(chan error, 1), cancel: cancel, maxBatch: maxBatch}
	go func() {
		defer close(f.msgs)
		for {
			m, err := fetch(ctx)
			if err != nil {
				f.errc <- err
				return
			}
			select {
			case f.msgs <- decode(m):
			case <-ctx.Done():
				return
			}
		}
	}()
	return f
}

// fill adds to batch what has been fetched already, up to a full batch,
// without waiting for more.
func (f *fetcher[T]) fill(batch []fetched[T]) []fetched[T] {
	for len(batch) < f.maxBatch {
		select {
		case m, ok := <-f.msgs:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// err returns why fetching ended; call it once msgs is closed.
func (f *fetcher[T]) err() error {
	select {
	case err := <-f.errc:
		return err
	default:
		return context.Canceled
	}
}

// stop ends fetching and waits for the goroutine to end.
func (f *fetcher[T]) stop() {
	f.cancel()
	for range f.msgs {
	}
}

// pipeline holds at most one batch whose Pending is still finishing, in a
// goroutine of its own that reports on finished, and commits batches in
// the order they were applied.
type pipeline[T any] struct {
	commit   func(ctx context.Context, msgs ...kafka.Message) error
	topic    string
	held     []fetched[T] // the pending batch
	spare    []fetched[T] // a buffer for the next batch
	finished chan error   // nil: nothing pending
}

// start runs next for batch and returns a buffer for the next batch. Only
// one batch may be pending: wait first.
func (p *pipeline[T]) start(ctx context.Context, next Pending, batch []fetched[T]) []fetched[T] {
	p.finished = make(chan error, 1)
	go func(done chan<- error) { done <- next(ctx) }(p.finished)
	spare := p.spare
	if spare == nil {
		spare = make([]fetched[T], 0, cap(batch))
	}
	p.held, p.spare = batch, nil
	return spare[:0]
}

// settle commits the pending batch, whose Pending returned err.
func (p *pipeline[T]) settle(ctx context.Context, err error) error {
	p.finished = nil
	p.spare, p.held = p.held, nil
	if err != nil {
		return fmt.Errorf("stream: finish a batch of %s: %w", p.topic, err)
	}
	if err := p.commit(ctx, messages(p.spare)...); err != nil {
		return fmt.Errorf("stream: commit to %s: %w", p.topic, err)
	}
	return nil
}

// wait waits for the pending batch, if any, and settles it.
func (p *pipeline[T]) wait(ctx context.Context) error {
	if p.finished == nil {
		return nil
	}
	return p.settle(ctx, <-p.finished)
}

// join waits for the pending batch, if any, without committing it.
func (p *pipeline[T]) join() {
	if p.finished != nil {
		<-p.finished
		p.finished = nil
	}
}

// fetched is a fetched message, decoded or not.
type fetched[T any] struct {
	msg   kafka.Message
	value T
	err   error // from Decode
}

func (c *Consumer[T]) decode(m kafka.Message) fetched[T] {
	v, err := c.opts.Decode(m)
	return fetched[T]{msg: m, value: v, err: err}
}

func messages[T any](batch []fetched[T]) []kafka.Message {
	out := make([]kafka.Message, len(batch))
	for i, f := range batch {
		out[i] = f.msg
	}
	return out
}

type deadLetter struct {
	msg      kafka.Message
	reason   error
	attempts int
}

// process decodes and applies batch, dead-lettering what cannot be applied,
// and returns what of the application is still pending. It returns an
// error only when ctx ends first.
func (c *Consumer[T]) process(ctx context.Context, batch []fetched[T]) (Pending, error) {
	start := time.Now()
	recs := make([]Record[T], 0, len(batch))
	var dead []deadLetter
	for _, f := range batch {
		if f.err != nil {
			dead = append(dead, deadLetter{f.msg, fmt.Errorf("decode: %w", f.err), 1})
			continue
		}
		recs = append(recs, Record[T]{Message: f.msg, Value: f.value})
	}
	var pending Pending
	for attempt := 1; len(recs) > 0; attempt++ {
		p, err := c.opts.ApplyPending(ctx, recs)
		if err == nil {
			pending = p
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var rej Rejected
		if errors.As(err, &rej) {
			for i, rerr := range rej {
				if i >= 0 && i < len(recs) {
					dead = append(dead, deadLetter{recs[i].Message, rerr, attempt})
				}
			}
			break
		}
		if IsPermanent(err) || (c.opts.MaxAttempts > 0 && attempt >= c.opts.MaxAttempts) {
			for _, r := range recs {
				dead = append(dead, deadLetter{r.Message, err, attempt})
			}
			c.log.Error("dead-lettering a batch", "records", len(recs), "attempts", attempt, "err", err)
			break
		}
		c.metrics.retries.WithLabelValues(c.opts.Topic, c.opts.Group).Inc()
		c.log.Warn("applying a batch failed; retrying", "attempt", attempt, "err", err)
		if err := sleep(ctx, backoff(c.opts.Backoff, attempt)); err != nil {
			return nil, err
		}
	}
	if err := c.deadLetter(ctx, dead); err != nil {
		if pending != nil {
			_ = pending(ctx)
		}
		return nil, err
	}
	c.metrics.batchSeconds.WithLabelValues(c.opts.Topic, c.opts.Group).Observe(time.Since(start).Seconds())
	c.metrics.messages.WithLabelValues(c.opts.Topic, c.opts.Group, "applied").Add(float64(len(batch) - len(dead)))
	c.metrics.messages.WithLabelValues(c.opts.Topic, c.opts.Group, "dead_lettered").Add(float64(len(dead)))
	return pending, nil
}

// Headers a dead-lettered message carries besides its own.
const (
	DLQTopicHeader     = "dlq-original-topic"
	DLQPartitionHeader = "dlq-original-partition"
	DLQOffsetHeader    = "dlq-original-offset"
	DLQReasonHeader    = "dlq-reason"
	DLQAttemptsHeader  = "dlq-attempts"
	DLQGroupHeader     = "dlq-consumer-group"
	DLQAtHeader        = "dlq-at"
)

// deadLetter writes dead to the dead-letter topic, retrying until the write
// is acknowledged or ctx ends: the batch is not committed before that.
func (c *Consumer[T]) deadLetter(ctx context.Context, dead []deadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	out := make([]kafka.Message, len(dead))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i, d := range dead {
		reason := d.reason.Error()
		if len(reason) > 1024 {
			reason = reason[:1024]
		}
		h := append(slices.Clip(d.msg.Headers),
			kafka.Header{Key: DLQTopicHeader, Value: []byte(d.msg.Topic)},
			kafka.Header{Key: DLQPartitionHeader, Value: []byte(strconv.Itoa(d.msg.Partition))},
			kafka.Header{Key: DLQOffsetHeader, Value: []byte(strconv.FormatInt(d.msg.Offset, 10))},
			kafka.Header{Key: DLQReasonHeader, Value: []byte(reason)},
			kafka.Header{Key: DLQAttemptsHeader, Value: []byte(strconv.Itoa(d.attempts))},
			kafka.Header{Key: DLQGroupHeader, Value: []byte(c.opts.Group)},
			kafka.Header{Key: DLQAtHeader, Value: []byte(now)},
		)
		out[i] = kafka.Message{Topic: c.opts.DeadLetterTopic, Key: d.msg.Key, Value: d.msg.Value, Headers: h}
	}
	return retry(ctx, c.opts.Backoff, func(ctx context.Context) error { return c.opts.DeadLetter.Write(ctx, out...) },
		func(attempt int, err error) {
			c.log.Error("writing to the dead-letter topic failed; retrying", "attempt", attempt, "err", err)
		})
}

// Retry calls do until it succeeds, returns a Permanent error or ctx ends,
// waiting between tries as a consumer waits between applications of a
// batch: 100ms, doubled up to 5s. failed, when not nil, hears of each
// failure before the wait. It is for what a Pending must finish itself.
func Retry(ctx context.Context, do func(context.Context) error, failed func(attempt int, err error)) error {
	return retry(ctx, 100*time.Millisecond, do, failed)
}

func retry(ctx context.Context, base time.Duration, do func(context.Context) error, failed func(attempt int, err error)) error {
	for attempt := 1; ; attempt++ {
		err := do(ctx)
		if err == nil || IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failed != nil {
			failed(attempt, err)
		}
		if err := sleep(ctx, backoff(base, attempt)); err != nil {
			return err
		}
	}
}

func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 16)
	return min(d, 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
