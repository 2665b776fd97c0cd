package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/notify/ack"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/delivery"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/notify/queue"
	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/notify/route"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/httperr"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Consumer groups of the notify service.
const (
	GroupCases  = "cityhub-notify"
	GroupAlerts = "cityhub-notify-alerts"
)

// Options configures a Service.
type Options struct {
	Brokers []string
	Topics  stream.Topics
	// GroupPrefix is put before the consumer groups' names (tests on a
	// shared broker).
	GroupPrefix string
	Redis       redis.UniversalClient
	// Writer writes the outbox and the dead letters.
	Writer *stream.Writer
	// Config is notify.yaml as loaded at start.
	Config *config.Config
	// ConfigPath, when set, is the file Config came from: it is read again
	// when it changes (checked every PollInterval) and the new config
	// takes over — or, when it is refused, the running one stays.
	ConfigPath string
	// PollInterval is how often ConfigPath is checked; 5s when zero,
	// never when negative.
	PollInterval time.Duration
	Catalog      *catalog.Catalog
	// Calendar answers the routes' time conditions.
	Calendar route.Calendar
	// Cases answers whether a caller may see a case, for its notifications.
	Cases    *cases.Service
	Verifier *auth.Verifier
	// BaseURL is the hub's address as people reach it, for the links in
	// messages.
	BaseURL string
	// AckKey signs the acknowledgement links in messages to people (at
	// least 32 bytes); messages carry none when it is nil.
	AckKey []byte
	// Inbox keeps what the inbox receivers get; with Dev, every receiver's.
	Inbox *receiver.Inbox
	// Dev sends every message to Inbox instead of its receiver (the
	// embedded hub): the inbox shows what would have gone where.
	Dev bool
	// HTTPClient makes the receivers' requests; one per receiver with its
	// timeout when nil.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Service is the notify service: it decides, queues and delivers.
type Service struct {
	opts       Options
	log        *slog.Logger
	link       LinkFunc
	cur        atomic.Pointer[current]
	reloadMu   sync.Mutex // serialises reloads
	hash       string     // of ConfigPath's content at the last reload, under reloadMu
	queue      *queue.Queue
	attemptLog *delivery.Log
	engine     *delivery.Engine
	ack        *ack.Handler
	metrics    *metrics
}

// current is the config the service runs with now, and what is built
// from it.
type current struct {
	cfg     *config.Config
	decider *Decider
}

type metrics struct {
	reloads    *prometheus.CounterVec
	reloadedOK prometheus.Gauge
	decided    *prometheus.CounterVec
	applied    prometheus.Counter
	queued     prometheus.Counter
	cancelled  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_notify_config_reloads_total",
			Help: "Reloads of notify.yaml, by result (success, failure).",
		}, []string{"result"}),
		reloadedOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_notify_config_last_reload_successful",
			Help: "Whether the last reload of notify.yaml succeeded (1) or was refused, the running config staying (0).",
		}),
		decided: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_notify_decided_total",
			Help: "Notifications and cancels written to the outbox, by the stream whose change decided them (cases, alerts).",
		}, []string{"stream"}),
		applied: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_notify_outbox_applied_total",
			Help: "Outbox messages (notifications and cancels) applied to the delivery queue after the outbox acknowledged them; behind cityhub_notify_decided_total while a batch is being queued.",
		}),
		queued: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_notify_queued_total",
			Help: "Deliveries added to the queue (not counting those queued or done already).",
		}),
		cancelled: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_notify_cancelled_total",
			Help: "Queued deliveries dropped because the part they chased was accepted or left the state.",
		}),
	}
}

