package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/httperr"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/view"
)

// MaxBodyBytes bounds the body of every request to the API.
const MaxBodyBytes = 64 << 10

// Routes registers the dispatcher API on mux:
//
//	GET  /v1/cases               list the cases in the caller's scope
//	GET  /v1/cases/{id}          one case with its history
//	POST /v1/cases               open a case by hand (commander, dispatcher)
//	POST /v1/cases/{id}/actions  move a case through the workflow
//	GET  /v1/cases/{id}/denials  requests refused on a case (commander; denials.go)
//	GET  /v1/stats               evaluation figures per department (stats.go)
//	GET  /v1/openapi.yaml        the API's OpenAPI document (openapi.go)
//
// A case outside the caller's scope answers 404, as if it did not exist.
// Requests on one case refused with 403, or 404 on a case that exists, are
// recorded beside the case (denials.go).
func (s *Service) Routes(mux *http.ServeMux) {
	readers := s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment, auth.RoleViewer)
	mux.Handle("GET /v1/cases", readers(http.HandlerFunc(s.list)))
	mux.Handle("GET /v1/cases/{id}", s.auditReads(readers(http.HandlerFunc(s.get))))
	mux.Handle("POST /v1/cases", s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher)(http.HandlerFunc(s.create)))
	mux.Handle("POST /v1/cases/{id}/actions", s.auditActions(s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment)(http.HandlerFunc(s.act))))
	mux.Handle("GET /v1/cases/{id}/denials", s.auditReads(s.opts.Verifier.Require(auth.RoleCommander)(http.HandlerFunc(s.denials))))
	mux.Handle("GET /v1/stats", readers(http.HandlerFunc(s.stats)))
	mux.Handle("GET /v1/openapi.yaml", readers(http.HandlerFunc(serveOpenAPI)))
}

// listResponse is the body of GET /v1/cases.
type listResponse struct {
	Items      []view.Case `json:"items"`
	NextCursor string      `json:"next_cursor"`
}

// paramError is a bad query parameter.
type paramError struct{ param, msg string }

func (e *paramError) Error() string { return "query parameter " + e.param + ": " + e.msg }

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "invalid_parameter", "malformed query string: "+err.Error(), nil)
		return
	}
	f, err := s.parseFilter(q)
	if err != nil {
		var pe *paramError
		errors.As(err, &pe)
		httperr.Write(w, http.StatusBadRequest, "invalid_parameter", err.Error(), map[string]string{"parameter": pe.param})
		return
	}
	resp := listResponse{Items: []view.Case{}}
	if !narrow(&f, p) {
		httperr.WriteJSON(w, http.StatusOK, resp)
		return
	}
	page, err := s.store.List(r.Context(), f)
	if errors.Is(err, casestore.ErrBadCursor) {
		httperr.Write(w, http.StatusBadRequest, "invalid_parameter", "query parameter cursor: not a cursor this API returned", map[string]string{"parameter": "cursor"})
		return
	}
	if err != nil {
		s.internal(w, "list cases", err)
		return
	}
	for _, c := range page.Cases {
		if visible(p, c) {
			resp.Items = append(resp.Items, view.FromCase(c))
		}
	}
	resp.NextCursor = page.NextCursor
	httperr.WriteJSON(w, http.StatusOK, resp)
}

var listParams = []string{"status", "department", "district", "arbitration", "limit", "cursor"}

