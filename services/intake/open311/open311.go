package open311

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// Prefix is the path every resource of the API is under.
const Prefix = "/open311/v2/"

// Specification names GeoReport v2 in the discovery document.
const Specification = "http://wiki.open311.org/GeoReport_v2"

// Via is how intake counts the events that came through this adapter, and
// Source the source a commander's report (or one of a token speaking for
// several sources) is posted as.
const (
	Via    = "open311"
	Source = "open311"
)

// MaxResults bounds the requests one GET requests returns, and Window the
// span of its time window: the specification's defaults and limits.
const (
	MaxResults = 1000
	Window     = 90 * 24 * time.Hour
)

// Options configures a Handler.
type Options struct {
	// Catalog gives the services (the event types with a report: block)
	// and the districts.
	Catalog *catalog.Catalog
	// Submit takes the event a report becomes.
	Submit intake.SubmitFunc
	// Unavailable is the error Submit wraps when the event log did not
	// acknowledge (intake.ErrUnavailable): answered with 503 and
	// Retry-After. Other errors that are not a refusal of the event are
	// answered with 500. When nil, every such error counts as unavailable.
	Unavailable error
	// Verifier checks the api_key of a POST.
	Verifier *auth.Verifier
	// Requests records the accepted requests.
	Requests Store
	// Cases tells where the case a report became stands.
	Cases Cases
	// Jurisdiction is the jurisdiction_id this endpoint serves. A request
	// naming another is answered 404; one naming none is served. When
	// empty, any jurisdiction_id is accepted.
	Jurisdiction string
	// URL is the endpoint's address in the discovery document
	// (https://hub.example.gov/open311/v2); taken from each request when
	// empty.
	URL string
	// Contact and KeyService are the discovery document's words on whom to
	// ask and how to get an api_key.
	Contact, KeyService string
	// EndpointType is "production" (the default) or "test".
	EndpointType string
	// Changeset is when the services last changed, for the discovery
	// document; the time New ran when zero.
	Changeset time.Time
	// MaxDistance is how far (metres) coordinates may be from the nearest
	// district centre; DefaultMaxDistance when zero.
	MaxDistance float64
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Now is the hub's clock; time.Now when nil.
	Now func() time.Time
}

// Validate reports what opts lack.
func (o *Options) Validate() error {
	var errs []error
	if o.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if o.Submit == nil {
		errs = append(errs, errors.New("no submit function"))
	}
	if o.Verifier == nil {
		errs = append(errs, errors.New("no token verifier"))
	}
	if o.Requests == nil {
		errs = append(errs, errors.New("no request store"))
	}
	if o.Cases == nil {
		errs = append(errs, errors.New("no cases to follow reports to"))
	}
	if o.EndpointType != "" && o.EndpointType != "production" && o.EndpointType != "test" {
		errs = append(errs, fmt.Errorf("endpoint type %q: want production or test", o.EndpointType))
	}
	if o.MaxDistance < 0 {
		errs = append(errs, fmt.Errorf("max distance %v: want a positive number of metres", o.MaxDistance))
	}
	return errors.Join(errs...)
}

// Handler serves the Open311 API. It is safe for concurrent use.
type Handler struct {
	opts      Options
	zone      *time.Location
	changeset string
	services  serviceList
	defs      map[string]definitionDoc
	types     map[string]*catalog.EventType
	placer    placer
	log       *slog.Logger
	lastLog   atomic.Int64 // Unix ns of the last failure logged
	metrics   *metrics
}

type metrics struct {
	requests *prometheus.CounterVec
}

