// Package intake is the front door of cityhub: POST /v1/events validates
// city events and writes them, keyed by district, to city.events.v1. It
// answers 202 only after Kafka has acknowledged every event of the request.
package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/httperr"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Options configures a Service.
type Options struct {
	// Writer writes the accepted events.
	Writer   *stream.Writer
	Topics   stream.Topics
	Catalog  *catalog.Catalog
	Verifier *auth.Verifier
	// WriteTimeout bounds the wait for Kafka's acknowledgement; 10s when zero.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	// Now is the clock events are checked against; time.Now when nil.
	Now func() time.Time
	// Redis, when set, keeps what each source sends by the minute, shared
	// by every replica, for GET /v1/sources.
	Redis redis.UniversalClient
}

// Service handles event intake. It is safe for concurrent use.
type Service struct {
	opts    Options
	sources *sources
	dec     *events.Decoder
	log     *slog.Logger
	metrics *metrics
}

type metrics struct {
	uncounted prometheus.Counter
	requests  *prometheus.CounterVec
	events    *prometheus.CounterVec
	write     prometheus.Histogram
}

// New checks opts and returns a Service.
func New(opts Options) (*Service, error) {
	var errs []error
	if opts.Writer == nil {
		errs = append(errs, errors.New("no Kafka writer"))
	}
	if opts.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if opts.Verifier == nil {
		errs = append(errs, errors.New("no token verifier"))
	}
	if opts.Topics.Events == "" {
		errs = append(errs, errors.New("no events topic"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
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
	f := promauto.With(opts.Registerer)
	return &Service{
		opts:    opts,
		sources: &sources{rdb: opts.Redis, now: opts.Now},
		dec:     &events.Decoder{Catalog: opts.Catalog, Now: opts.Now},
		log:     opts.Logger.With("component", "intake"),
		metrics: &metrics{
			uncounted: f.NewCounter(prometheus.CounterOpts{
				Name: "cityhub_intake_sources_uncounted_total",
				Help: "Requests whose per-source counts (GET /v1/sources) could not be written to Redis.",
			}),
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name: "cityhub_intake_requests_total",
				Help: "Event requests by HTTP status.",
			}, []string{"code"}),
			events: f.NewCounterVec(prometheus.CounterOpts{
				Name: "cityhub_intake_events_total",
				Help: "Events by the way they came (events: POST /v1/events, or an adapter), their source, and outcome: accepted, or rejected because their request was. Rejected events count under the source their token speaks for first (\"-\" for tokens that name none).",
			}, []string{"via", "source", "outcome"}),
			write: f.NewHistogram(prometheus.HistogramOpts{
				Name:    "cityhub_intake_kafka_write_seconds",
				Help:    "Time from writing a request's events to Kafka's acknowledgement.",
				Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
			}),
		},
	}, nil
}

// Routes registers POST /v1/events on mux, for the source and commander roles.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.Handle("POST /v1/events", s.opts.Verifier.Require(auth.RoleSource, auth.RoleCommander)(http.HandlerFunc(s.postEvents)))
	s.routeSources(mux)
}

// SubmitFunc is Submit as a value: what an adapter is given to put the
// events it translated on the log. An invalid batch is a
// *events.BatchError, a batch that is not one wraps events.ErrMalformed;
// any other error means the log did not acknowledge the events (their ids
// come back with ErrUnavailable), and the same batch may be sent again.
type SubmitFunc func(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error)

// Submit calls f, so that a SubmitFunc serves where a value with a Submit
// method is wanted (the MQTT bridge's Submitter).
func (f SubmitFunc) Submit(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	return f(ctx, via, p, in)
}

// ViaEvents is how events posted to /v1/events as JSON are counted.
const ViaEvents = "events"

// ErrUnavailable is returned by Submit when Kafka did not acknowledge the
// events: some may have been written, and a retry with the same ids is
// harmless because every consumer is idempotent by event id.
var ErrUnavailable = errors.New("intake: the event log did not acknowledge the events")