func (s *Service) parseFilter(q url.Values) (casestore.Filter, error) {
	var f casestore.Filter
	for k, v := range q {
		if !slices.Contains(listParams, k) {
			return f, &paramError{k, "unknown; want one of " + strings.Join(listParams, ", ")}
		}
		if len(v) > 1 {
			return f, &paramError{k, "given more than once"}
		}
	}
	if v := q.Get("status"); v != "" {
		if v == "open" {
			f.Open = true
		} else {
			st, err := cityhubv1.ParseCaseStatus(v)
			if err != nil {
				return f, &paramError{"status", err.Error() + " or open"}
			}
			f.Status = st
		}
	}
	if v := q.Get("department"); v != "" {
		if _, ok := s.opts.Catalog.Department(v); !ok {
			return f, &paramError{"department", fmt.Sprintf("unknown department %q", v)}
		}
		f.Department = v
	}
	if v := q.Get("district"); v != "" {
		if _, ok := s.opts.Catalog.District(v); !ok {
			return f, &paramError{"district", fmt.Sprintf("unknown district %q", v)}
		}
		f.Districts = []string{v}
	}
	switch v := q.Get("arbitration"); v {
	case "", "false":
	case "true":
		f.Arbitration = true
	default:
		return f, &paramError{"arbitration", "want true or false"}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > casestore.MaxLimit {
			return f, &paramError{"limit", fmt.Sprintf("want a whole number from 1 to %d", casestore.MaxLimit)}
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if len(v) > 1024 {
			return f, &paramError{"cursor", "too long"}
		}
		f.Cursor = v
	}
	return f, nil
}

// narrow confines f to what p may see; false when that is nothing.
func narrow(f *casestore.Filter, p *auth.Principal) bool {
	switch p.Role {
	case auth.RoleCommander:
		return true
	case auth.RoleDepartment:
		if f.Department != "" && f.Department != p.Dept {
			return false
		}
		f.Department = p.Dept
		return true
	case auth.RoleDispatcher, auth.RoleViewer:
		if len(p.Districts) == 0 {
			return true
		}
		if f.Districts == nil {
			f.Districts = slices.Clone(p.Districts)
			return true
		}
		f.Districts = slices.DeleteFunc(f.Districts, func(d string) bool { return !p.SeesDistrict(d) })
		return len(f.Districts) > 0
	}
	return false
}

// visible reports whether p may know that c exists.
func visible(p *auth.Principal, c *cityhubv1.Case) bool {
	switch p.Role {
	case auth.RoleCommander:
		return true
	case auth.RoleDispatcher, auth.RoleViewer:
		return p.SeesDistrict(c.GetDistrict())
	case auth.RoleDepartment:
		return involves(c, p.Dept)
	}
	return false
}

// involves reports whether dept leads or assists c.
func involves(c *cityhubv1.Case, dept string) bool {
	if dept == "" {
		return false
	}
	if c.GetLead() == dept || slices.Contains(c.GetAssist(), dept) {
		return true
	}
	return slices.ContainsFunc(c.GetParts(), func(p *cityhubv1.Part) bool { return p.GetDepartment() == dept })
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	c, hist, err := s.store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, casestore.ErrNotFound) || (err == nil && !visible(p, c)) {
		notFound(w)
		return
	}
	if err != nil {
		s.internal(w, "read case", err)
		return
	}
	v := s.answer(c, p)
	v.History = make([]view.AuditEntry, len(hist))
	for i, e := range hist {
		v.History[i] = view.FromAudit(e)
	}
	httperr.WriteJSON(w, http.StatusOK, v)
}

// caseAnswer is a case as the API answers for one caller: the case, and
// what that caller may do with it now.
type caseAnswer struct {
	view.Case
	// AllowedActions come from the state machine's table (lifecycle.Allowed)
	// for this caller; a console offers exactly these.
	AllowedActions []lifecycle.Option `json:"allowed_actions"`
}

func (s *Service) answer(c *cityhubv1.Case, p *auth.Principal) caseAnswer {
	return caseAnswer{Case: view.FromCase(c), AllowedActions: lifecycle.Allowed(c, actor(p))}
}

func notFound(w http.ResponseWriter) {
	httperr.Write(w, http.StatusNotFound, "not_found", "no such case", nil)
}

func (s *Service) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	httperr.Write(w, http.StatusInternalServerError, "internal", what+" failed", nil)
}

func principal(r *http.Request) *auth.Principal {
	p, ok := auth.FromContext(r.Context())
	if !ok { // Require always sets one; be safe rather than crash
		return &auth.Principal{Role: auth.RoleSource}
	}
	return p
}

func actor(p *auth.Principal) lifecycle.Actor {
	return lifecycle.Actor{Subject: p.Subject, Role: p.Role, Dept: p.Dept}
}