// New checks opts and returns a Handler serving the catalog's reportable
// event types.
func New(opts Options) (*Handler, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("open311: %w", err)
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
	if opts.MaxDistance == 0 {
		opts.MaxDistance = DefaultMaxDistance
	}
	if opts.EndpointType == "" {
		opts.EndpointType = "production"
	}
	if opts.Contact == "" {
		opts.Contact = "城市运行管理中心（cityhub）值班室"
	}
	if opts.KeyService == "" {
		opts.KeyService = "api_key 是 cityhub 的数据源令牌，向城市运行管理中心申请（cityhub token --role source --sources open311）"
	}
	if opts.Changeset.IsZero() {
		opts.Changeset = opts.Now()
	}
	h := &Handler{
		opts:      opts,
		zone:      time.UTC,
		changeset: opts.Changeset.UTC().Format(time.RFC3339),
		defs:      map[string]definitionDoc{},
		types:     map[string]*catalog.EventType{},
		placer:    placer{cat: opts.Catalog, maxDist: opts.MaxDistance},
		log:       opts.Logger.With("component", "open311"),
		metrics: &metrics{
			requests: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
				Name: "cityhub_open311_requests_total",
				Help: "Open311 requests by endpoint (discovery, services, service, create, requests, request, unknown), format (xml, json) and HTTP status.",
			}, []string{"endpoint", "format", "code"}),
		},
	}
	if cal := opts.Catalog.WorkCalendar(); cal != nil && cal.Location() != nil {
		h.zone = cal.Location()
	}
	for _, t := range opts.Catalog.Reportable() {
		h.types[t.Code] = t
		h.services.Services = append(h.services.Services, serviceOf(t))
		h.defs[t.Code] = h.definitionOf(t)
	}
	return h, nil
}

// Routes registers every resource under Prefix on mux, and an error
// document for every other path under it. Methods are checked by the
// handlers, so that a wrong one is answered in the protocol's terms too.
func (h *Handler) Routes(mux *http.ServeMux) {
	for _, f := range formats {
		ext := "." + string(f)
		mux.Handle(Prefix+"discovery"+ext, h.route("discovery", h.discovery, nil))
		mux.Handle(Prefix+"services"+ext, h.route("services", h.serviceList, nil))
		mux.Handle(Prefix+"requests"+ext, h.route("requests", h.list, h.create))
	}
	mux.Handle(Prefix+"services/{file}", h.route("service", h.definition, nil))
	mux.Handle(Prefix+"requests/{file}", h.route("request", h.one, nil))
	mux.Handle(Prefix, h.route("unknown", nil, nil))
}

// op answers one resource: name is the last segment of the path without
// its extension. It returns the HTTP status it answered with.
type op func(w http.ResponseWriter, r *http.Request, name string, f format) int

// route dispatches on the method, checks the format and the
// jurisdiction_id of a GET, and counts the answer.
func (h *Handler) route(endpoint string, get, post op) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint := endpoint
		name, f, ok := formatOf(r.URL.Path)
		var code int
		switch {
		case get == nil && post == nil:
			code = h.fail(w, f, refuse(http.StatusNotFound, problem{message: "no such resource; GET " + Prefix + "discovery.xml lists what is served"}))
		case !ok:
			code = h.fail(w, f, refuse(http.StatusNotFound, problem{message: "unknown format: append .xml or .json to the resource"}))
		case (r.Method == http.MethodGet || r.Method == http.MethodHead) && get != nil:
			if rf := h.jurisdiction(r.URL.Query().Get("jurisdiction_id")); rf != nil {
				code = h.fail(w, f, rf)
				break
			}
			code = get(w, r, name, f)
		case r.Method == http.MethodPost && post != nil:
			endpoint = "create"
			code = post(w, r, name, f)
		default:
			var allow []string
			if get != nil {
				allow = append(allow, http.MethodGet, http.MethodHead)
			}
			if post != nil {
				allow = append(allow, http.MethodPost)
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			code = h.fail(w, f, refuse(http.StatusMethodNotAllowed, problemf("", "method %s not allowed here; use %s", r.Method, strings.Join(allow, " or "))))
		}
		h.metrics.requests.WithLabelValues(endpoint, string(f), strconv.Itoa(code)).Inc()
	})
}

// refusal is an answer of error documents: one per problem.
type refusal struct {
	status   int
	problems []problem
}

func refuse(status int, probs ...problem) *refusal {
	return &refusal{status: status, problems: probs}
}

// fail answers rf. A 503 says when to try again.
func (h *Handler) fail(w http.ResponseWriter, f format, rf *refusal) int {
	if rf.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	doc := errorList{Errors: make([]errorDoc, len(rf.problems))}
	for i, p := range rf.problems {
		doc.Errors[i] = errorDoc{Code: rf.status, Description: p.String()}
	}
	return write(w, f, rf.status, doc)
}

