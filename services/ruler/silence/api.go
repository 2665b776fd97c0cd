package silence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/httperr"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Options configures a Service.
type Options struct {
	Store *Store
	// Writer writes the record to Topic.
	Writer *stream.Writer
	Topic  string
	// Known returns what matchers are checked against now (the packs
	// reload).
	Known func() Known
	// Packs returns the packs that run now, whose silences the list shows
	// beside the ones set at run time.
	Packs func() []*rulepack.Pack
	// Verifier authenticates callers; Routes needs it.
	Verifier *auth.Verifier
	// Changed, when set, is called once a change is kept, before the
	// caller is answered: the ruler of the same process takes the silence
	// on at once, the others within a second.
	Changed func(context.Context)
	// Now is the clock; time.Now when nil.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service is the silences API. Its methods are safe for concurrent use.
type Service struct {
	opts    Options
	log     *slog.Logger
	changes *prometheus.CounterVec
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if opts.Writer == nil || opts.Topic == "" {
		errs = append(errs, errors.New("no Kafka writer and topic for the record"))
	}
	if opts.Known == nil || opts.Packs == nil {
		errs = append(errs, errors.New("no packs to check matchers against"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("silence: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	return &Service{
		opts: opts, log: opts.Logger.With("component", "silences"),
		changes: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_silences_changes_total",
			Help: "Silences set and expired through the API, by change (created, expired) and whether forced over every alert.",
		}, []string{"change", "forced"}),
	}, nil
}

// Routes registers the API:
//
//	POST /v1/silences               set a silence (commander, dispatcher, department)
//	GET  /v1/silences?state=        the silences the caller may see, with the packs' own
//	GET  /v1/silences/{id}          one
//	POST /v1/silences/{id}/expire   end one now
func (s *Service) Routes(mux *http.ServeMux) {
	act := s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment)
	see := s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment, auth.RoleViewer)
	mux.Handle("POST /v1/silences", act(http.HandlerFunc(s.create)))
	mux.Handle("GET /v1/silences", see(http.HandlerFunc(s.list)))
	mux.Handle("GET /v1/silences/{id}", see(http.HandlerFunc(s.get)))
	mux.Handle("POST /v1/silences/{id}/expire", act(http.HandlerFunc(s.expire)))
}

// View is the JSON form of a silence. Source is "api" for one set at run
// time, "pack" for one a pack declares (which the API cannot change).
type View struct {
	ID                string              `json:"id"`
	Source            string              `json:"source"`
	State             string              `json:"state"`
	Matchers          map[string][]string `json:"matchers"`
	StartsAt          time.Time           `json:"starts_at"`
	EndsAt            time.Time           `json:"ends_at"`
	Comment           string              `json:"comment"`
	CreatedBy         string              `json:"created_by"`
	CreatorRole       string              `json:"creator_role,omitempty"`
	CreatorDepartment string              `json:"creator_department,omitempty"`
	CreatedAt         *time.Time          `json:"created_at,omitempty"`
	UpdatedAt         *time.Time          `json:"updated_at,omitempty"`
	ExpiredBy         string              `json:"expired_by,omitempty"`
	Forced            bool                `json:"forced,omitempty"`
	Pack              string              `json:"pack,omitempty"`
	Version           int64               `json:"version,omitempty"`
}

func viewOf(s *cityhubv1.Silence, now time.Time) View {
	created, updated := s.GetCreatedAt().AsTime(), s.GetUpdatedAt().AsTime()
	return View{
		ID: s.GetId(), Source: "api", State: State(s, now), Matchers: Matchers(s),
		StartsAt: s.GetStartsAt().AsTime(), EndsAt: s.GetEndsAt().AsTime(), Comment: s.GetComment(),
		CreatedBy: s.GetCreatedBy(), CreatorRole: s.GetCreatorRole(), CreatorDepartment: s.GetCreatorDepartment(),
		CreatedAt: &created, UpdatedAt: &updated, ExpiredBy: s.GetExpiredBy(), Forced: s.GetForced(), Version: s.GetVersion(),
	}
}