// ActionRequest is the body of POST /v1/cases/{id}/actions.
type ActionRequest struct {
	Action          string `json:"action"`
	Department      string `json:"department,omitempty"`
	Note            string `json:"note,omitempty"`
	ExpectedVersion int64  `json:"expected_version"`
	RequestID       string `json:"request_id"`
	// Pass is the outcome of verify.
	Pass *bool `json:"pass,omitempty"`
	// Lead, Assist, CaseClass and Sla say where dispatch sends the case and
	// its deadlines: the class's (by default the event type's class), with
	// sla's natural-time durations where given.
	Lead      string   `json:"lead,omitempty"`
	Assist    []string `json:"assist,omitempty"`
	CaseClass string   `json:"case_class,omitempty"`
	Sla       *SlaBody `json:"sla,omitempty"`
	// Into is the case merge makes this one a duplicate of.
	Into string `json:"into,omitempty"`
	// ExtendBy (a span: "4h", "2wh", "1wd") or Until (RFC 3339) is what
	// request_extension asks for.
	ExtendBy string `json:"extend_by,omitempty"`
	Until    string `json:"until,omitempty"`
}

// SlaBody gives deadlines as Go durations ("10m", "2h").
type SlaBody struct {
	Accept string `json:"accept,omitempty"`
	Handle string `json:"handle,omitempty"`
}

// CreateRequest is the body of POST /v1/cases.
type CreateRequest struct {
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Severity    string         `json:"severity,omitempty"`
	District    string         `json:"district"`
	Location    *view.Location `json:"location,omitempty"`
	EventType   string         `json:"event_type,omitempty"`
	Lead        string         `json:"lead,omitempty"`
	Assist      []string       `json:"assist,omitempty"`
	CaseClass   string         `json:"case_class,omitempty"`
	Sla         *SlaBody       `json:"sla,omitempty"`
	RequestID   string         `json:"request_id"`
}

// Limits of request fields.
const (
	maxNoteBytes  = 4 << 10
	maxTitleBytes = 512
	maxAssist     = 16
)

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// fieldError is a bad field of a request body.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// errTooLarge is returned by decodeBody for a body over MaxBodyBytes.
var errTooLarge = errors.New("request body too large")

// decodeBody reads one JSON object into v, refusing unknown fields and
// trailing data.
func decodeBody(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return errors.New("malformed JSON body: data after the object")
	}
	return nil
}

// parseAction decodes and checks an action body.
func parseAction(r io.Reader) (ActionRequest, lifecycle.Request, error) {
	var body ActionRequest
	if err := decodeBody(r, &body); err != nil {
		return body, lifecycle.Request{}, err
	}
	req := lifecycle.Request{
		Action:     lifecycle.Action(body.Action),
		Department: body.Department,
		Note:       body.Note,
		Pass:       body.Pass,
	}
	switch {
	case !lifecycle.Known(req.Action) || req.Action == lifecycle.Create:
		return body, req, &fieldError{"action", fmt.Sprintf("unknown action %q", body.Action)}
	case body.ExpectedVersion < 1:
		return body, req, &fieldError{"expected_version", "required: the version of the case you saw"}
	case !validRequestID(body.RequestID):
		return body, req, &fieldError{"request_id", requestIDRule}
	case len(body.Note) > maxNoteBytes:
		return body, req, &fieldError{"note", fmt.Sprintf("longer than %d bytes", maxNoteBytes)}
	case len(body.Assist) > maxAssist:
		return body, req, &fieldError{"assist", fmt.Sprintf("more than %d departments", maxAssist)}
	}
	if (body.Lead != "" || len(body.Assist) > 0 || body.Sla != nil || body.CaseClass != "") && req.Action != lifecycle.Dispatch {
		return body, req, &fieldError{"lead", "only dispatch takes lead, assist, case_class and sla"}
	}
	if body.Into != "" && req.Action != lifecycle.Merge {
		return body, req, &fieldError{"into", "only merge takes into"}
	}
	if (body.ExtendBy != "" || body.Until != "") && req.Action != lifecycle.RequestExtension {
		return body, req, &fieldError{"extend_by", "only request_extension takes extend_by and until"}
	}
	switch req.Action {
	case lifecycle.Dispatch:
		sla, err := parseSla(body.Sla)
		if err != nil {
			return body, req, err
		}
		if body.CaseClass != "" && !classRE.MatchString(body.CaseClass) {
			return body, req, &fieldError{"case_class", "want a class name of the catalog"}
		}
		req.Dispatch = &cityhubv1.DispatchSpec{Lead: body.Lead, Assist: body.Assist, Sla: sla, CaseClass: body.CaseClass}
	case lifecycle.Merge:
		if _, ok := casestore.DistrictOf(body.Into); !ok {
			return body, req, &fieldError{"into", "required: the id of the case to merge into"}
		}
		req.Into = body.Into
	case lifecycle.RequestExtension:
		if (body.ExtendBy == "") == (body.Until == "") {
			return body, req, &fieldError{"extend_by", "give extend_by or until, one of the two"}
		}
		if body.ExtendBy != "" {
			// The handler resolves the span against the calendar's working
			// day (extendBy); here only its syntax is checked.
			if _, err := catalog.ParseSpan(body.ExtendBy); err != nil {
				return body, req, &fieldError{"extend_by", err.Error()}
			}
		}
		if body.Until != "" {
			u, err := time.Parse(time.RFC3339, body.Until)
			if err != nil {
				return body, req, &fieldError{"until", "want an RFC 3339 time such as 2025-07-01T17:30:00+08:00"}
			}
			req.Until = u
		}
	}
	return body, req, nil
}

var classRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// systemRequestPrefixes begin the request ids of the changes the hub makes
// itself. A client may not use them: an id a client took first would
// answer the hub's own change with the client's, and the case opened from
// an alert, or a deadline's warning or escalation, would never happen.
var systemRequestPrefixes = []string{alertRequestPrefix, lifecycle.TimerRequestPrefix}

// requestIDRule says what validRequestID accepts.
var requestIDRule = "required: 1 to 128 of A-Z a-z 0-9 . _ : -, not starting with " + strings.Join(systemRequestPrefixes, " or ")

func validRequestID(id string) bool {
	return requestIDRE.MatchString(id) && !slices.ContainsFunc(systemRequestPrefixes, func(p string) bool { return strings.HasPrefix(id, p) })
}

func parseSla(b *SlaBody) (*cityhubv1.Sla, error) {
	if b == nil {
		return nil, nil
	}
	sla := &cityhubv1.Sla{}
	for _, f := range []struct {
		name, v string
		dst     **durationpb.Duration
	}{{"sla.accept", b.Accept, &sla.Accept}, {"sla.handle", b.Handle, &sla.Handle}} {
		if f.v == "" {
			continue
		}
		d, err := time.ParseDuration(f.v)
		if err != nil || d <= 0 || d > 366*24*time.Hour {
			return nil, &fieldError{f.name, "want a positive Go duration such as 30m or 2h, at most a year"}
		}
		*f.dst = durationpb.New(d)
	}
	return sla, nil
}

func (s *Service) act(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	id := r.PathValue("id")
	body, req, err := parseAction(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		badBody(w, err)
		return
	}
	c, err := s.caseFor(r.Context(), p, id)
	if errors.Is(err, casestore.ErrNotFound) {
		notFound(w)
		return
	}
	if err != nil {
		s.internal(w, "read case", err)
		return
	}
	if err := s.complete(&req, body, c); err != nil {
		badBody(w, err)
		return
	}
	if req.Action == lifecycle.Merge {
		change, err := s.merge(r.Context(), p, id, body.ExpectedVersion, body.RequestID, req)
		if err != nil {
			s.actionFailed(w, string(req.Action), err)
			return
		}
		s.metrics.actions.WithLabelValues(string(req.Action), "ok").Inc()
		httperr.WriteJSON(w, http.StatusOK, s.answer(change.GetCase(), p))
		return
	}
	// The scope is checked again on the very case the change is computed
	// from: when the write succeeds, that was the case as it is.
	change, err := s.store.Update(r.Context(), id, body.ExpectedVersion, body.RequestID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		if !visible(p, c) {
			return nil, errOutOfScope
		}
		return lifecycle.Apply(c, req, actor(p), s.opts.Now())
	})
	if err != nil {
		err = s.hideMoved(r.Context(), p, id, err)
		s.actionFailed(w, string(req.Action), err)
		return
	}
	if err := s.publishChange(r.Context(), change); err != nil {
		s.internal(w, "publish the change", err)
		return
	}
	s.metrics.actions.WithLabelValues(string(req.Action), "ok").Inc()
	httperr.WriteJSON(w, http.StatusOK, s.answer(change.GetCase(), p))
}

// errOutOfScope refuses an action on a case the caller may not see; it is
// answered as if the case did not exist.
var errOutOfScope = errors.New("case outside the caller's scope")

