// Package lifecycle is the case state machine of the city's closed loop
// (立案 → 派遣 → 签收 → 处置 → 核查结案): one table says, for every action,
// the statuses it may start from, the status it leads to, who may take it,
// and what it changes. Functions here change a case in memory and describe
// the change as an audit entry; storing it is casestore's job.
package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

var (
	// ErrForbiddenTransition means the case's status does not allow the
	// action, or the acting part is not in a state that allows it.
	ErrForbiddenTransition = errors.New("transition not allowed")
	// ErrForbidden means the actor's role or department may not take the
	// action on this case.
	ErrForbidden = errors.New("not allowed for this actor")
	// ErrInvalid means the request is malformed: an unknown action, a
	// missing reason or department.
	ErrInvalid = errors.New("invalid request")
	// ErrNotImplemented means the action is part of the workflow but cannot
	// be taken yet.
	ErrNotImplemented = errors.New("action not implemented yet")
)

// Action is what an actor does to a case.
type Action string

// The actions of the workflow (DESIGN §4.5).
const (
	// Create opens a case (立案).
	Create Action = "create"
	// Dispatch sends a new case to a lead and assisting departments (派遣).
	Dispatch Action = "dispatch"
	// Accept is a department signing for its part (签收).
	Accept Action = "accept"
	// Return is the lead handing a case back as not its own.
	Return Action = "return"
	// Handle is a department reporting its part done (处置反馈).
	Handle Action = "handle"
	// Verify closes a handled case or sends it back (核查).
	Verify Action = "verify"
	// Suspend stops a case's clock.
	Suspend Action = "suspend"
	// Resume restarts a suspended case's clock.
	Resume Action = "resume"
	// Cancel ends a case as a false alarm (作废).
	Cancel Action = "cancel"
	// Merge ends a case as a duplicate of another.
	Merge Action = "merge"
	// Comment adds a note without changing the case's status.
	Comment Action = "comment"
	// Escalate raises a case one step up the ladder.
	Escalate Action = "escalate"
)

// RoleSystem is the role of cityhub itself, when it opens a case from an
// alert or escalates a late one. No token carries it.
const RoleSystem auth.Role = "system"

// Actor is who takes an action.
type Actor struct {
	Subject string
	Role    auth.Role
	// Dept is the department of a department actor.
	Dept string
}

// Request is one action on a case.
type Request struct {
	Action Action
	// Department names the part acted on, for the actions a department
	// takes on its own part; it defaults to the actor's department, or the
	// lead's part for a commander.
	Department string
	Note       string
	// Pass is the outcome of a verification: closed when true, back to the
	// departments when false.
	Pass *bool
	// Dispatch says where a dispatch sends the case.
	Dispatch *cityhubv1.DispatchSpec
}

// Statuses, short.
const (
	none       = cityhubv1.CaseStatus_CASE_STATUS_UNSPECIFIED
	new_       = cityhubv1.CaseStatus_CASE_STATUS_NEW
	dispatched = cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED
	accepted   = cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED
	handled    = cityhubv1.CaseStatus_CASE_STATUS_HANDLED
	closed     = cityhubv1.CaseStatus_CASE_STATUS_CLOSED
	cancelled  = cityhubv1.CaseStatus_CASE_STATUS_CANCELLED
)

var (
	open        = []cityhubv1.CaseStatus{new_, dispatched, accepted, handled}
	dispatchers = []auth.Role{auth.RoleCommander, auth.RoleDispatcher}
	departments = []auth.Role{auth.RoleCommander, auth.RoleDepartment}
	withSystem  = []auth.Role{auth.RoleCommander, auth.RoleDispatcher, RoleSystem}
)

// partScope says which part of a case an action works on.
type partScope int

const (
	noPart   partScope = iota // the case as a whole
	ownPart                   // the acting department's part (any part for a commander)
	leadPart                  // the acting department's part, which must be the lead's
	anyPart                   // no part changes, but a department must hold one
)

// Transition is one row of the table.
type Transition struct {
	Action Action
	// Outcome tells apart the rows of one action: "pass" and "fail" of a
	// verification; empty otherwise.
	Outcome string
	From    []cityhubv1.CaseStatus
	// To is the status the case moves to; unspecified when it stays. For
	// actions on parts, the case moves only when done says the parts are
	// far enough.
	To    cityhubv1.CaseStatus
	Roles []auth.Role
	// NeedsNote says the action needs a reason.
	NeedsNote bool

	part  partScope
	apply func(s *step) error
	done  func(c *cityhubv1.Case) bool
}

// Implemented reports whether the action can be taken yet.
func (t Transition) Implemented() bool { return t.apply != nil }

// step is one transition being applied.
type step struct {
	c    *cityhubv1.Case
	req  Request
	by   Actor
	now  time.Time
	part *cityhubv1.Part
}

