// Package ruler is the ruler service: it consumes events from Kafka,
// evaluates them against the city's rule packs, keeps alert state in Redis
// and publishes every change of an alert to Kafka. The all-in-one binary
// embeds it; cmd/ruler runs it alone.
package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler/alerting"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// DefaultGroup is the consumer group of the ruler when Options.Group is empty.
const DefaultGroup = "cityhub-ruler"

// MaxBatch bounds the events the ruler applies as one batch. A batch costs
// a few Redis round trips and one acknowledged Kafka write whatever its
// size, so under a backlog larger batches go faster; when events trickle
// in, a batch is whatever has arrived.
const MaxBatch = 4096

// DefaultSweepInterval is how often, when Options.SweepInterval is zero,
// the ruler looks for alerts whose time has come: pending alerts whose
// `for` ran out, alerts past their resolve_after, groups of absent rules
// that fell silent.
const DefaultSweepInterval = 10 * time.Second

// Options configures a Ruler.
type Options struct {
	Brokers []string
	Topics  stream.Topics
	// Group is the Kafka consumer group; DefaultGroup when empty.
	Group string
	Redis redis.UniversalClient
	// Writer writes alerts and dead letters.
	Writer *stream.Writer
	// PacksDir holds the rule packs, e.g. rules/packs.
	PacksDir string
	// Catalog, when set, type-checks the packs' conditions and departments.
	Catalog    *catalog.Catalog
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// PollInterval is how often PacksDir is checked for changed packs,
	// which are then reloaded; DefaultPollInterval when zero, never when
	// negative.
	PollInterval time.Duration
	// Reload, when set, reloads the packs on every value received; the
	// main passes SIGHUP here.
	Reload <-chan os.Signal
	// Verifier checks the tokens of Routes' endpoints.
	Verifier *auth.Verifier
	// SweepInterval is how often Run looks for alerts whose time has come;
	// DefaultSweepInterval when zero.
	SweepInterval time.Duration
}

// Ruler is the ruler service. Run it once.
type Ruler struct {
	opts    Options
	log     *slog.Logger
	packs   []*rulepack.Pack
	engine  *engine.Engine
	store   *alertstate.Store
	proc    *alerting.Processor
	metrics *metrics
	// mu serialises the consumer's batches and the sweeps, which share
	// proc; a reload swaps packs, engine and proc under it.
	mu     sync.Mutex
	reload reloadState
	// lastPublished is closed when the publication of the last batch
	// applied has ended.
	lastPublished chan struct{}
	silences      silencing
}

