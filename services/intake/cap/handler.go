package cap

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// Via is how events that came as CAP are counted by intake.
const Via = "cap"

// Options configures a Handler.
type Options struct {
	Config   *Config
	Catalog  *catalog.Catalog
	Submit   intake.SubmitFunc
	Verifier *auth.Verifier
	// RetryAfter is what a 503 asks the sender to wait; 5s when zero.
	RetryAfter time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock events are placed in time by; time.Now when nil.
	Now func() time.Time
}

// Handler accepts CAP warnings at POST /v1/cap. It is safe for concurrent
// use.
type Handler struct {
	opts    Options
	log     *slog.Logger
	metrics *handlerMetrics
}

type handlerMetrics struct {
	documents *prometheus.CounterVec
}

// Outcomes of a posted document, as counted.
const (
	outcomeAccepted    = "accepted"    // events written
	outcomeSkipped     = "skipped"     // valid CAP that became no event
	outcomeInvalid     = "invalid"     // not valid CAP
	outcomeRefused     = "refused"     // events intake refused
	outcomeUnavailable = "unavailable" // the event log did not acknowledge
	outcomeTooLarge    = "too_large"
	outcomeMediaType   = "unsupported_media_type"
)

// New checks opts and returns a Handler.
func New(opts Options) (*Handler, error) {
	var errs []error
	if opts.Config == nil {
		errs = append(errs, errors.New("no configuration"))
	}
	if opts.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if opts.Submit == nil {
		errs = append(errs, errors.New("no submit function"))
	}
	if opts.Verifier == nil {
		errs = append(errs, errors.New("no token verifier"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cap: %w", err)
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
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
	return &Handler{
		opts: opts,
		log:  opts.Logger.With("component", "cap"),
		metrics: &handlerMetrics{
			documents: f.NewCounterVec(prometheus.CounterOpts{
				Name: "cityhub_cap_documents_total",
				Help: "CAP documents posted to /v1/cap, by outcome: accepted (events written), skipped (valid CAP that became no event), invalid, refused (events intake refused), unavailable, too_large, unsupported_media_type.",
			}, []string{"outcome"}),
		},
	}, nil
}

// Routes registers POST /v1/cap on mux, for source and commander tokens.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.Handle("POST /v1/cap", h.opts.Verifier.Require(auth.RoleSource, auth.RoleCommander)(http.HandlerFunc(h.post)))
}

// mediaTypes are the content types a CAP document may come as.
var mediaTypes = []string{"application/cap+xml", "application/xml", "text/xml"}

// Accepted is the body of a 202 (events written) or 200 (nothing to
// write) answer: the ids of the events, and the parts of the document
// that became none, with the reason.
type Accepted struct {
	Accepted int       `json:"accepted"`
	IDs      []string  `json:"ids"`
	Skipped  []Problem `json:"skipped,omitempty"`
}

// RefusedEvent is an event intake refused, with the element it came from.
type RefusedEvent struct {
	Index  int                 `json:"index"`
	Path   string              `json:"path"`
	Errors []events.FieldError `json:"errors"`
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	h.metrics.documents.WithLabelValues(h.handle(w, r)).Inc()
}

func (h *Handler) handle(w http.ResponseWriter, r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(mediaTypes, mt) {
		httperr.Write(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the CAP document as Content-Type: application/cap+xml (or application/xml, text/xml)", nil)
		return outcomeMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httperr.Write(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a CAP document is at most %d bytes", MaxBytes), nil)
			return outcomeTooLarge
		}
		httperr.Write(w, http.StatusBadRequest, "unreadable_body", "reading the body: "+err.Error(), nil)
		return outcomeInvalid
	}
	a, err := Parse(body)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			httperr.Write(w, http.StatusBadRequest, "invalid_cap", err.Error(), nil)
			return outcomeInvalid
		}
		httperr.Write(w, http.StatusBadRequest, "invalid_cap", "not a valid CAP 1.2 document: "+ce.Problems[0].String(), ce.Problems)
		return outcomeInvalid
	}
	t := h.opts.Config.Translate(a, h.opts.Catalog, h.opts.Now())
	if len(t.Inputs) == 0 {
		// Valid CAP that is not for the city's event log (a test message,
		// a warning for elsewhere): answered, with the reasons, and counted.
		httperr.WriteJSON(w, http.StatusOK, Accepted{IDs: []string{}, Skipped: t.Skipped})
		return outcomeSkipped
	}
	p, _ := auth.FromContext(r.Context())
	ids, err := h.opts.Submit(r.Context(), Via, *p, t.Inputs)
	var be *events.BatchError
	switch {
	case err == nil:
		httperr.WriteJSON(w, http.StatusAccepted, Accepted{Accepted: len(ids), IDs: ids, Skipped: t.Skipped})
		return outcomeAccepted
	case errors.As(err, &be):
		refused := make([]RefusedEvent, len(be.Items))
		for i, it := range be.Items {
			refused[i] = RefusedEvent{Index: it.Index, Errors: it.Errors}
			if it.Index >= 0 && it.Index < len(t.Paths) {
				refused[i].Path = t.Paths[it.Index]
			}
		}
		msg := "no event was accepted: " + be.Error()
		if len(refused) > 0 {
			msg = fmt.Sprintf("no event was accepted: the event of %s: %s", refused[0].Path, be.Error())
		}
		httperr.Write(w, http.StatusBadRequest, "invalid_events", msg, refused)
		return outcomeRefused
	case errors.Is(err, events.ErrMalformed):
		httperr.Write(w, http.StatusBadRequest, "invalid_events", err.Error(), nil)
		return outcomeRefused
	default:
		h.log.Warn("the event log did not take a CAP document's events", "identifier", clip(a.Identifier), "events", len(t.Inputs), "err", err)
		w.Header().Set("Retry-After", fmt.Sprint(max(1, int(h.opts.RetryAfter.Round(time.Second)/time.Second))))
		httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "the event log did not acknowledge the events; send the document again (its events keep their ids)", nil)
		return outcomeUnavailable
	}
}