// table is the workflow. Read a row as: Action (Outcome) may be taken from
// From by Roles and leads to To.
var table = []Transition{
	{Action: Create, From: []cityhubv1.CaseStatus{none}, To: new_, Roles: withSystem, apply: func(*step) error { return nil }},
	{Action: Dispatch, From: []cityhubv1.CaseStatus{new_}, To: dispatched, Roles: withSystem, apply: dispatch},
	{Action: Accept, From: []cityhubv1.CaseStatus{dispatched, accepted}, To: accepted, Roles: departments, part: ownPart, apply: acceptPart, done: leadIs(accepted)},
	{Action: Return, From: []cityhubv1.CaseStatus{dispatched}, To: new_, Roles: departments, part: leadPart, NeedsNote: true, apply: undispatch},
	{Action: Handle, From: []cityhubv1.CaseStatus{accepted}, To: handled, Roles: departments, part: ownPart, apply: handlePart, done: allParts(handled)},
	{Action: Verify, Outcome: "pass", From: []cityhubv1.CaseStatus{handled}, To: closed, Roles: dispatchers, apply: closeCase},
	{Action: Verify, Outcome: "fail", From: []cityhubv1.CaseStatus{handled}, To: accepted, Roles: dispatchers, NeedsNote: true, apply: reopenParts},
	{Action: Suspend, From: []cityhubv1.CaseStatus{dispatched, accepted}, Roles: departments, part: ownPart, NeedsNote: true},
	{Action: Resume, From: []cityhubv1.CaseStatus{dispatched, accepted}, Roles: departments, part: ownPart},
	{Action: Cancel, From: open, To: cancelled, Roles: dispatchers, NeedsNote: true, apply: closeCase},
	{Action: Merge, From: open, To: cancelled, Roles: dispatchers},
	{Action: Comment, From: append(slices.Clone(open), closed, cancelled), Roles: []auth.Role{auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment}, part: anyPart, NeedsNote: true, apply: func(*step) error { return nil }},
	{Action: Escalate, From: []cityhubv1.CaseStatus{dispatched, accepted}, Roles: withSystem},
}

// Table returns the rows of the workflow, for documentation and tests.
func Table() []Transition { return slices.Clone(table) }

// lookup returns the row of req.
func lookup(req Request) (Transition, error) {
	outcome := ""
	if req.Action == Verify {
		if req.Pass == nil {
			return Transition{}, fmt.Errorf("%w: verify needs pass: true or false", ErrInvalid)
		}
		outcome = "fail"
		if *req.Pass {
			outcome = "pass"
		}
	}
	for _, t := range table {
		if t.Action == req.Action && t.Outcome == outcome {
			return t, nil
		}
	}
	return Transition{}, fmt.Errorf("%w: unknown action %q", ErrInvalid, req.Action)
}

// Known reports whether a is an action of the workflow.
func Known(a Action) bool {
	return slices.ContainsFunc(table, func(t Transition) bool { return t.Action == a })
}

// Apply takes req on c as by at now: it checks the table, changes c in place
// (status, parts, times) and returns the audit entry of the change. The
// caller sets the version and the request id. On error c is unchanged.
func Apply(c *cityhubv1.Case, req Request, by Actor, now time.Time) (*cityhubv1.AuditEntry, error) {
	t, err := lookup(req)
	if err != nil {
		return nil, err
	}
	if req.Action == Create {
		return nil, fmt.Errorf("%w: a case is created with New", ErrInvalid)
	}
	if !slices.Contains(t.Roles, by.Role) {
		return nil, fmt.Errorf("%w: role %s may not %s", ErrForbidden, by.Role, req.Action)
	}
	if t.NeedsNote && req.Note == "" {
		return nil, fmt.Errorf("%w: %s needs a note saying why", ErrInvalid, req.Action)
	}
	if !t.Implemented() {
		return nil, fmt.Errorf("%w: %s", ErrNotImplemented, req.Action)
	}
	from := c.GetStatus()
	if !slices.Contains(t.From, from) {
		return nil, fmt.Errorf("%w: cannot %s a case that is %s", ErrForbiddenTransition, req.Action, from.Name())
	}
	s := &step{c: c, req: req, by: by, now: now}
	if s.part, err = choosePart(c, t.part, req, by); err != nil {
		return nil, err
	}
	// Work on a copy so that a failing step leaves c as it was.
	work := cloneCase(c)
	s.c = work
	if s.part != nil {
		s.part = partOf(work, s.part.GetDepartment())
	}
	if err := t.apply(s); err != nil {
		return nil, err
	}
	if t.To != none && (t.done == nil || t.done(work)) {
		work.Status = t.To
	}
	work.UpdatedAt = timestamppb.New(now)
	replace(c, work)
	dept := by.Dept
	if s.part != nil {
		dept = s.part.GetDepartment()
	}
	return &cityhubv1.AuditEntry{
		Action:     string(req.Action) + suffix(t.Outcome),
		Actor:      by.Subject,
		Role:       string(by.Role),
		Department: dept,
		At:         timestamppb.New(now),
		Note:       req.Note,
		From:       from,
		To:         c.GetStatus(),
	}, nil
}

