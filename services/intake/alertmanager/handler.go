package alertmanager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// Path is where Alertmanager posts its notifications.
const Path = "/v1/adapters/alertmanager"

// Via names this receiver in intake's metrics of how events came in.
const Via = "alertmanager"

// Options configures a Handler.
type Options struct {
	// Config is the mapping, from Load or Parse.
	Config *Config
	// Catalog is the catalog the mapping is checked against and events'
	// attributes are typed by.
	Catalog *catalog.Catalog
	// Submit is the way into the event log: intake.Service.Submit.
	Submit intake.SubmitFunc
	// Verifier authenticates Alertmanager's bearer token.
	Verifier   *auth.Verifier
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now stands in for the end of a resolved alert that has none;
	// time.Now when nil.
	Now func() time.Time
}

// Handler receives Alertmanager's notifications. It is safe for
// concurrent use.
type Handler struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
}

// The outcomes of an alert, as the alerts metric counts them.
const (
	outcomeFiring      = "firing"      // a firing alert became an event
	outcomeResolved    = "resolved"    // a resolved alert became a clear
	outcomeUnmatched   = "unmatched"   // no mapping takes the alert
	outcomeRefused     = "refused"     // a value did not convert, or intake refused the event
	outcomeDuplicate   = "duplicate"   // the alert came twice in one notification
	outcomeUnavailable = "unavailable" // the event log did not answer; Alertmanager sends it again
)

type metrics struct {
	notifications *prometheus.CounterVec
	alerts        *prometheus.CounterVec
	truncated     prometheus.Counter
}

// New checks opts, and the mapping against the catalog, and returns a
// Handler.
func New(opts Options) (*Handler, error) {
	var errs []error
	if opts.Config == nil {
		errs = append(errs, errors.New("no mapping"))
	}
	if opts.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if opts.Submit == nil {
		errs = append(errs, errors.New("no way to submit events"))
	}
	if opts.Verifier == nil {
		errs = append(errs, errors.New("no token verifier"))
	}
	if opts.Config != nil && opts.Catalog != nil {
		if err := check(cmp.Or(opts.Config.file, "mapping"), opts.Config, opts.Catalog); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("alertmanager receiver: %w", err)
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
	m := &metrics{
		notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_alertmanager_notifications_total",
			Help: "Alertmanager notifications by the HTTP status they were answered with (Alertmanager sends again only after a 5xx).",
		}, []string{"code"}),
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_alertmanager_alerts_total",
			Help: "Alerts of Alertmanager's notifications by outcome: firing or resolved (became an event), unmatched (no mapping takes it), refused (a value did not convert or intake refused the event), duplicate (twice in one notification), unavailable (the event log did not answer; Alertmanager sends it again).",
		}, []string{"outcome"}),
		truncated: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_alertmanager_truncated_alerts_total",
			Help: "Alerts Alertmanager left out of its notifications to keep within max_alerts; they never reached the hub.",
		}),
	}
	for _, o := range []string{outcomeFiring, outcomeResolved, outcomeUnmatched, outcomeRefused, outcomeDuplicate, outcomeUnavailable} {
		m.alerts.WithLabelValues(o)
	}
	h := &Handler{opts: opts, log: opts.Logger.With("component", "alertmanager"), metrics: m}
	h.log.Info("Alertmanager receiver ready", "path", Path, "mappings", len(opts.Config.Mappings))
	return h, nil
}

// Routes registers POST Path on mux, for source tokens (Alertmanager's
// http_config.authorization) and commanders.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.Handle("POST "+Path, h.opts.Verifier.Require(auth.RoleSource, auth.RoleCommander)(http.HandlerFunc(h.serve)))
}

// Answer is the body of a 200 answer, and the details of a 422 one: the
// ids of the events the alerts became, and the alerts that became none.
// Alertmanager reads only the status; the body is for people trying a
// mapping with curl.
type Answer struct {
	Alerts    int       `json:"alerts"`
	Accepted  int       `json:"accepted"`
	IDs       []string  `json:"ids"`
	Unmatched []Skipped `json:"unmatched,omitempty"`
	Refused   []Skipped `json:"refused,omitempty"`
}

// Skipped is an alert that became no event.
type Skipped struct {
	// Index is the alert's place in the notification's alerts.
	Index       int                 `json:"index"`
	Fingerprint string              `json:"fingerprint"`
	Alertname   string              `json:"alertname,omitempty"`
	Errors      []events.FieldError `json:"errors,omitempty"`
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	code := h.handle(w, r)
	h.metrics.notifications.WithLabelValues(strconv.Itoa(code)).Inc()
}