func packView(ps *rulepack.Silence, now time.Time) View {
	state := "active"
	switch {
	case !now.Before(ps.Ends):
		state = "expired"
	case now.Before(ps.Starts):
		state = "pending"
	}
	return View{
		ID: ps.Name, Source: "pack", State: state, Matchers: ps.Matchers, StartsAt: ps.Starts, EndsAt: ps.Ends,
		Comment: ps.Reason, CreatedBy: ps.CreatedBy, Pack: ps.Pack,
	}
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	var req Request
	if !decode(w, r, &req) {
		return
	}
	now := s.opts.Now()
	known := s.opts.Known()
	m, problems := req.check(known, now)
	if len(problems) > 0 {
		httperr.Write(w, http.StatusBadRequest, "invalid_silence", "the silence was refused: "+problems.Error(), problems)
		return
	}
	if err := mayCreate(p, m, req.Force, known); err != nil {
		httperr.Write(w, http.StatusForbidden, "forbidden", err.Error(), nil)
		return
	}
	sil := newSilence(newID(), &req, m, p, now)
	if err := s.record(r.Context(), sil); err != nil {
		s.unavailable(w, err)
		return
	}
	if sil.GetForced() {
		// A silence over every alert is rare and heavy: it is audited in
		// the log, by who set it and why (never the token).
		s.log.Warn("a silence over every alert was set", "id", sil.GetId(), "by", sil.GetCreatedBy(), "role", sil.GetCreatorRole(),
			"until", sil.GetEndsAt().AsTime(), "comment", sil.GetComment())
	}
	s.changes.WithLabelValues("created", fmt.Sprint(sil.GetForced())).Inc()
	httperr.WriteJSON(w, http.StatusCreated, viewOf(sil, now))
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	state := r.URL.Query().Get("state")
	if state != "" && state != "active" && state != "pending" && state != "expired" {
		httperr.Write(w, http.StatusBadRequest, "invalid_query", fmt.Sprintf("state %q: want active, pending or expired", clip(state)), nil)
		return
	}
	all, _, err := s.opts.Store.All(r.Context())
	if err != nil {
		s.unavailable(w, err)
		return
	}
	now := s.opts.Now()
	known := s.opts.Known()
	items := []View{}
	for _, sil := range all {
		if maySee(p, sil, known) {
			items = append(items, viewOf(sil, now))
		}
	}
	for _, pk := range s.opts.Packs() {
		for _, ps := range pk.Silences {
			v := packView(ps, now)
			if maySee(p, &cityhubv1.Silence{Matchers: matchersProto(ps.Matchers)}, known) {
				items = append(items, v)
			}
		}
	}
	items = slices.DeleteFunc(items, func(v View) bool { return state != "" && v.State != state })
	slices.SortFunc(items, func(a, b View) int { return b.StartsAt.Compare(a.StartsAt) })
	httperr.WriteJSON(w, http.StatusOK, struct {
		Items []View `json:"items"`
	}{items})
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	sil, ok := s.find(w, r, p)
	if ok {
		httperr.WriteJSON(w, http.StatusOK, viewOf(sil, s.opts.Now()))
	}
}

func (s *Service) expire(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	sil, ok := s.find(w, r, p)
	if !ok {
		return
	}
	if err := mayCreate(p, Matchers(sil), sil.GetForced(), s.opts.Known()); err != nil {
		httperr.Write(w, http.StatusForbidden, "forbidden", err.Error(), nil)
		return
	}
	now := s.opts.Now()
	if State(sil, now) == "expired" {
		httperr.Write(w, http.StatusConflict, "expired", fmt.Sprintf("silence %s ended at %s", sil.GetId(), sil.GetEndsAt().AsTime().Format(time.RFC3339)), nil)
		return
	}
	next := proto.CloneOf(sil)
	next.EndsAt, next.UpdatedAt, next.ExpiredBy, next.Version = timestamppb.New(now), timestamppb.New(now), p.Subject, sil.GetVersion()+1
	if next.GetStartsAt().AsTime().After(now) {
		next.StartsAt = timestamppb.New(now) // a pending one ends before it began
	}
	if err := s.record(r.Context(), next); err != nil {
		s.unavailable(w, err)
		return
	}
	s.changes.WithLabelValues("expired", fmt.Sprint(next.GetForced())).Inc()
	httperr.WriteJSON(w, http.StatusOK, viewOf(next, now))
}

// find answers 404 for a silence the caller may not see, as for one that
// does not exist.
func (s *Service) find(w http.ResponseWriter, r *http.Request, p *auth.Principal) (*cityhubv1.Silence, bool) {
	id := r.PathValue("id")
	sil, err := s.opts.Store.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) || (err == nil && !maySee(p, sil, s.opts.Known())) {
		httperr.Write(w, http.StatusNotFound, "not_found", fmt.Sprintf("no silence %q", clip(id)), nil)
		return nil, false
	}
	if err != nil {
		s.unavailable(w, err)
		return nil, false
	}
	return sil, true
}

// record writes sil to the record on Kafka, acknowledged, then to the
// state in Redis: a silence the record has is never lost, as Rebuild
// restores it.
func (s *Service) record(ctx context.Context, sil *cityhubv1.Silence) error {
	m, err := stream.Marshal(s.opts.Topic, sil.GetId(), sil)
	if err != nil {
		return err
	}
	if err := s.opts.Writer.Write(ctx, m); err != nil {
		return fmt.Errorf("record silence %s: %w", sil.GetId(), err)
	}
	if _, err := s.opts.Store.Put(ctx, sil); err != nil {
		return err
	}
	if s.opts.Changed != nil {
		s.opts.Changed(ctx)
	}
	return nil
}

func (s *Service) unavailable(w http.ResponseWriter, err error) {
	s.log.Warn("silences unavailable", "err", err)
	httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "silences cannot be read or written now; try again", nil)
}

// decode reads a JSON body of at most MaxBodyBytes with no unknown fields,
// answering 413 or 400 itself when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httperr.Write(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is over %d bytes", MaxBodyBytes), nil)
		return false
	case err != nil:
		httperr.Write(w, http.StatusBadRequest, "invalid_json", "the body is not a silence: "+strings.TrimPrefix(err.Error(), "json: "), nil)
		return false
	}
	return true
}

func matchersProto(m rulepack.Matchers) []*cityhubv1.Matcher {
	var out []*cityhubv1.Matcher
	for name, values := range m {
		out = append(out, &cityhubv1.Matcher{Name: name, Values: values})
	}
	return out
}

// newID returns a silence id: "S-" and 16 hex digits, upper case, so that
// it never equals a pack silence's name, which is lower case.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return "S-" + strings.ToUpper(hex.EncodeToString(b[:]))
}
