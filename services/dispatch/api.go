package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
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
// Each handler decodes the request, calls the case service (package
// cases), which decides everything, and answers what it returns; an error
// is answered by its kind (writeError). A case outside the caller's scope
// answers 404, as if it did not exist. Requests on one case refused with
// 403, or 404 on a case that exists, are recorded beside the case
// (denials.go).
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

// caseAnswer is a case as the API answers for one caller: the case, and
// what that caller may do with it now.
type caseAnswer struct {
	view.Case
	// AllowedActions come from the state machine's table (lifecycle.Allowed)
	// for this caller; a console offers exactly these.
	AllowedActions []lifecycle.Option `json:"allowed_actions"`
}

// answerOf is the JSON of c, with its history when c holds one.
func answerOf(c cases.Case) caseAnswer {
	a := caseAnswer{Case: view.FromCase(c.Case), AllowedActions: c.Allowed}
	if c.History != nil {
		a.History = make([]view.AuditEntry, len(c.History))
		for i, e := range c.History {
			a.History[i] = view.FromAudit(e)
		}
	}
	return a
}

// The request bodies, as the OpenAPI document names them.
type (
	// ActionRequest is the body of POST /v1/cases/{id}/actions.
	ActionRequest = cases.ActRequest
	// CreateRequest is the body of POST /v1/cases.
	CreateRequest = cases.CreateRequest
	// SlaBody gives deadlines as Go durations ("10m", "2h").
	SlaBody = cases.SLA
)

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	req, err := parseList(r.URL.RawQuery)
	if err != nil {
		writeParamError(w, err)
		return
	}
	page, err := s.cases.List(r.Context(), principal(r), req)
	if err != nil {
		s.writeQueryError(w, err)
		return
	}
	resp := listResponse{Items: make([]view.Case, 0, len(page.Cases)), NextCursor: page.NextCursor}
	for _, c := range page.Cases {
		resp.Items = append(resp.Items, view.FromCase(c))
	}
	httperr.WriteJSON(w, http.StatusOK, resp)
}

// paramError is a query parameter refused, by its name and why.
type paramError struct{ param, msg string }

func (e *paramError) Error() string { return "query parameter " + e.param + ": " + e.msg }

var listParams = []string{"status", "department", "district", "arbitration", "limit", "cursor"}

// parseList decodes the query of GET /v1/cases; what it names is checked
// by cases.Service.List.
func parseList(rawQuery string) (cases.ListRequest, error) {
	var req cases.ListRequest
	q, err := parseQuery(rawQuery, listParams)
	if err != nil {
		return req, err
	}
	if v := q.Get("status"); v != "" {
		if v == "open" {
			req.Open = true
		} else {
			st, err := cityhubv1.ParseCaseStatus(v)
			if err != nil {
				return req, &paramError{"status", err.Error() + " or open"}
			}
			req.Status = st
		}
	}
	req.Department, req.District = q.Get("department"), q.Get("district")
	switch v := q.Get("arbitration"); v {
	case "", "false":
	case "true":
		req.Arbitration = true
	default:
		return req, &paramError{"arbitration", "want true or false"}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return req, &paramError{"limit", fmt.Sprintf("want a whole number from 1 to %d", casestore.MaxLimit)}
		}
		req.Limit = n
	}
	req.Cursor = q.Get("cursor")
	return req, nil
}

// parseQuery parses a query string that may hold each of params once.
func parseQuery(rawQuery string, params []string) (url.Values, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, malformedQueryError{err}
	}
	for k, v := range q {
		if !slices.Contains(params, k) {
			return nil, &paramError{k, "unknown; want one of " + strings.Join(params, ", ")}
		}
		if len(v) > 1 {
			return nil, &paramError{k, "given more than once"}
		}
	}
	return q, nil
}

// malformedQueryError is a query string that does not parse at all.
type malformedQueryError struct{ err error }

func (e malformedQueryError) Error() string { return "malformed query string: " + e.err.Error() }