// handle answers one notification and returns the status it answered.
// Alertmanager sends a notification again only after a 5xx and drops it
// after a 4xx, so a 4xx is kept for what sending again cannot mend.
func (h *Handler) handle(w http.ResponseWriter, r *http.Request) int {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httperr.Write(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the notification as Content-Type: application/json", nil)
		return http.StatusUnsupportedMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httperr.Write(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a notification carries at most %d bytes; lower max_alerts in the webhook_config", MaxBodyBytes), nil)
			return http.StatusRequestEntityTooLarge
		}
		httperr.Write(w, http.StatusBadRequest, "unreadable_body", "reading the body: "+err.Error(), nil)
		return http.StatusBadRequest
	}
	msg, err := Decode(body)
	if err != nil {
		if errors.Is(err, ErrTooManyAlerts) {
			httperr.Write(w, http.StatusRequestEntityTooLarge, "too_many_alerts", err.Error(), nil)
			return http.StatusRequestEntityTooLarge
		}
		httperr.Write(w, http.StatusBadRequest, "malformed_notification", err.Error(), nil)
		return http.StatusBadRequest
	}
	results := translate(h.opts.Config, h.opts.Catalog, msg, h.opts.Now())
	p, ok := auth.FromContext(r.Context())
	if !ok { // Routes puts the receiver behind Require; this is a wiring mistake
		httperr.Write(w, http.StatusInternalServerError, "internal", "no principal", nil)
		return http.StatusInternalServerError
	}
	ids, dups, err := h.submit(r.Context(), *p, results)
	if err != nil {
		for i := range results {
			if results[i].input != nil && !dups[i] && results[i].errs == nil {
				h.metrics.alerts.WithLabelValues(outcomeUnavailable).Inc()
			}
		}
		w.Header().Set("Retry-After", "5")
		httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "the event log did not take the events; Alertmanager sends the notification again, and the same alerts are the same events", nil)
		return http.StatusServiceUnavailable
	}

	// Counted once the notification is answered for good, not again at
	// each retry after a 503.
	h.metrics.truncated.Add(float64(msg.TruncatedAlerts))
	ans := Answer{Alerts: len(results), IDs: []string{}}
	for i, res := range results {
		skip := Skipped{Index: i, Fingerprint: res.alert.Fingerprint, Alertname: res.alert.Labels["alertname"], Errors: res.errs}
		switch {
		case dups[i]:
			h.metrics.alerts.WithLabelValues(outcomeDuplicate).Inc()
		case !res.matched:
			h.metrics.alerts.WithLabelValues(outcomeUnmatched).Inc()
			ans.Unmatched = append(ans.Unmatched, skip)
		case ids[i] == "":
			h.metrics.alerts.WithLabelValues(outcomeRefused).Inc()
			ans.Refused = append(ans.Refused, skip)
		default:
			h.metrics.alerts.WithLabelValues(res.alert.Status).Inc()
			ans.IDs = append(ans.IDs, ids[i])
		}
	}
	ans.Accepted = len(ans.IDs)
	if ans.Accepted == 0 {
		// Nothing to keep: a 4xx, which Alertmanager does not send again,
		// but counts and logs as a failed notification, so that a mapping
		// that takes nothing shows where the alerts come from.
		httperr.Write(w, http.StatusUnprocessableEntity, "no_event", fmt.Sprintf("none of the %d alerts became an event: %d matched no mapping, %d were refused", len(results), len(ans.Unmatched), len(ans.Refused)), ans)
		return http.StatusUnprocessableEntity
	}
	httperr.WriteJSON(w, http.StatusOK, ans)
	return http.StatusOK
}

// submit hands the events of results to Submit and returns, by alert, the
// id of its event ("" for none) and whether it repeats an earlier alert of
// the notification. Events intake refuses are marked on their results
// and the rest submitted again: one bad alert must not hold back the
// others of its group. Refusal writes nothing, so submitting again is
// safe. A non-nil error means the event log did not take the events.
func (h *Handler) submit(ctx context.Context, p auth.Principal, results []result) ([]string, []bool, error) {
	ids := make([]string, len(results))
	dups := make([]bool, len(results))
	var pending []int
	seen := make(map[string]bool, len(results))
	for i, res := range results {
		if res.input == nil {
			continue
		}
		// Alertmanager sends each alert of a group once; a repeat would
		// make intake refuse the whole batch for a shared id.
		key := res.input.Source + "/" + res.input.ID
		if seen[key] {
			dups[i] = true
			continue
		}
		seen[key] = true
		pending = append(pending, i)
	}
	for len(pending) > 0 {
		in := make([]*events.Input, len(pending))
		for j, i := range pending {
			in[j] = results[i].input
		}
		got, err := h.opts.Submit(ctx, Via, p, in)
		var be *events.BatchError
		switch {
		case err == nil:
			for j, i := range pending {
				if j < len(got) {
					ids[i] = got[j]
				}
			}
			pending = nil
		case errors.As(err, &be):
			bad := make(map[int][]events.FieldError, len(be.Items))
			for _, item := range be.Items {
				if item.Index >= 0 && item.Index < len(pending) {
					bad[item.Index] = item.Errors
				}
			}
			if len(bad) == 0 { // a refusal that names no event: refuse them all
				refuse(results, pending, err)
				pending = nil
				break
			}
			var rest []int
			for j, i := range pending {
				if errs, ok := bad[j]; ok {
					results[i].errs = errs
				} else {
					rest = append(rest, i)
				}
			}
			pending = rest
		case errors.Is(err, events.ErrMalformed):
			refuse(results, pending, err)
			pending = nil
		default:
			return nil, dups, err
		}
	}
	for i := range results {
		if results[i].input != nil && ids[i] == "" && !dups[i] && results[i].errs == nil {
			results[i].errs = []events.FieldError{{Message: "intake returned no id"}}
		}
	}
	return ids, dups, nil
}

// refuse marks the results at indexes as refused for err.
func refuse(results []result, indexes []int, err error) {
	for _, i := range indexes {
		results[i].errs = []events.FieldError{{Message: err.Error()}}
	}
}
