package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// readAction is what a refused read of a case, or of one of its
// sub-resources, is recorded and counted as.
const readAction = "read"

// auditActions wraps the action endpoint (outside its authentication, so
// that it also sees the refusals of the role check) and records every action
// refused for the caller's role or scope (authz_fail):
//
//   - 403: the role may not take the action, or the department may not act
//     for the part it named;
//   - 404 on a case that exists: the case is outside what the caller may see,
//     and it is told the case does not exist, but the attempt is kept.
//
// An attempt is kept beside the case (casestore.RecordDenial) and counted in
// cityhub_dispatch_authz_failures_total{action}; the case's version and
// history do not move. Nothing is recorded for a caller without a valid
// token (401), nor for a case id that names no case.
//
// The body is teed as the handler reads it, so a normal request costs one
// copy of its body and nothing else; only a refusal costs a token check and
// a Redis call.
func (s *Service) auditActions(next http.Handler) http.Handler { return s.audit(next, true) }

// auditReads wraps a read of one case or of its sub-resources as
// auditActions wraps the actions: a read refused with 403, or with 404 on a
// case that exists, is recorded as the action "read". Probing which cases
// exist outside one's scope is what such a 404 hides, so it is kept.
func (s *Service) auditReads(next http.Handler) http.Handler { return s.audit(next, false) }

func (s *Service) audit(next http.Handler, action bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body *teeBody
		if action {
			body = &teeBody{r: r.Body}
			r.Body = body
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusForbidden && rec.status != http.StatusNotFound {
			return
		}
		tok, ok := auth.BearerToken(r)
		if !ok {
			return
		}
		p, err := s.opts.Verifier.Verify(tok)
		if err != nil {
			return
		}
		d := casestore.Denial{
			At:         s.opts.Now(),
			Actor:      p.Subject,
			Role:       string(p.Role),
			Department: p.Dept,
			Action:     readAction,
			Reason:     rec.message(),
			Status:     rec.status,
		}
		kind := readAction
		if action {
			body.drain() // the role check refuses before the handler reads
			var req struct {
				Action     string `json:"action"`
				Department string `json:"department"`
			}
			_ = json.Unmarshal(body.buf.Bytes(), &req) // a malformed body still names a caller and a case
			d.Action, d.Part = req.Action, req.Department
			// Only the workflow's actions are counters of their own: a
			// caller may send any name, and every kind is kept for good.
			kind = req.Action
			if !lifecycle.Known(lifecycle.Action(kind)) {
				kind = casestore.OtherKind
			}
		}
		if rec.status == http.StatusNotFound {
			d.Reason = "case outside the caller's scope"
		}
		err = s.store.RecordDenial(r.Context(), r.PathValue("id"), d, kind)
		if errors.Is(err, casestore.ErrNotFound) && rec.status == http.StatusNotFound {
			return // no such case: not a refusal
		}
		s.metrics.authzFailures.WithLabelValues(kind).Inc()
		if err != nil && !errors.Is(err, casestore.ErrNotFound) {
			s.log.Warn("recording a refused request failed", "err", err)
		}
	})
}

// teeBody keeps a copy of the first MaxBodyBytes+1 bytes read from a body.
type teeBody struct {
	r   io.ReadCloser
	buf bytes.Buffer
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if room := MaxBodyBytes + 1 - t.buf.Len(); room > 0 {
		t.buf.Write(p[:min(n, room)])
	}
	return n, err
}

// drain reads what the handler left unread, up to the same bound.
func (t *teeBody) drain() {
	if room := MaxBodyBytes + 1 - t.buf.Len(); room > 0 {
		_, _ = io.Copy(&t.buf, io.LimitReader(t.r, int64(room)))
	}
}

func (t *teeBody) Close() error { return t.r.Close() }

// statusRecorder notes the status of a response and the start of an error
// body, for the reason of a refusal.
type statusRecorder struct {
	http.ResponseWriter
	status int
	head   []byte
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.status >= 400 && len(s.head) < 4096 {
		s.head = append(s.head, b[:min(len(b), 4096-len(s.head))]...)
	}
	return s.ResponseWriter.Write(b)
}

// message is the error message of the recorded body.
func (s *statusRecorder) message() string {
	var b httperr.Body
	if json.Unmarshal(s.head, &b) != nil {
		return http.StatusText(s.status)
	}
	return b.Error.Message
}

// denials serves GET /v1/cases/{id}/denials to commanders: what the case
// keeps of the refusals on it (casestore.DenialLog), newest first.
func (s *Service) denials(w http.ResponseWriter, r *http.Request) {
	log, err := s.cases.Denials(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	httperr.WriteJSON(w, http.StatusOK, log)
}