// caseFor returns case id for an action by p, who must be able to see it
// (casestore.ErrNotFound otherwise). It is the copy the store holds when
// there is one, which makes the action's Update one round trip (the update
// script checks that the copy is current); a refusal is decided on the
// case as Redis holds it, never on a copy that may be stale.
func (s *Service) caseFor(ctx context.Context, p *auth.Principal, id string) (*cityhubv1.Case, error) {
	c, err := s.store.Recent(ctx, id)
	if err != nil || visible(p, c) {
		return c, err // a case not found was looked for in Redis
	}
	if c, err = s.store.Current(ctx, id); err != nil {
		return nil, err
	}
	if !visible(p, c) {
		return nil, casestore.ErrNotFound
	}
	return c, nil
}

// complete fills in what a parsed request needs from the catalog and the
// calendar: a dispatch's deadlines, an extension's span.
func (s *Service) complete(req *lifecycle.Request, body ActionRequest, c *cityhubv1.Case) error {
	req.Calendar = s.cal
	switch req.Action {
	case lifecycle.Dispatch:
		if err := s.checkDepartments(req.Dispatch.GetLead(), req.Dispatch.GetAssist()); err != nil {
			return err
		}
		spec, err := s.resolveSpec(req.Dispatch, c.GetEventType())
		if err != nil {
			return &fieldError{"case_class", err.Error()}
		}
		req.Dispatch = spec
	case lifecycle.RequestExtension:
		if body.ExtendBy != "" {
			sp, err := catalog.ParseSpan(body.ExtendBy)
			if err != nil {
				return &fieldError{"extend_by", err.Error()}
			}
			req.ExtendBy, req.ExtendWorking = sp.Resolve(s.cal.DayLength()), sp.Working()
		}
	}
	return nil
}

// publishChange puts a change on the cases topic. A change stored but not
// published is published again when its request is retried: the request log
// answers with the same change.
func (s *Service) publishChange(ctx context.Context, change *cityhubv1.CaseChange) error {
	m, err := stream.Marshal(s.opts.Topics.Cases, change.GetCase().GetDistrict(), change)
	if err != nil {
		return err
	}
	if err := s.opts.Writer.Write(ctx, m); err != nil {
		return err
	}
	s.metrics.changes.WithLabelValues(actionName(change)).Inc()
	return nil
}

func actionName(change *cityhubv1.CaseChange) string {
	a, _, _ := strings.Cut(change.GetChange().GetAction(), ":")
	if !lifecycle.Known(lifecycle.Action(a)) {
		return "other"
	}
	return a
}

func (s *Service) actionFailed(w http.ResponseWriter, action string, err error) {
	if !lifecycle.Known(lifecycle.Action(action)) {
		action = "other"
	}
	var status int
	var code string
	var details any
	switch {
	case errors.Is(err, errOutOfScope):
		s.metrics.actions.WithLabelValues(action, "not_found").Inc()
		notFound(w)
		return
	case errors.Is(err, errNoTarget):
		status, code = http.StatusBadRequest, "invalid_request"
		err, details = &fieldError{"into", "no such case"}, map[string]string{"field": "into"}
	case errors.Is(err, casestore.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, casestore.ErrConflict):
		status, code = http.StatusConflict, "version_conflict"
	case errors.Is(err, lifecycle.ErrForbiddenTransition):
		status, code = http.StatusConflict, "forbidden_transition"
	case errors.Is(err, lifecycle.ErrForbidden):
		status, code = http.StatusForbidden, "forbidden"
	case errors.Is(err, lifecycle.ErrInvalid), errors.Is(err, casestore.ErrInvalid):
		status, code = http.StatusBadRequest, "invalid_request"
	default:
		s.metrics.actions.WithLabelValues(action, "error").Inc()
		s.internal(w, "change the case", err)
		return
	}
	s.metrics.actions.WithLabelValues(action, code).Inc()
	httperr.Write(w, status, code, err.Error(), details)
}