// New checks opts, builds every receiver (resolving its secrets) and
// returns a Service; Run starts it, Routes serves it.
func New(opts Options) (*Service, error) {
	var errs []error
	if len(opts.Brokers) == 0 || opts.Topics.Cases == "" || opts.Topics.Notifications == "" {
		errs = append(errs, errors.New("brokers and the cases and notifications topics are required"))
	}
	if opts.Redis == nil || opts.Writer == nil || opts.Config == nil || opts.Catalog == nil || opts.Calendar == nil {
		errs = append(errs, errors.New("Redis, a writer, the config, the catalog and a calendar are required"))
	}
	if opts.Inbox == nil {
		opts.Inbox = receiver.NewInbox(1000)
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
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	s := &Service{opts: opts, log: opts.Logger.With("component", "notify"), queue: queue.New(opts.Redis), attemptLog: delivery.NewLog(opts.Redis), metrics: newMetrics(opts.Registerer)}
	var link LinkFunc
	if opts.AckKey != nil {
		signer, err := ack.NewSigner(opts.AckKey)
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		link = func(caseID, dept, person, via string, expires time.Time) string {
			return opts.BaseURL + "/ack/" + signer.Sign(ack.Claims{Case: caseID, Dept: dept, Person: person, Via: via, Expires: expires.Unix()})
		}
		if opts.Cases != nil {
			s.ack = &ack.Handler{Signer: signer, Cases: opts.Cases, Redis: opts.Redis, Catalog: opts.Catalog, Now: opts.Now, Logger: s.log}
		}
	}
	s.link = link
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Second
		s.opts.PollInterval = opts.PollInterval
	}
	if opts.ConfigPath != "" {
		s.hash = fileHash(opts.ConfigPath)
	}
	s.metrics.reloadedOK.Set(1)
	receivers, err := s.receivers(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	s.cur.Store(s.current(opts.Config))
	s.engine, err = delivery.New(delivery.Options{
		Queue: s.queue, Log: s.attemptLog, Receivers: receivers, DeadLetter: s.deadLetter,
		Now: opts.Now, Logger: opts.Logger, Registerer: opts.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return s, nil
}

func (s *Service) current(cfg *config.Config) *current {
	return &current{cfg: cfg, decider: NewDecider(cfg, s.opts.Catalog, s.opts.Calendar, s.opts.Catalog.WorkCalendar().Location(), s.link, s.opts.BaseURL)}
}

// receivers builds the notifier and template of every receiver of cfg.
func (s *Service) receivers(cfg *config.Config) (map[string]*delivery.Receiver, error) {
	out := map[string]*delivery.Receiver{}
	var errs []error
	for i := range cfg.Receivers {
		r := &cfg.Receivers[i]
		tpl, err := templateOf(cfg, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var n receiver.Notifier = s.opts.Inbox
		if !s.opts.Dev {
			if n, err = receiver.New(r, receiver.Options{Client: s.opts.HTTPClient, Source: s.opts.BaseURL, Inbox: s.opts.Inbox}); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		out[r.Name] = &delivery.Receiver{Config: r, Notifier: n, Template: tpl}
	}
	return out, errors.Join(errs...)
}

// templateOf returns the template r's messages use.
func templateOf(cfg *config.Config, r *config.Receiver) (*message.Template, error) {
	if r.Template != "" {
		if t, ok := cfg.Templates[r.Template]; ok && t.Parsed() != nil {
			return t.Parsed(), nil
		}
	}
	return message.Default(cfg.Defaults.Language, r.Kind())
}

// Reload reads ConfigPath again and, when it is valid — every receiver
// built, every secret resolved — runs with it from the next change on.
// When it is refused the running config stays, and the error lists every
// problem with its place in the file.
func (s *Service) Reload(ctx context.Context) error {
	if s.opts.ConfigPath == "" {
		return errors.New("notify: no config file to reload")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.hash = fileHash(s.opts.ConfigPath)
	err := s.reload()
	if err != nil {
		s.metrics.reloads.WithLabelValues("failure").Inc()
		s.metrics.reloadedOK.Set(0)
		s.log.Error("notify.yaml refused; the running config stays", "path", s.opts.ConfigPath, "err", err)
		return err
	}
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.metrics.reloadedOK.Set(1)
	s.log.Info("notify.yaml reloaded", "path", s.opts.ConfigPath)
	return nil
}

func (s *Service) reload() error {
	cfg, err := config.Load(s.opts.ConfigPath, s.opts.Catalog)
	if err != nil {
		return err
	}
	receivers, err := s.receivers(cfg)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	s.engine.SetReceivers(receivers)
	s.cur.Store(s.current(cfg))
	return nil
}

// watch reloads the config when its file changes, until ctx ends.
func (s *Service) watch(ctx context.Context) error {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.reloadMu.Lock()
			changed := fileHash(s.opts.ConfigPath) != s.hash
			s.reloadMu.Unlock()
			if changed {
				s.Reload(ctx) // logged and counted; a refused file leaves the running config
			}
		}
	}
}

// fileHash returns a hash of path's content, or of the error reading it,
// so that a file fixed after a failure counts as a change.
func fileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "error: " + err.Error()
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Inbox returns the inbox the service writes to.
func (s *Service) Inbox() *receiver.Inbox { return s.opts.Inbox }

// Run decides, queues and delivers until ctx ends; it returns nil then.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	consumers := []func(context.Context) error{s.consumeCases, s.engine.Run}
	if s.opts.ConfigPath != "" && s.opts.PollInterval > 0 {
		consumers = append(consumers, s.watch)
	}
	if s.opts.Topics.Alerts != "" {
		consumers = append(consumers, s.consumeAlerts)
	}
	for _, run := range consumers {
		g.Go(func() error { return run(ctx) })
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// consumer consumes topic in group: decide turns each message into what
// it means for notify, in the consumer's fetching goroutine, so that the
// next batch is decided while the last one is written.
func consumer(s *Service, topic, group, stream_ string, decide func(kafka.Message, *current) (Decision, error)) (*stream.Consumer[decided], error) {
	return stream.NewConsumer(stream.ConsumerOptions[decided]{
		Brokers: s.opts.Brokers, Topic: topic, Group: s.opts.GroupPrefix + group,
		Decode: func(m kafka.Message) (decided, error) {
			cur := s.cur.Load()
			d, err := decide(m, cur)
			if err != nil {
				return decided{}, err
			}
			return s.encode(d, cur.cfg)
		},
		ApplyPending: s.write(stream_), MaxBatch: maxBatch,
		DeadLetter: s.opts.Writer, DeadLetterTopic: s.opts.Topics.EventsDLQ,
		Logger: s.opts.Logger, Registerer: s.opts.Registerer,
	})
}

// maxBatch bounds the messages a consumer of notify applies at once.
const maxBatch = 2048

// consumeCases decides on every case change. A message that is not a
// case change is dead-lettered.
func (s *Service) consumeCases(ctx context.Context) error {
	c, err := consumer(s, s.opts.Topics.Cases, GroupCases, config.StreamCases, func(m kafka.Message, cur *current) (Decision, error) {
		cc := new(cityhubv1.CaseChange)
		if err := stream.Unmarshal(m, cc); err != nil {
			return Decision{}, err
		}
		if cc.GetCase().GetId() == "" {
			return Decision{}, errors.New("a case change without a case")
		}
		return cur.decider.Case(cc), nil
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// consumeAlerts does for alerts what consumeCases does for cases.
func (s *Service) consumeAlerts(ctx context.Context) error {
	c, err := consumer(s, s.opts.Topics.Alerts, GroupAlerts, config.StreamAlerts, func(m kafka.Message, cur *current) (Decision, error) {
		a := new(cityhubv1.Alert)
		if err := stream.Unmarshal(m, a); err != nil {
			return Decision{}, nil // dispatch dead-letters what it cannot read; nothing to tell here
		}
		return cur.decider.Alert(a), nil
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// decided is one change's decision, encoded: the outbox messages, and the
// queue operations they stand for.
type decided struct {
	outbox    []kafka.Message
	ops       queue.Batch
	receivers []string // those with something queued, to wake
}

// encode encodes d for city.notifications.v1 — keyed by case (or alert)
// so that a case's notifications and cancels stay in order — and for the
// delivery queue, which keeps each notification as the outbox carries it.
// A cancel drops what chases the part at every receiver of cfg.
func (s *Service) encode(d Decision, cfg *config.Config) (decided, error) {
	var out decided
	for _, n := range d.Notifications {
		key := n.GetCaseId()
		if key == "" {
			key = n.GetGroup()
		}
		m, err := stream.Marshal(s.opts.Topics.Notifications, key, n)
		if err != nil {
			return decided{}, err
		}
		if err := out.ops.EnqueueEncoded(n, m.Value); err != nil {
			return decided{}, fmt.Errorf("notification %s for %s: %w", n.GetId(), n.GetReceiver(), err)
		}
		out.outbox = append(out.outbox, m)
		if !slices.Contains(out.receivers, n.GetReceiver()) {
			out.receivers = append(out.receivers, n.GetReceiver())
		}
	}
	for _, c := range d.Cancels {
		m, err := stream.Marshal(s.opts.Topics.Notifications, c.CaseID, &cityhubv1.Notification{CaseId: c.CaseID, Department: c.Department, Cancel: true, Version: c.Version})
		if err != nil {
			return decided{}, err
		}
		for i := range cfg.Receivers {
			if err := out.ops.Cancel(cfg.Receivers[i].Name, c.CaseID, c.Department, c.Version); err != nil {
				return decided{}, fmt.Errorf("cancel for %s: %w", cfg.Receivers[i].Name, err)
			}
		}
		out.outbox = append(out.outbox, m)
	}
	return out, nil
}

// write writes a batch's decisions to the outbox and, once every one is
// acknowledged, applies them to the delivery queue: nothing is sent that
// the outbox does not hold. Queueing is left pending, so that the next
// batch's outbox is written meanwhile; batches are queued in order, and
// a batch is committed only once it is queued. A batch decided again
// after a crash writes the same notification ids, which the queue keeps
// once.
func (s *Service) write(stream_ string) func(ctx context.Context, batch []stream.Record[decided]) (stream.Pending, error) {
	return func(ctx context.Context, batch []stream.Record[decided]) (stream.Pending, error) {
		var out []kafka.Message
		var ops queue.Batch
		wake := map[string]bool{}
		for _, rec := range batch {
			out = append(out, rec.Value.outbox...)
			ops.Append(&rec.Value.ops)
			for _, r := range rec.Value.receivers {
				wake[r] = true
			}
		}
		if err := s.opts.Writer.Write(ctx, out...); err != nil {
			return nil, err
		}
		s.metrics.decided.WithLabelValues(stream_).Add(float64(len(out)))
		return func(ctx context.Context) error {
			applied, err := s.applyQueue(ctx, &ops)
			if err != nil {
				return err
			}
			s.metrics.applied.Add(float64(len(out)))
			s.metrics.queued.Add(float64(applied.Queued))
			s.metrics.cancelled.Add(float64(applied.Cancelled))
			for r := range wake {
				s.engine.Wake(r)
			}
			return nil
		}, nil
	}
}

// applyQueue applies ops to the queue, trying again with backoff while
// Redis fails, until ctx ends.
func (s *Service) applyQueue(ctx context.Context, ops *queue.Batch) (queue.Applied, error) {
	var applied queue.Applied
	if ops.Len() == 0 {
		return applied, nil
	}
	err := stream.Retry(ctx, func(ctx context.Context) error {
		var err error
		applied, err = s.queue.Apply(ctx, ops)
		return err
	}, func(_ int, err error) {
		s.log.Warn("queueing notifications failed; trying again", "operations", ops.Len(), "err", err)
	})
	return applied, err
}

// deadLetter writes a delivery given up on to the dead-letter topic.
func (s *Service) deadLetter(ctx context.Context, d *queue.Delivery, reason error) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.opts.Writer.Write(ctx, kafka.Message{
		Topic: s.opts.Topics.EventsDLQ, Key: []byte(d.CaseID), Value: b,
		Headers: []kafka.Header{
			{Key: stream.DLQTopicHeader, Value: []byte(s.opts.Topics.Notifications)},
			{Key: stream.DLQReasonHeader, Value: []byte(reason.Error())},
			{Key: "content-type", Value: []byte("application/json")},
		},
	})
}

// Routes registers GET /v1/cases/{id}/notifications — every attempt to
// deliver a notification of the case, for whoever may see the case — and
// the acknowledgement links' pages under /ack/, which need no token: the
// link is the credential.
func (s *Service) Routes(mux *http.ServeMux) {
	if s.ack != nil {
		s.ack.Routes(mux)
	}
	mux.Handle("GET /v1/cases/{id}/notifications", s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment, auth.RoleViewer)(http.HandlerFunc(s.attempts)))
}

// AttemptList is the body of GET /v1/cases/{id}/notifications.
type AttemptList struct {
	Items []delivery.Attempt `json:"items"`
}

func (s *Service) attempts(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	if s.opts.Cases == nil {
		httperr.Write(w, http.StatusNotFound, "not_found", "no such case", nil)
		return
	}
	if _, err := s.opts.Cases.Get(r.Context(), p, id); err != nil {
		if errors.Is(err, cases.ErrNotFound) {
			httperr.Write(w, http.StatusNotFound, "not_found", "no such case", nil)
			return
		}
		s.log.Error("reading a case failed", "err", err)
		httperr.Write(w, http.StatusInternalServerError, "internal", "reading the case failed", nil)
		return
	}
	items, err := s.attemptLog.List(r.Context(), id)
	if err != nil {
		s.log.Error("reading attempts failed", "err", err)
		httperr.Write(w, http.StatusInternalServerError, "internal", "reading the attempts failed", nil)
		return
	}
	if items == nil {
		items = []delivery.Attempt{}
	}
	httperr.WriteJSON(w, http.StatusOK, AttemptList{Items: items})
}
