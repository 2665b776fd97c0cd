package cases

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/scope"
)

// ActRequest asks for one action on a case. Its JSON form is the body the
// dispatcher API takes for an action, and an *InvalidError names its
// fields by their JSON names, so the two cannot drift apart.
type ActRequest struct {
	Action          lifecycle.Action `json:"action"`
	Department      string           `json:"department,omitempty"`
	Note            string           `json:"note,omitempty"`
	ExpectedVersion int64            `json:"expected_version"`
	RequestID       string           `json:"request_id"`
	// Pass is the outcome of verify.
	Pass *bool `json:"pass,omitempty"`
	// Lead, Assist, CaseClass and Sla say where dispatch sends the case and
	// its deadlines: the class's (by default the event type's class), with
	// sla's natural-time durations where given.
	Lead      string   `json:"lead,omitempty"`
	Assist    []string `json:"assist,omitempty"`
	CaseClass string   `json:"case_class,omitempty"`
	Sla       *SLA     `json:"sla,omitempty"`
	// Into is the case merge makes this one a duplicate of.
	Into string `json:"into,omitempty"`
	// ExtendBy (a span: "4h", "2wh", "1wd") or Until (RFC 3339) is what
	// request_extension asks for.
	ExtendBy string `json:"extend_by,omitempty"`
	Until    string `json:"until,omitempty"`
	// Via names the channel the request came through when it is not the
	// dispatcher API ("notify:sms" for a notification's acknowledgement
	// link): the audit entry records it (AuditEntry.via). It is no
	// part of the JSON form, so an API client cannot claim a channel.
	Via string `json:"-"`
}

// SLA gives deadlines as Go durations ("10m", "2h").
type SLA struct {
	Accept string `json:"accept,omitempty"`
	Handle string `json:"handle,omitempty"`
}

// Limits of request fields.
const (
	maxNoteBytes  = 4 << 10
	maxTitleBytes = 512
	maxAssist     = 16
)

var (
	requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	classRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// AlertRequestPrefix begins the request id of a case opened from an alert.
const AlertRequestPrefix = "alert:"

// systemRequestPrefixes begin the request ids of the changes the hub makes
// itself. A client may not use them: an id a client took first would
// answer the hub's own change with the client's, and the case opened from
// an alert, or a deadline's warning or escalation, would never happen.
var systemRequestPrefixes = []string{AlertRequestPrefix, lifecycle.TimerRequestPrefix}

// requestIDRule says what validRequestID accepts.
var requestIDRule = "required: 1 to 128 of A-Z a-z 0-9 . _ : -, not starting with " + strings.Join(systemRequestPrefixes, " or ")

func validRequestID(id string) bool {
	return requestIDRE.MatchString(id) && !slices.ContainsFunc(systemRequestPrefixes, func(p string) bool { return strings.HasPrefix(id, p) })
}

// Act takes the action r asks for on case id as p, stores and publishes the
// change, and returns the case as it is then. A request id that changed the
// case before gets that first answer again (and its change published
// again), whatever the case is now.
//
// The case's scope is checked on the very case the change is computed from,
// and a refusal is decided on the case as Redis holds it, never on a copy
// that may be stale. Act fails with ErrNotFound (no such case, or not one
// p may see), *InvalidError, *ForbiddenError, *ConflictError, ErrTransition,
// or an *OpError; after an *OpError, repeating the request finishes what
// it started.
func (s *Service) Act(ctx context.Context, p *auth.Principal, id string, r ActRequest) (Case, error) {
	req, err := parseAction(r)
	if err != nil {
		return Case{}, err
	}
	c, err := s.caseFor(ctx, p, id)
	if err != nil {
		return Case{}, refusal("read case", err)
	}
	if err := s.complete(&req, r, c); err != nil {
		return Case{}, err
	}
	if req.Action == lifecycle.Merge {
		change, err := s.merge(ctx, p, id, r, req)
		if err != nil {
			return Case{}, refusal("change the case", err)
		}
		return answer(change.GetCase(), p), nil
	}
	change, err := s.store.Update(ctx, id, r.ExpectedVersion, r.RequestID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		if !scope.Case(p, c) {
			return nil, errOutOfScope
		}
		e, err := lifecycle.Apply(c, req, actor(p), s.now())
		recordVia(e, r.Via)
		return e, err
	})
	if err != nil {
		return Case{}, refusal("change the case", s.conflict(ctx, p, id, err))
	}
	if err := s.publish(ctx, change); err != nil {
		return Case{}, err
	}
	return answer(change.GetCase(), p), nil
}

