// Package dispatch is cityhub's case service: it opens a case when an alert
// whose rule dispatches fires, keeps cases in Redis through casestore, moves
// them through the workflow of lifecycle, publishes every change on
// city.cases.v1, and serves the dispatcher REST API. What a caller may do
// with a case is package cases' to decide; the API only decodes requests
// for it and answers what it returns.
//
// Everything the service holds can be rebuilt from city.cases.v1 with
// Rebuild, so Redis may be empty on start.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

// DefaultGroup is the consumer group of the alert consumer.
const DefaultGroup = "cityhub-dispatch"

// Options configures a Service.
type Options struct {
	// Brokers are the Kafka bootstrap brokers; Run needs them.
	Brokers []string
	// Topics names the topics; DefaultTopics("") when zero.
	Topics stream.Topics
	// Group is the consumer group on Topics.Alerts; DefaultGroup when empty.
	Group string
	// Redis holds the cases.
	Redis redis.UniversalClient
	// Writer publishes case changes and dead letters.
	Writer *stream.Writer
	// Catalog names the districts and departments cases may belong to.
	Catalog *catalog.Catalog
	// Verifier authenticates API callers; Routes needs it.
	Verifier *auth.Verifier
	// Logger is scoped by the service; discarded when nil.
	Logger *slog.Logger
	// Registerer takes the service's metrics; a private registry when nil.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Calendar is the working calendar deadlines run on; built from the
	// catalog's calendar when nil.
	Calendar *workcal.Calendar
	// SweepInterval is how often Run looks for deadline moments that came
	// (warnings, escalations); DefaultSweepInterval when zero, never when
	// negative.
	SweepInterval time.Duration
	// SweepLease is how long a sweeper owns the timers it claimed; when it
	// dies, another takes them over after this long. DefaultSweepLease when
	// zero.
	SweepLease time.Duration
}

// Defaults of the sweeper.
const (
	DefaultSweepInterval = 5 * time.Second
	DefaultSweepLease    = time.Minute
)

// Validate reports every missing option.
func (o *Options) Validate() error {
	var errs []error
	if o.Redis == nil {
		errs = append(errs, errors.New("no Redis client"))
	}
	if o.Writer == nil {
		errs = append(errs, errors.New("no Kafka writer"))
	}
	if o.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if o.Verifier == nil {
		errs = append(errs, errors.New("no token verifier"))
	}
	return errors.Join(errs...)
}

func (o *Options) defaults() {
	if o.Topics == (stream.Topics{}) {
		o.Topics = stream.DefaultTopics("")
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.SweepLease <= 0 {
		o.SweepLease = DefaultSweepLease
	}
}

// Service is the case service. Its methods are safe for concurrent use.
type Service struct {
	opts    Options
	store   *casestore.Store
	cases   *cases.Service
	cal     *workcal.Calendar
	log     *slog.Logger
	metrics *metrics
}

// New returns a Service; it starts nothing.
func New(opts Options) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	opts.defaults()
	cal := opts.Calendar
	if cal == nil {
		var err error
		if cal, err = workcal.FromCatalog(opts.Catalog.WorkCalendar()); err != nil {
			return nil, fmt.Errorf("dispatch: catalog calendar: %w", err)
		}
	}
	s := &Service{
		opts:    opts,
		store:   casestore.New(opts.Redis, opts.Catalog.DistrictCodes()),
		cal:     cal,
		log:     opts.Logger.With("component", "dispatch"),
		metrics: newMetrics(opts.Registerer),
	}
	var err error
	s.cases, err = cases.New(cases.Options{
		Store:     s.store,
		Publisher: cases.PublisherFunc(s.publishChange),
		Catalog:   opts.Catalog,
		Calendar:  cal,
		Now:       opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	return s, nil
}

// Store returns the service's case store, for readers such as the live
// gateway's snapshot.
func (s *Service) Store() *casestore.Store { return s.store }

// Cases returns the operations on cases that the API serves, for callers
// that reach them another way (a notification's acknowledgement link, an
// Open311 adapter). Their changes are published as the API's are.
func (s *Service) Cases() *cases.Service { return s.cases }

// Run consumes alerts until ctx ends, opening a case for every firing of an
// alert whose rule dispatches, and returns nil then. An alert it cannot
// decode or act on goes to Topics.EventsDLQ. The case change is acknowledged
// by Kafka before the alert's offset is committed.
//
// Alongside, Run sweeps the case timers every SweepInterval (see Sweep);
// the sweeper stops before Run returns.
func (s *Service) Run(ctx context.Context) error {
	if len(s.opts.Brokers) == 0 {
		return errors.New("dispatch: no Kafka brokers")
	}
	c, err := stream.NewConsumer(stream.ConsumerOptions[*cityhubv1.Alert]{
		Brokers:         s.opts.Brokers,
		Topic:           s.opts.Topics.Alerts,
		Group:           s.opts.Group,
		Decode:          decodeAlert,
		Apply:           s.applyAlerts,
		DeadLetter:      s.opts.Writer,
		DeadLetterTopic: s.opts.Topics.EventsDLQ,
		Logger:          s.opts.Logger,
		Registerer:      s.opts.Registerer,
	})
	if err != nil {
		return fmt.Errorf("dispatch: %w", err)
	}
	s.log.Info("consuming alerts", "topic", s.opts.Topics.Alerts, "group", s.opts.Group)
	ctx, stop := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		s.sweepLoop(ctx)
	}()
	err = c.Run(ctx)
	stop()
	<-swept
	return err
}