// New loads and compiles every pack in opts.PacksDir. When a pack has
// problems the error lists every one of them as file:line:col: message,
// including the use of features the ruler does not implement yet.
func New(opts Options) (*Ruler, error) {
	var errs []error
	if len(opts.Brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers"))
	}
	if opts.Topics.Events == "" || opts.Topics.EventsDLQ == "" || opts.Topics.Alerts == "" {
		errs = append(errs, errors.New("the events, events DLQ and alerts topics are required"))
	}
	if opts.Redis == nil {
		errs = append(errs, errors.New("no Redis client"))
	}
	if opts.Writer == nil {
		errs = append(errs, errors.New("no Kafka writer"))
	}
	if opts.PacksDir == "" {
		errs = append(errs, errors.New("no rule packs directory"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	hash := hashPacks(opts.PacksDir)
	packs, err := LoadPacks(opts.PacksDir, opts.Catalog)
	if err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	e, err := engine.New(packs, engine.Options{Registerer: opts.Registerer})
	if err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	store, err := alertstate.New(alertstate.Options{Client: opts.Redis})
	if err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	r := &Ruler{
		opts:    opts,
		log:     opts.Logger.With("component", "ruler"),
		packs:   packs,
		engine:  e,
		store:   store,
		proc:    alerting.New(e, store),
		metrics: newMetrics(opts.Registerer),
	}
	r.metrics.rules.Set(float64(len(e.Rules())))
	r.initReload(hash)
	if err := r.initSilences(); err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	return r, nil
}

// LoadPacks loads and compiles the packs in dir and refuses those that use
// what the ruler does not implement yet, with the position of each use.
func LoadPacks(dir string, cat *catalog.Catalog) ([]*rulepack.Pack, error) {
	packs, err := rulepack.LoadDir(dir, cat)
	if err != nil {
		return nil, err
	}
	if err := alerting.CheckSupported(packs); err != nil {
		return nil, err
	}
	return packs, nil
}

// Store returns the alert state the ruler keeps, for the live gateway's
// snapshot (Store.Firing).
func (r *Ruler) Store() *alertstate.Store { return r.store }

// Run consumes events until ctx ends, then returns nil. Each fetched batch
// is evaluated, applied to the alert state and published to the alerts
// topic before its offsets are committed; an undecodable event goes to the
// events DLQ.
func (r *Ruler) Run(ctx context.Context) error {
	c, err := stream.NewConsumer(stream.ConsumerOptions[*cityhubv1.Event]{
		Brokers:         r.opts.Brokers,
		Topic:           r.opts.Topics.Events,
		Group:           r.opts.Group,
		Decode:          decodeEvent,
		ApplyPending:    r.apply,
		DeadLetter:      r.opts.Writer,
		DeadLetterTopic: r.opts.Topics.EventsDLQ,
		Logger:          r.opts.Logger,
		Registerer:      r.opts.Registerer,
		MaxBatch:        MaxBatch,
	})
	if err != nil {
		return fmt.Errorf("ruler: %w", err)
	}
	// The first batch already honours the silences that stand; a Redis
	// that cannot say leaves them to the refresh loop.
	if _, err := r.refreshSilences(ctx); err != nil {
		r.log.Warn("reading the silences failed; retrying every second", "err", err)
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{}, 2)
	go func() {
		defer func() { swept <- struct{}{} }()
		r.sweepLoop(sweepCtx)
	}()
	go func() {
		defer func() { swept <- struct{}{} }()
		r.followSilences(sweepCtx)
	}()
	defer func() {
		stopSweep()
		<-swept
		<-swept
	}()
	packs := r.currentPacks() // a reload may run already
	r.log.Info("ruler started", "packs", len(packs), "rules", len(rulepack.Rules(packs)), "group", r.opts.Group)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watch(watchCtx)
	}()
	defer func() {
		stopWatch()
		<-watched
	}()
	if err := c.Run(ctx); err != nil {
		return fmt.Errorf("ruler: %w", err)
	}
	return nil
}

func decodeEvent(m kafka.Message) (*cityhubv1.Event, error) {
	ev := &cityhubv1.Event{}
	if err := stream.Unmarshal(m, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// apply evaluates a batch and applies it to the alert state, and leaves
// the publication of the alerts it changed pending: the consumer evaluates
// the next batch meanwhile, and commits this one once Kafka has
// acknowledged them. A Redis error makes the consumer retry the batch,
// which is safe because alert updates are idempotent.
func (r *Ruler) apply(ctx context.Context, batch []stream.Record[*cityhubv1.Event]) (stream.Pending, error) {
	start := time.Now()
	events := make([]*cityhubv1.Event, len(batch))
	for i, rec := range batch {
		events[i] = rec.Value
	}
	r.mu.Lock()
	alerts, err := r.proc.Process(ctx, r.opts.Now(), events)
	if err != nil {
		r.mu.Unlock()
		r.metrics.failures.WithLabelValues("redis").Inc()
		return nil, err
	}
	// Batches are published in their order: each publication starts once
	// the one before it has ended.
	prev, done := r.lastPublished, make(chan struct{})
	r.lastPublished = done
	r.mu.Unlock()
	published := make(chan error, 1)
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		published <- r.publishRetrying(ctx, alerts)
	}()
	return func(ctx context.Context) error {
		if err := <-published; err != nil {
			return err
		}
		r.metrics.events.Add(float64(len(events)))
		r.metrics.batchSeconds.Observe(time.Since(start).Seconds())
		return nil
	}, nil
}

// publishRetrying publishes alerts, retrying with backoff until Kafka
// acknowledges them or ctx ends: the batch is applied to Redis already, so
// only its publication is left to do.
func (r *Ruler) publishRetrying(ctx context.Context, alerts []*cityhubv1.Alert) error {
	return stream.Retry(ctx, func(ctx context.Context) error { return r.publish(ctx, alerts) }, func(attempt int, err error) {
		if attempt == 1 {
			r.log.Warn("publishing alerts failed; retrying", "alerts", len(alerts), "err", err)
		}
	})
}

func (r *Ruler) publish(ctx context.Context, alerts []*cityhubv1.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, 0, len(alerts))
	for _, a := range alerts {
		m, err := stream.Marshal(r.opts.Topics.Alerts, a.GetDistrict(), a)
		if err != nil {
			return stream.Permanent(err)
		}
		msgs = append(msgs, m)
	}
	if err := r.opts.Writer.Write(ctx, msgs...); err != nil {
		r.metrics.failures.WithLabelValues("kafka").Inc()
		return fmt.Errorf("publish alerts: %w", err)
	}
	for _, a := range alerts {
		r.metrics.published(a.GetState()).Inc()
	}
	return nil
}

// sweepLoop sweeps every SweepInterval until ctx ends: pending alerts
// fire, expired ones resolve, silent groups' alerts fire.
func (r *Ruler) sweepLoop(ctx context.Context) {
	every := r.opts.SweepInterval
	if every <= 0 {
		every = DefaultSweepInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.sweep(ctx); err != nil && ctx.Err() == nil {
				r.metrics.failures.WithLabelValues("sweep").Inc()
				r.log.Warn("sweeping alerts failed; retrying at the next sweep", "err", err)
			}
		}
	}
}

func (r *Ruler) sweep(ctx context.Context) error {
	r.mu.Lock()
	alerts, err := r.proc.Sweep(ctx, r.opts.Now())
	r.mu.Unlock()
	if err != nil {
		return err
	}
	// An alert resolved here whose publication fails stays resolved in
	// Redis without a message; the next change of its group publishes
	// again. Retrying the write covers the common case.
	for attempt := 0; attempt < 3; attempt++ {
		if err = r.publish(ctx, alerts); err == nil {
			return nil
		}
	}
	return err
}

type metrics struct {
	events prometheus.Counter
	alerts *prometheus.CounterVec
	// byState holds alerts' counter of each state, looked up once.
	byState      map[cityhubv1.AlertState]prometheus.Counter
	failures     *prometheus.CounterVec
	batchSeconds prometheus.Histogram
	rules        prometheus.Gauge
}

// published returns the counter of published alerts in state.
func (m *metrics) published(state cityhubv1.AlertState) prometheus.Counter {
	if c, ok := m.byState[state]; ok {
		return c
	}
	return m.alerts.WithLabelValues(state.Name())
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := newMetricsVecs(reg)
	m.byState = map[cityhubv1.AlertState]prometheus.Counter{}
	for _, s := range []cityhubv1.AlertState{cityhubv1.AlertState_ALERT_STATE_PENDING, cityhubv1.AlertState_ALERT_STATE_FIRING, cityhubv1.AlertState_ALERT_STATE_RESOLVED} {
		m.byState[s] = m.alerts.WithLabelValues(s.Name())
	}
	return m
}

func newMetricsVecs(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		events: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_ruler_events_total",
			Help: "Events evaluated against every rule.",
		}),
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_ruler_alerts_published_total",
			Help: "Alert states published to the alerts topic, by state.",
		}, []string{"state"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_ruler_failures_total",
			Help: "Batches or sweeps that failed and will be retried, by what failed (redis, kafka, sweep).",
		}, []string{"what"}),
		batchSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cityhub_ruler_batch_seconds",
			Help:    "Time to evaluate a batch, update alert state and publish the alerts.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
		rules: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_ruler_rules",
			Help: "Rules loaded.",
		}),
	}
}