// parseAction checks r on its own, before any case or the catalog is
// consulted, and returns the state machine's request.
func parseAction(r ActRequest) (lifecycle.Request, error) {
	req := lifecycle.Request{
		Action:     r.Action,
		Department: r.Department,
		Note:       r.Note,
		Pass:       r.Pass,
	}
	switch {
	case !lifecycle.Known(req.Action) || req.Action == lifecycle.Create:
		return req, invalid("action", "unknown action %q", r.Action)
	case r.ExpectedVersion < 1:
		return req, invalid("expected_version", "required: the version of the case you saw")
	case !validRequestID(r.RequestID):
		return req, invalid("request_id", "%s", requestIDRule)
	case len(r.Note) > maxNoteBytes:
		return req, invalid("note", "longer than %d bytes", maxNoteBytes)
	case len(r.Assist) > maxAssist:
		return req, invalid("assist", "more than %d departments", maxAssist)
	}
	if (r.Lead != "" || len(r.Assist) > 0 || r.Sla != nil || r.CaseClass != "") && req.Action != lifecycle.Dispatch {
		return req, invalid("lead", "only dispatch takes lead, assist, case_class and sla")
	}
	if r.Into != "" && req.Action != lifecycle.Merge {
		return req, invalid("into", "only merge takes into")
	}
	if (r.ExtendBy != "" || r.Until != "") && req.Action != lifecycle.RequestExtension {
		return req, invalid("extend_by", "only request_extension takes extend_by and until")
	}
	switch req.Action {
	case lifecycle.Dispatch:
		sla, err := parseSLA(r.Sla)
		if err != nil {
			return req, err
		}
		if r.CaseClass != "" && !classRE.MatchString(r.CaseClass) {
			return req, invalid("case_class", "want a class name of the catalog")
		}
		req.Dispatch = &cityhubv1.DispatchSpec{Lead: r.Lead, Assist: r.Assist, Sla: sla, CaseClass: r.CaseClass}
	case lifecycle.Merge:
		if _, ok := casestore.DistrictOf(r.Into); !ok {
			return req, invalid("into", "required: the id of the case to merge into")
		}
		req.Into = r.Into
	case lifecycle.RequestExtension:
		if (r.ExtendBy == "") == (r.Until == "") {
			return req, invalid("extend_by", "give extend_by or until, one of the two")
		}
		if r.ExtendBy != "" {
			// complete resolves the span against the calendar's working
			// day; here only its syntax is checked.
			if _, err := catalog.ParseSpan(r.ExtendBy); err != nil {
				return req, invalid("extend_by", "%s", err.Error())
			}
		}
		if r.Until != "" {
			u, err := time.Parse(time.RFC3339, r.Until)
			if err != nil {
				return req, invalid("until", "want an RFC 3339 time such as 2025-07-01T17:30:00+08:00")
			}
			req.Until = u
		}
	}
	return req, checkVia(r.Via)
}

func parseSLA(b *SLA) (*cityhubv1.Sla, error) {
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
			return nil, invalid(f.name, "want a positive Go duration such as 30m or 2h, at most a year")
		}
		*f.dst = durationpb.New(d)
	}
	return sla, nil
}

// caseFor returns case id for an action by p, who must be able to see it
// (casestore.ErrNotFound otherwise). It is the copy the store holds when
// there is one, which makes the action's Update one round trip (the update
// script checks that the copy is current); a refusal is decided on the
// case as Redis holds it, never on a copy that may be stale.
func (s *Service) caseFor(ctx context.Context, p *auth.Principal, id string) (*cityhubv1.Case, error) {
	c, err := s.store.Recent(ctx, id)
	if err != nil || scope.Case(p, c) {
		return c, err // a case not found was looked for in Redis
	}
	if c, err = s.store.Current(ctx, id); err != nil {
		return nil, err
	}
	if !scope.Case(p, c) {
		return nil, casestore.ErrNotFound
	}
	return c, nil
}

// complete fills in what a parsed request needs from the catalog and the
// calendar: a dispatch's deadlines, an extension's span.
func (s *Service) complete(req *lifecycle.Request, r ActRequest, c *cityhubv1.Case) error {
	req.Calendar = s.cal
	switch req.Action {
	case lifecycle.Dispatch:
		if err := s.checkDepartments(req.Dispatch.GetLead(), req.Dispatch.GetAssist()); err != nil {
			return err
		}
		spec, err := s.ResolveSpec(req.Dispatch, c.GetEventType())
		if err != nil {
			return invalid("case_class", "%s", err.Error())
		}
		req.Dispatch = spec
	case lifecycle.RequestExtension:
		if r.ExtendBy != "" {
			sp, err := catalog.ParseSpan(r.ExtendBy)
			if err != nil {
				return invalid("extend_by", "%s", err.Error())
			}
			req.ExtendBy, req.ExtendWorking = sp.Resolve(s.cal.DayLength()), sp.Working()
		}
	}
	return nil
}

// conflict gives a conflict on case id the case as it is now, or turns it
// into errOutOfScope when p can no longer see the case: it moved on since
// the copy its scope was checked on, and a caller that may not see it is
// not told it exists. The conflict brought the case as it is now into the
// store, so this costs no round trip.
func (s *Service) conflict(ctx context.Context, p *auth.Principal, id string, err error) error {
	if !errors.Is(err, casestore.ErrConflict) {
		return err
	}
	cur, rerr := s.store.Recent(ctx, id)
	if rerr != nil {
		return &ConflictError{err: err}
	}
	if !scope.Case(p, cur) {
		return errOutOfScope
	}
	return &ConflictError{Current: proto.CloneOf(cur), err: err}
}

func (s *Service) checkDepartments(lead string, assist []string) error {
	if lead == "" {
		return invalid("lead", "required")
	}
	if _, ok := s.cat.Department(lead); !ok {
		return invalid("lead", "unknown department %q", lead)
	}
	for _, a := range assist {
		if _, ok := s.cat.Department(a); !ok {
			return invalid("assist", "unknown department %q", a)
		}
	}
	return nil
}