func badBody(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		httperr.Write(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", MaxBodyBytes), nil)
		return
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		httperr.Write(w, http.StatusBadRequest, "invalid_request", err.Error(), map[string]string{"field": fe.field})
		return
	}
	httperr.Write(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
}

func (s *Service) checkDepartments(lead string, assist []string) error {
	if lead == "" {
		return &fieldError{"lead", "required"}
	}
	if _, ok := s.opts.Catalog.Department(lead); !ok {
		return &fieldError{"lead", fmt.Sprintf("unknown department %q", lead)}
	}
	for _, a := range assist {
		if _, ok := s.opts.Catalog.Department(a); !ok {
			return &fieldError{"assist", fmt.Sprintf("unknown department %q", a)}
		}
	}
	return nil
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var body CreateRequest
	if err := decodeBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), &body); err != nil {
		badBody(w, err)
		return
	}
	c, spec, err := s.parseCreate(body)
	if err != nil {
		badBody(w, err)
		return
	}
	if !p.SeesDistrict(c.GetDistrict()) {
		httperr.Write(w, http.StatusForbidden, "forbidden", "district "+c.GetDistrict()+" is outside your scope", nil)
		return
	}
	entry, err := lifecycle.New(c, spec, actor(p), s.opts.Now(), s.cal)
	if err != nil {
		s.actionFailed(w, string(lifecycle.Create), err)
		return
	}
	entry.RequestId = body.RequestID
	change, created, err := s.store.Create(r.Context(), c, entry)
	if err != nil {
		s.actionFailed(w, string(lifecycle.Create), err)
		return
	}
	if err := s.publishChange(r.Context(), change); err != nil {
		s.internal(w, "publish the change", err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	s.metrics.actions.WithLabelValues(string(lifecycle.Create), "ok").Inc()
	httperr.WriteJSON(w, status, s.answer(change.GetCase(), p))
}

func (s *Service) parseCreate(b CreateRequest) (*cityhubv1.Case, *cityhubv1.DispatchSpec, error) {
	switch {
	case strings.TrimSpace(b.Title) == "" || len(b.Title) > maxTitleBytes:
		return nil, nil, &fieldError{"title", fmt.Sprintf("required, at most %d bytes", maxTitleBytes)}
	case len(b.Description) > maxNoteBytes:
		return nil, nil, &fieldError{"description", fmt.Sprintf("longer than %d bytes", maxNoteBytes)}
	case !validRequestID(b.RequestID):
		return nil, nil, &fieldError{"request_id", requestIDRule}
	case len(b.Assist) > maxAssist:
		return nil, nil, &fieldError{"assist", fmt.Sprintf("more than %d departments", maxAssist)}
	}
	if _, ok := s.opts.Catalog.District(b.District); !ok || !casestore.ValidDistrict(b.District) {
		return nil, nil, &fieldError{"district", fmt.Sprintf("unknown district %q", b.District)}
	}
	c := &cityhubv1.Case{
		Id:          casestore.NewID(b.District, s.opts.Now()),
		Title:       b.Title,
		Description: b.Description,
		District:    b.District,
		EventType:   b.EventType,
		Origin:      casestore.OriginManual,
	}
	if b.Severity != "" {
		sev, err := cityhubv1.ParseSeverity(b.Severity)
		if err != nil {
			return nil, nil, &fieldError{"severity", err.Error()}
		}
		c.Severity = sev
	}
	if b.EventType != "" {
		if _, ok := s.opts.Catalog.EventType(b.EventType); !ok {
			return nil, nil, &fieldError{"event_type", fmt.Sprintf("unknown event type %q", b.EventType)}
		}
	}
	if l := b.Location; l != nil {
		if l.District != "" && l.District != b.District {
			return nil, nil, &fieldError{"location.district", "differs from district"}
		}
		c.Location = &cityhubv1.Location{Lon: l.Lon, Lat: l.Lat, District: b.District, Street: l.Street, Grid: l.Grid, Address: l.Address}
	}
	if b.Lead == "" {
		if len(b.Assist) > 0 || b.Sla != nil || b.CaseClass != "" {
			return nil, nil, &fieldError{"lead", "required with assist, case_class or sla"}
		}
		return c, nil, nil
	}
	if err := s.checkDepartments(b.Lead, b.Assist); err != nil {
		return nil, nil, err
	}
	sla, err := parseSla(b.Sla)
	if err != nil {
		return nil, nil, err
	}
	spec, err := s.resolveSpec(&cityhubv1.DispatchSpec{Lead: b.Lead, Assist: b.Assist, Sla: sla, CaseClass: b.CaseClass}, b.EventType)
	if err != nil {
		return nil, nil, &fieldError{"case_class", err.Error()}
	}
	return c, spec, nil
}