func suffix(outcome string) string {
	if outcome == "" {
		return ""
	}
	return ":" + outcome
}

// choosePart finds the part an action works on and checks that the actor
// may act on it.
func choosePart(c *cityhubv1.Case, scope partScope, req Request, by Actor) (*cityhubv1.Part, error) {
	if scope == noPart {
		return nil, nil
	}
	dept := req.Department
	if by.Role == auth.RoleDepartment {
		if dept != "" && dept != by.Dept {
			return nil, fmt.Errorf("%w: department %s may act only for itself", ErrForbidden, by.Dept)
		}
		dept = by.Dept
	}
	if dept == "" {
		if scope == anyPart {
			return nil, nil
		}
		dept = c.GetLead()
	}
	p := partOf(c, dept)
	if p == nil {
		if scope == anyPart && by.Role != auth.RoleDepartment {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: department %s has no part in case %s", ErrForbidden, dept, c.GetId())
	}
	if scope == leadPart && !p.GetLead() {
		return nil, fmt.Errorf("%w: only the lead department may %s", ErrForbidden, req.Action)
	}
	if scope == anyPart {
		return nil, nil
	}
	return p, nil
}

func partOf(c *cityhubv1.Case, dept string) *cityhubv1.Part {
	for _, p := range c.GetParts() {
		if p.GetDepartment() == dept {
			return p
		}
	}
	return nil
}

func leadIs(s cityhubv1.CaseStatus) func(*cityhubv1.Case) bool {
	return func(c *cityhubv1.Case) bool {
		p := partOf(c, c.GetLead())
		return p != nil && p.GetStatus() == s
	}
}

func allParts(s cityhubv1.CaseStatus) func(*cityhubv1.Case) bool {
	return func(c *cityhubv1.Case) bool {
		for _, p := range c.GetParts() {
			if p.GetStatus() != s {
				return false
			}
		}
		return len(c.GetParts()) > 0
	}
}

// dispatch sends the case to the departments of req.Dispatch and starts its
// clock.
func dispatch(s *step) error {
	spec := s.req.Dispatch
	if spec == nil || spec.GetLead() == "" {
		return fmt.Errorf("%w: dispatch needs a lead department", ErrInvalid)
	}
	sla := spec.GetSla()
	if sla.GetAccept().AsDuration() < 0 || sla.GetHandle().AsDuration() < 0 {
		return fmt.Errorf("%w: negative deadline", ErrInvalid)
	}
	c := s.c
	c.Lead = spec.GetLead()
	c.Assist = nil
	c.Parts = []*cityhubv1.Part{{Department: c.Lead, Lead: true, Status: dispatched}}
	for _, a := range spec.GetAssist() {
		if a == "" || a == c.Lead || slices.Contains(c.Assist, a) {
			continue
		}
		c.Assist = append(c.Assist, a)
		c.Parts = append(c.Parts, &cityhubv1.Part{Department: a, Status: dispatched})
	}
	c.DispatchedAt = timestamppb.New(s.now)
	c.Sla, c.AcceptDueAt, c.HandleDueAt = nil, nil, nil
	if sla != nil {
		c.Sla = &cityhubv1.Sla{Accept: cloneDuration(sla.GetAccept()), Handle: cloneDuration(sla.GetHandle())}
		if d := sla.GetAccept().AsDuration(); d > 0 {
			c.AcceptDueAt = timestamppb.New(s.now.Add(d))
		}
		if d := sla.GetHandle().AsDuration(); d > 0 {
			c.HandleDueAt = timestamppb.New(s.now.Add(d))
		}
	}
	return nil
}

func cloneDuration(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(d.AsDuration())
}

// undispatch hands the case back for dispatch elsewhere.
func undispatch(s *step) error {
	c := s.c
	c.Lead, c.Assist, c.Parts = "", nil, nil
	c.DispatchedAt, c.AcceptDueAt, c.HandleDueAt = nil, nil, nil
	return nil
}

func acceptPart(s *step) error {
	if s.part.GetStatus() != dispatched {
		return fmt.Errorf("%w: the part of %s is %s, not dispatched", ErrForbiddenTransition, s.part.GetDepartment(), s.part.GetStatus().Name())
	}
	s.part.Status = accepted
	s.part.AcceptedAt = timestamppb.New(s.now)
	return nil
}

func handlePart(s *step) error {
	if s.part.GetStatus() != accepted {
		return fmt.Errorf("%w: the part of %s is %s, not accepted", ErrForbiddenTransition, s.part.GetDepartment(), s.part.GetStatus().Name())
	}
	s.part.Status = handled
	s.part.HandledAt = timestamppb.New(s.now)
	s.part.Note = s.req.Note
	return nil
}

func closeCase(s *step) error {
	s.c.ClosedAt = timestamppb.New(s.now)
	return nil
}

// reopenParts sends a case that failed verification back to its departments.
func reopenParts(s *step) error {
	for _, p := range s.c.GetParts() {
		p.Status = accepted
		p.HandledAt = nil
	}
	return nil
}