// writeParamError answers a query that parseQuery or a parser of its
// values refused.
func writeParamError(w http.ResponseWriter, err error) {
	var pe *paramError
	if errors.As(err, &pe) {
		httperr.Write(w, http.StatusBadRequest, "invalid_parameter", err.Error(), map[string]string{"parameter": pe.param})
		return
	}
	httperr.Write(w, http.StatusBadRequest, "invalid_parameter", err.Error(), nil)
}

// writeQueryError answers an error of a read the query string asked for:
// the invalid field is a query parameter.
func (s *Service) writeQueryError(w http.ResponseWriter, err error) {
	var ie *cases.InvalidError
	if errors.As(err, &ie) && ie.Field != "" {
		writeParamError(w, &paramError{ie.Field, ie.Reason})
		return
	}
	s.writeError(w, err)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	c, err := s.cases.Get(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	httperr.WriteJSON(w, http.StatusOK, answerOf(c))
}

func (s *Service) act(w http.ResponseWriter, r *http.Request) {
	var body ActionRequest
	if err := decodeBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), &body); err != nil {
		badBody(w, err)
		return
	}
	c, err := s.cases.Act(r.Context(), principal(r), r.PathValue("id"), body)
	s.countAction(string(body.Action), err)
	if err != nil {
		s.writeError(w, err)
		return
	}
	httperr.WriteJSON(w, http.StatusOK, answerOf(c))
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	var body CreateRequest
	if err := decodeBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), &body); err != nil {
		badBody(w, err)
		return
	}
	c, created, err := s.cases.Create(r.Context(), principal(r), body)
	s.countAction(string(lifecycle.Create), err)
	if err != nil {
		s.writeError(w, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	httperr.WriteJSON(w, status, answerOf(c))
}

// errorAnswer is how the API answers an error of the case service: the
// status and the code of the error body.
func errorAnswer(err error) (status int, code string) {
	var tooMany *cases.TooManyError
	switch {
	case errors.Is(err, cases.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.As(err, &tooMany):
		return http.StatusBadRequest, "range_too_large"
	case errors.Is(err, cases.ErrInvalid):
		return http.StatusBadRequest, "invalid_request"
	case errors.Is(err, cases.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, cases.ErrConflict):
		return http.StatusConflict, "version_conflict"
	case errors.Is(err, cases.ErrTransition):
		return http.StatusConflict, "forbidden_transition"
	}
	return http.StatusInternalServerError, "internal"
}

// writeError answers an error of the case service:
//
//	ErrNotFound                 404 not_found ("no such case")
//	*InvalidError               400 invalid_request, details {"field"} when one is named
//	*TooManyError               400 range_too_large, details {"cases", "max"}
//	*ForbiddenError             403 forbidden
//	*ConflictError              409 version_conflict
//	ErrTransition               409 forbidden_transition
//	anything else (*OpError)    500 internal ("OP failed"), logged
func (s *Service) writeError(w http.ResponseWriter, err error) {
	status, code := errorAnswer(err)
	var (
		ie      *cases.InvalidError
		tooMany *cases.TooManyError
		details any
	)
	switch {
	case status == http.StatusNotFound:
		notFound(w)
		return
	case status == http.StatusInternalServerError:
		what := "change the case" // the service wraps its failures in *OpError; be safe
		var op *cases.OpError
		if errors.As(err, &op) {
			what = op.Op
		}
		s.internal(w, what, err)
		return
	case errors.As(err, &tooMany):
		details = map[string]any{"cases": tooMany.Cases, "max": tooMany.Max}
	case errors.As(err, &ie) && ie.Field != "":
		details = map[string]string{"field": ie.Field}
	}
	httperr.Write(w, status, code, err.Error(), details)
}

// countAction counts the answer to an action or a creation by its result.
func (s *Service) countAction(action string, err error) {
	if !lifecycle.Known(lifecycle.Action(action)) {
		action = "other"
	}
	result := "ok"
	if err != nil {
		switch status, code := errorAnswer(err); status {
		case http.StatusNotFound:
			result = "not_found"
		case http.StatusInternalServerError:
			result = "error"
		default:
			result = code
		}
	}
	s.metrics.actions.WithLabelValues(action, result).Inc()
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

// badBody answers a body decodeBody refused.
func badBody(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		httperr.Write(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", MaxBodyBytes), nil)
		return
	}
	httperr.Write(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
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