// Submit validates events an adapter built from a source's own protocol and
// writes them, on behalf of p, exactly as POST /v1/events does: all or none,
// only sources p speaks for, and back only after Kafka acknowledged every
// one. It returns their ids (assigned where absent). An invalid batch is a
// *events.BatchError, a batch that is not one an error wrapping
// events.ErrMalformed, an unacknowledged write ErrUnavailable (with the ids).
//
// via names the adapter, for the metrics of what each source sends and how.
func (s *Service) Submit(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	dec := *s.dec
	dec.SpeaksFor = p.SpeaksFor
	evs, err := dec.DecodeInputs(in)
	if err != nil {
		s.rejected(via, p, err)
		return nil, err
	}
	return s.write(ctx, via, evs)
}

// rejected counts the events of a refused batch.
func (s *Service) rejected(via string, p auth.Principal, err error) {
	n := 1
	var be *events.BatchError
	if errors.As(err, &be) {
		n = len(be.Items)
	}
	source := "-"
	if len(p.Sources) > 0 {
		source = p.Sources[0]
	}
	s.metrics.events.WithLabelValues(via, source, "rejected").Add(float64(n))
	s.note(via, nil, map[string]int{source: n})
}

// note records counts for GET /v1/sources, briefly and best effort.
func (s *Service) note(via string, accepted, rejected map[string]int) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.sources.record(ctx, via, accepted, rejected); err != nil {
		s.metrics.uncounted.Inc()
	}
}

// write writes evs, keyed by district, and waits for Kafka's
// acknowledgement.
func (s *Service) write(ctx context.Context, via string, evs []*cityhubv1.Event) ([]string, error) {
	msgs := make([]kafka.Message, len(evs))
	ids := make([]string, len(evs))
	for i, ev := range evs {
		m, err := stream.Marshal(s.opts.Topics.Events, ev.GetLocation().GetDistrict(), ev)
		if err != nil {
			return nil, fmt.Errorf("intake: encoding event %d: %w", i, err)
		}
		msgs[i], ids[i] = m, ev.GetId()
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	start := time.Now()
	if err := s.opts.Writer.Write(ctx, msgs...); err != nil {
		s.log.Error("writing events to Kafka failed", "events", len(msgs), "err", err)
		return ids, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.metrics.write.Observe(time.Since(start).Seconds())
	accepted := map[string]int{}
	for _, ev := range evs {
		s.metrics.events.WithLabelValues(via, ev.GetSource(), "accepted").Inc()
		accepted[ev.GetSource()]++
	}
	s.note(via, accepted, nil)
	return ids, nil
}

// Accepted is the body of a 202 response.
type Accepted struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
}

func (s *Service) postEvents(w http.ResponseWriter, r *http.Request) {
	code := s.handle(w, r)
	s.metrics.requests.WithLabelValues(fmt.Sprint(code)).Inc()
}

func (s *Service) handle(w http.ResponseWriter, r *http.Request) int {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httperr.Write(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the events as Content-Type: application/json", nil)
		return http.StatusUnsupportedMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, events.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httperr.Write(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a request carries at most %d bytes; split the batch", events.MaxBodyBytes), nil)
			return http.StatusRequestEntityTooLarge
		}
		httperr.Write(w, http.StatusBadRequest, "unreadable_body", "reading the body: "+err.Error(), nil)
		return http.StatusBadRequest
	}
	// The token says which sources the caller speaks for; an event of any
	// other source is refused with the rest of its request.
	p, _ := auth.FromContext(r.Context())
	dec := *s.dec
	dec.SpeaksFor = p.SpeaksFor
	evs, err := dec.DecodeBody(body)
	if err != nil {
		s.rejected(ViaEvents, *p, err)
		var be *events.BatchError
		if errors.As(err, &be) {
			httperr.Write(w, http.StatusBadRequest, "invalid_events", "no event was accepted: "+be.Error(), be.Items)
			return http.StatusBadRequest
		}
		httperr.Write(w, http.StatusBadRequest, "malformed_body", err.Error(), nil)
		return http.StatusBadRequest
	}
	ids, err := s.write(r.Context(), ViaEvents, evs)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		httperr.Write(w, http.StatusInternalServerError, "internal", "encoding an event failed", nil)
		return http.StatusInternalServerError
	}
	if err != nil {
		w.Header().Set("Retry-After", "5")
		httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "the event log did not acknowledge the events; retry the request with the same ids", map[string]any{"ids": ids})
		return http.StatusServiceUnavailable
	}
	httperr.WriteJSON(w, http.StatusAccepted, Accepted{Accepted: len(ids), IDs: ids})
	return http.StatusAccepted
}