// unavailable logs err and returns the 503 that answers it.
func (h *Handler) unavailable(what string, err error) *refusal {
	h.logFailure(what+" failed; answering 503", err)
	return refuse(http.StatusServiceUnavailable, problemf("", "%s is out of reach; try again shortly", what))
}

// logFailure logs a failure of the hub's own at most once a minute, so
// that an outage does not log every request; the metrics count them all.
func (h *Handler) logFailure(msg string, err error) {
	now := time.Now().UnixNano()
	if last := h.lastLog.Load(); now-last > int64(time.Minute) && h.lastLog.CompareAndSwap(last, now) {
		h.log.Error(msg+" (logged at most once a minute)", "err", err)
	}
}

// jurisdiction checks a jurisdiction_id: none, or the one served.
func (h *Handler) jurisdiction(id string) *refusal {
	if id == "" || h.opts.Jurisdiction == "" || id == h.opts.Jurisdiction {
		return nil
	}
	return refuse(http.StatusNotFound, problemf("jurisdiction_id", "%q not found; this endpoint serves %s", clip(id), h.opts.Jurisdiction))
}

func (h *Handler) discovery(w http.ResponseWriter, r *http.Request, _ string, f format) int {
	url := h.opts.URL
	if url == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		url = scheme + "://" + r.Host + strings.TrimSuffix(Prefix, "/")
	}
	return write(w, f, http.StatusOK, discoveryDoc{
		Changeset:  h.changeset,
		Contact:    h.opts.Contact,
		KeyService: h.opts.KeyService,
		Endpoints: []endpointDoc{{
			Specification: Specification,
			URL:           url,
			Changeset:     h.changeset,
			Type:          h.opts.EndpointType,
			Formats:       []string{formatXML.mime(), formatJSON.mime()},
		}},
	})
}

// mime is the media type of f, as discovery lists it.
func (f format) mime() string {
	mt, _, _ := strings.Cut(f.contentType(), ";")
	return mt
}

func (h *Handler) serviceList(w http.ResponseWriter, _ *http.Request, _ string, f format) int {
	return write(w, f, http.StatusOK, h.services)
}

func (h *Handler) definition(w http.ResponseWriter, _ *http.Request, code string, f format) int {
	def, ok := h.defs[code]
	if !ok {
		return h.fail(w, f, refuse(http.StatusNotFound, problemf("service_code", "%q not found; GET services lists the services", clip(code))))
	}
	return write(w, f, http.StatusOK, def)
}

// serviceOf is the entry of t in the service list. Every service has
// metadata: at least the district question.
func serviceOf(t *catalog.EventType) serviceDoc {
	return serviceDoc{
		Code:        t.Code,
		Name:        t.Report.ServiceName,
		Description: text(t.Report.Description),
		Metadata:    true,
		Type:        "realtime",
		Keywords:    text(strings.Join(t.Report.Keywords, ", ")),
		Group:       text(t.Report.Group),
	}
}

// definitionOf is the service definition of t: its questions in order,
// then the district question.
func (h *Handler) definitionOf(t *catalog.EventType) definitionDoc {
	def := definitionDoc{Code: t.Code}
	last := 0
	for _, a := range t.Report.Attributes {
		doc := attributeDoc{
			Variable:            true,
			Code:                a.Code,
			Datatype:            string(a.Datatype),
			Required:            a.Required,
			DatatypeDescription: text(a.DatatypeDescription),
			Order:               a.Order,
			Description:         a.Description,
		}
		for _, v := range a.Values {
			doc.Values = append(doc.Values, valueDoc{Key: v.Key, Name: v.Name})
		}
		def.Attributes = append(def.Attributes, doc)
		last = max(last, a.Order)
	}
	def.Attributes = append(def.Attributes, attributeDoc{
		Variable:    true,
		Code:        catalog.ReservedReportCode,
		Datatype:    string(catalog.DatatypeSingleValueList),
		Order:       last + 1,
		Description: districtQuestion(h.opts.MaxDistance),
		Values:      districtValues(h.opts.Catalog),
	})
	return def
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
