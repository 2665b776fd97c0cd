// Package lifecycle is the case state machine of the city's closed loop
// (立案 → 派遣 → 签收 → 处置 → 核查结案): one table says, for every action,
// the statuses it may start from, the status it leads to, who may take it,
// and what it changes. Functions here change a case in memory and describe
// the change as an audit entry; storing it is casestore's job.
//
// Clocks. Each part of a case has its own deadlines (accept and handle),
// set at dispatch from the case's Sla on natural or working time. Suspension
// is per part: a department suspends its own part, whose clocks stand still
// until it resumes, when its deadlines move by the working (or natural) time
// it spent suspended. An extension request does not stop the clock while it
// is pending; granting it moves the handle deadline by the time granted,
// counted from the old deadline, so time spent waiting for the decision is
// not lost to the department. That is how this package reads "the clock
// stops while an extension is approved".
//
// Escalation. Each deadline has three moments: a warning at 80% of the
// allowed time, escalation to the district centre when it passes, and to the
// city centre when as much time again has passed. Due reports the next
// moment that has come; the system applies it like any other action.
package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

var (
	// ErrForbiddenTransition means the case's status does not allow the
	// action, or the acting part is not in a state that allows it.
	ErrForbiddenTransition = errors.New("transition not allowed")
	// ErrForbidden means the actor's role or department may not take the
	// action on this case.
	ErrForbidden = errors.New("not allowed for this actor")
	// ErrInvalid means the request is malformed: an unknown action, a
	// missing reason, department or merge target.
	ErrInvalid = errors.New("invalid request")
)

// Action is what an actor does to a case.
type Action string

// The actions of the workflow.
const (
	// Create opens a case (立案).
	Create Action = "create"
	// Dispatch sends a new case to a lead and assisting departments (派遣).
	Dispatch Action = "dispatch"
	// Accept is a department signing for its part (签收).
	Accept Action = "accept"
	// Return is a department handing the case back as not its own (退回).
	Return Action = "return"
	// Handle is a department reporting its part done (处置反馈).
	Handle Action = "handle"
	// Verify closes a handled case or sends it back for rework (核查).
	Verify Action = "verify"
	// Suspend stops the clocks of a department's part (挂起).
	Suspend Action = "suspend"
	// Resume restarts a suspended part's clocks.
	Resume Action = "resume"
	// RequestExtension is a department asking for more time (延期申请).
	RequestExtension Action = "request_extension"
	// GrantExtension approves a pending extension and moves the deadline.
	GrantExtension Action = "grant_extension"
	// RefuseExtension turns a pending extension down.
	RefuseExtension Action = "refuse_extension"
	// Cancel ends a case as a false alarm (作废).
	Cancel Action = "cancel"
	// Merge ends a case as a duplicate of another (并案).
	Merge Action = "merge"
	// Comment adds a note without changing the case's status.
	Comment Action = "comment"
	// Escalate raises a case one rung up the ladder (升级).
	Escalate Action = "escalate"
	// Warn marks a deadline as near; only the system takes it.
	Warn Action = "warn"
	// Link makes a case a linked part of another (关联): that of the
	// district-wide alert that inhibits its alert. The case carries on with
	// its own parts and deadlines. Only the system takes it.
	Link Action = "link"
)

// Absorb is the action of the audit entry that a merge writes on the case
// the duplicate is merged into. It is not a row of the table: no one takes
// it on its own, Merge implies it.
const Absorb Action = "absorb"

// Attach is the action of the audit entry that a link writes on the case
// the linked one joins. Like Absorb, it is no row of the table: Link
// implies it.
const Attach Action = "attach"

// RoleSystem is the role of cityhub itself, when it opens a case from an
// alert or escalates a late one. No token carries it.
const RoleSystem auth.Role = "system"

// System is the actor of what cityhub does by itself on a timer.
var System = Actor{Subject: "cityhub", Role: RoleSystem}

// The rungs of the escalation ladder.
const (
	LevelDepartment int32 = iota // the departments handle it
	LevelDistrict                // the district centre (区城运中心) follows it
	LevelCity                    // the city centre (市城运中心) follows it
)

// LevelName returns the ladder rung as the API spells it.
func LevelName(l int32) string {
	switch l {
	case LevelDepartment:
		return "department"
	case LevelDistrict:
		return "district-centre"
	case LevelCity:
		return "city-centre"
	}
	return ""
}

// Extension states.
const (
	ExtensionPending = "pending"
	ExtensionGranted = "granted"
	ExtensionRefused = "refused"
)

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
	// Department names the part acted on, for the actions on one part; it
	// defaults to the actor's department, or the lead's part for others.
	Department string
	Note       string
	// Pass is the outcome of a verification: closed when true, back to the
	// departments when false.
	Pass *bool
	// Dispatch says where a dispatch sends the case. Its Sla must already
	// be resolved (a case class turned into durations) by the caller.
	Dispatch *cityhubv1.DispatchSpec
	// Into is the case a merge makes this one a duplicate of, or a link a
	// linked part of.
	Into string
	// ExtendBy or Until is what an extension request asks for: more time
	// on the deadline's own clock, or a new deadline. ExtendWorking says
	// ExtendBy was written in working units, which a natural-time deadline
	// refuses.
	ExtendBy      time.Duration
	ExtendWorking bool
	Until         time.Time
	// Calendar is the working calendar deadlines are computed on;
	// workcal.Default() when nil.
	Calendar *workcal.Calendar

	// timer is the deadline moment a system Warn or Escalate acts on.
	timer *moment
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
	noPart  partScope = iota // the case as a whole
	ownPart                  // the acting department's part (any part for others)
	anyPart                  // no part changes, but a department must hold one
)

// Transition is one row of the table.
type Transition struct {
	Action Action
	// Outcome tells apart the rows of one action: "pass" and "fail" of a
	// verification; empty otherwise.
	Outcome string
	From    []cityhubv1.CaseStatus
	// To is the status the case moves to; unspecified when it stays. For
	// actions on parts, the case moves only when the parts are far enough
	// (every part handled; the lead's part accepted).
	To    cityhubv1.CaseStatus
	Roles []auth.Role
	// NeedsNote says the action needs a reason.
	NeedsNote bool
	// OnPart says the action works on one department's part; a department
	// may take it only on its own.
	OnPart bool
	// Summary says what the action does, for documentation.
	Summary string

	part  partScope
	apply func(s *step) error
	done  func(c *cityhubv1.Case) bool
}

// step is one transition being applied.
type step struct {
	c      *cityhubv1.Case
	req    Request
	by     Actor
	now    time.Time
	part   *cityhubv1.Part
	effect []string
}

func (s *step) say(format string, args ...any) {
	s.effect = append(s.effect, fmt.Sprintf(format, args...))
}

func (s *step) cal() *workcal.Calendar {
	if s.req.Calendar != nil {
		return s.req.Calendar
	}
	return defaultCalendar()
}

var defaultCalendar = sync.OnceValue(workcal.Default)

// table is the workflow. Read a row as: Action (Outcome) may be taken from
// From by Roles and leads to To.
var table = []Transition{
	{Action: Create, From: []cityhubv1.CaseStatus{none}, To: new_, Roles: withSystem,
		Summary: "open a case, dispatched at once when a lead is given", apply: func(*step) error { return nil }},
	{Action: Dispatch, From: []cityhubv1.CaseStatus{new_}, To: dispatched, Roles: withSystem,
		Summary: "send the case to a lead and assisting departments; every part's clocks start", apply: dispatch},
	{Action: Accept, From: []cityhubv1.CaseStatus{dispatched, accepted}, To: accepted, Roles: departments, part: ownPart,
		Summary: "sign for a part; the case is accepted when the lead has signed", apply: acceptPart, done: leadIs(accepted)},
	{Action: Return, From: []cityhubv1.CaseStatus{dispatched}, To: new_, Roles: departments, part: ownPart, NeedsNote: true,
		Summary: "hand the case back to the dispatcher before signing; returns by two departments call for arbitration", apply: returnCase},
	{Action: Handle, From: []cityhubv1.CaseStatus{accepted}, To: handled, Roles: departments, part: ownPart,
		Summary: "report a part done with feedback; the case is handled when every part is", apply: handlePart, done: allParts(handled)},
	{Action: Verify, Outcome: "pass", From: []cityhubv1.CaseStatus{handled}, To: closed, Roles: dispatchers,
		Summary: "verify the work and close the case", apply: closeCase},
	{Action: Verify, Outcome: "fail", From: []cityhubv1.CaseStatus{handled}, To: accepted, Roles: dispatchers, NeedsNote: true,
		Summary: "send every part back for rework with the reason; new handle deadlines start", apply: rework},
	{Action: Suspend, From: []cityhubv1.CaseStatus{accepted}, Roles: departments, part: ownPart, NeedsNote: true,
		Summary: "stop the clocks of a signed part", apply: suspendPart},
	{Action: Resume, From: []cityhubv1.CaseStatus{accepted}, Roles: departments, part: ownPart,
		Summary: "restart a suspended part's clocks; its deadlines move by the time suspended", apply: resumePart},
	{Action: RequestExtension, From: []cityhubv1.CaseStatus{accepted}, Roles: departments, part: ownPart, NeedsNote: true,
		Summary: "ask for more time to handle a signed part", apply: requestExtension},
	{Action: GrantExtension, From: []cityhubv1.CaseStatus{accepted}, Roles: dispatchers, part: ownPart,
		Summary: "grant a pending extension; the handle deadline moves", apply: grantExtension},
	{Action: RefuseExtension, From: []cityhubv1.CaseStatus{accepted}, Roles: dispatchers, part: ownPart, NeedsNote: true,
		Summary: "refuse a pending extension", apply: refuseExtension},
	{Action: Cancel, From: open, To: cancelled, Roles: dispatchers, NeedsNote: true,
		Summary: "end the case as a false alarm", apply: closeCase},
	{Action: Merge, From: open, To: cancelled, Roles: dispatchers,
		Summary: "end the case as a duplicate of another, which records it", apply: mergeCase},
	{Action: Comment, From: append(slices.Clone(open), closed, cancelled), Roles: []auth.Role{auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment}, part: anyPart, NeedsNote: true,
		Summary: "add a note", apply: func(*step) error { return nil }},
	{Action: Escalate, From: open, Roles: withSystem, NeedsNote: true,
		Summary: "raise the case a rung: district centre, then city centre; the system does so when a deadline passes", apply: escalate},
	{Action: Warn, From: []cityhubv1.CaseStatus{dispatched, accepted}, Roles: []auth.Role{RoleSystem},
		Summary: "mark a deadline as near (80% of its time used)", apply: warn},
	{Action: Link, From: open, Roles: []auth.Role{RoleSystem},
		Summary: "make the case a linked part of the case of the alert that inhibits its alert; it carries on as it is", apply: linkCase},
}

func init() {
	for i := range table {
		table[i].OnPart = table[i].part == ownPart
	}
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
// (status, parts, clocks) and returns the audit entry of the change. The
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
	if t.NeedsNote && strings.TrimSpace(req.Note) == "" && req.timer == nil {
		return nil, fmt.Errorf("%w: %s needs a note saying why", ErrInvalid, req.Action)
	}
	from := c.GetStatus()
	if !slices.Contains(t.From, from) {
		return nil, fmt.Errorf("%w: cannot %s a case that is %s", ErrForbiddenTransition, req.Action, from.Name())
	}
	part, err := choosePart(c, t.part, req, by)
	if err != nil {
		return nil, err
	}
	// Work on a copy so that a failing step leaves c as it was.
	work := cloneCase(c)
	s := &step{c: work, req: req, by: by, now: now}
	if part != nil {
		s.part = partOf(work, part.GetDepartment())
	}
	if err := t.apply(s); err != nil {
		return nil, err
	}
	if t.To != none && (t.done == nil || t.done(work)) {
		work.Status = t.To
	}
	work.UpdatedAt = timestamppb.New(now)
	refresh(work)
	happened := happenings(t, c, work, s)
	replace(c, work)
	dept := by.Dept
	if s.part != nil {
		dept = s.part.GetDepartment()
	}
	return &cityhubv1.AuditEntry{
		Happened:   happened,
		Action:     string(req.Action) + suffix(t.Outcome),
		Actor:      by.Subject,
		Role:       string(by.Role),
		Department: dept,
		At:         timestamppb.New(now),
		Note:       req.Note,
		From:       from,
		To:         c.GetStatus(),
		Effect:     strings.Join(s.effect, "; "),
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
		if by.Role == auth.RoleDepartment {
			return nil, fmt.Errorf("%w: department %s has no part in case %s", ErrForbidden, dept, c.GetId())
		}
		if dept == "" {
			return nil, fmt.Errorf("%w: case %s has no parts yet", ErrForbiddenTransition, c.GetId())
		}
		return nil, fmt.Errorf("%w: department %s has no part in case %s", ErrInvalid, dept, c.GetId())
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

// dispatch sends the case to the departments of req.Dispatch and starts
// every part's clocks.
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
	depts := []string{c.Lead}
	for _, a := range spec.GetAssist() {
		if a == "" || slices.Contains(depts, a) {
			continue
		}
		c.Assist = append(c.Assist, a)
		depts = append(depts, a)
	}
	c.DispatchedAt = timestamppb.New(s.now)
	c.Sla = nil
	if sla != nil {
		c.Sla = &cityhubv1.Sla{
			Accept: cloneDuration(sla.GetAccept()), Handle: cloneDuration(sla.GetHandle()),
			CaseClass: sla.GetCaseClass(), AcceptWorking: sla.GetAcceptWorking(), HandleWorking: sla.GetHandleWorking(),
		}
	}
	c.Parts = nil
	for i, d := range depts {
		c.Parts = append(c.Parts, &cityhubv1.Part{
			Department:     d,
			Lead:           i == 0,
			Status:         dispatched,
			AcceptDeadline: newDeadline(s.cal(), s.now, sla.GetAccept().AsDuration(), sla.GetAcceptWorking()),
			HandleDeadline: newDeadline(s.cal(), s.now, sla.GetHandle().AsDuration(), sla.GetHandleWorking()),
		})
	}
	if c.GetArbitration() {
		c.Arbitration, c.ArbitrationReason = false, ""
		s.say("arbitration settled: dispatched to %s", strings.Join(depts, ", "))
	}
	return nil
}

func cloneDuration(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(d.AsDuration())
}

// returnCase hands the case back to the dispatcher, and flags it for
// arbitration once two different departments have returned it.
func returnCase(s *step) error {
	if s.part.GetStatus() != dispatched {
		return fmt.Errorf("%w: the part of %s is %s; only a part not yet signed for can be returned", ErrForbiddenTransition, s.part.GetDepartment(), s.part.GetStatus().Name())
	}
	c := s.c
	if d := s.part.GetDepartment(); !slices.Contains(c.ReturnedBy, d) {
		c.ReturnedBy = append(c.ReturnedBy, d)
	}
	if len(c.ReturnedBy) >= 2 && !c.GetArbitration() {
		c.Arbitration = true
		c.ArbitrationReason = "returned by " + strings.Join(c.ReturnedBy, ", ")
		s.say("flagged for arbitration by the district centre: %s", c.ArbitrationReason)
	}
	c.Lead, c.Assist, c.Parts, c.Sla = "", nil, nil, nil
	c.DispatchedAt = nil
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
	p := s.part
	if p.GetStatus() != accepted {
		return fmt.Errorf("%w: the part of %s is %s, not accepted", ErrForbiddenTransition, p.GetDepartment(), p.GetStatus().Name())
	}
	if p.GetSuspendedAt() != nil {
		return fmt.Errorf("%w: the part of %s is suspended; resume it first", ErrForbiddenTransition, p.GetDepartment())
	}
	p.Status = handled
	p.HandledAt = timestamppb.New(s.now)
	p.Note = s.req.Note
	if e := p.GetExtension(); e.GetState() == ExtensionPending {
		e.State = ExtensionRefused
		e.DecisionNote = "withdrawn: the part was reported handled"
		e.DecidedAt = timestamppb.New(s.now)
	}
	return nil
}

func closeCase(s *step) error {
	s.c.ClosedAt = timestamppb.New(s.now)
	return nil
}

// rework sends a case that failed verification back to its departments,
// each with a new handle deadline.
func rework(s *step) error {
	c := s.c
	c.ReworkCount++
	for _, p := range c.GetParts() {
		p.Status = accepted
		p.HandledAt = nil
		p.ReworkNote = s.req.Note
		p.HandleDeadline = newDeadline(s.cal(), s.now, c.GetSla().GetHandle().AsDuration(), c.GetSla().GetHandleWorking())
	}
	s.say("rework %d", c.ReworkCount)
	return nil
}

func suspendPart(s *step) error {
	p := s.part
	switch {
	case p.GetStatus() != accepted:
		return fmt.Errorf("%w: the part of %s is %s; only a signed part can be suspended", ErrForbiddenTransition, p.GetDepartment(), p.GetStatus().Name())
	case p.GetSuspendedAt() != nil:
		return fmt.Errorf("%w: the part of %s is suspended already", ErrForbiddenTransition, p.GetDepartment())
	}
	p.SuspendedAt = timestamppb.New(s.now)
	p.SuspendReason = s.req.Note
	return nil
}

func resumePart(s *step) error {
	p := s.part
	if p.GetSuspendedAt() == nil {
		return fmt.Errorf("%w: the part of %s is not suspended", ErrForbiddenTransition, p.GetDepartment())
	}
	since := p.GetSuspendedAt().AsTime()
	if s.now.Before(since) {
		since = s.now // a clock that stepped back pauses for nothing
	}
	for _, d := range []*cityhubv1.Deadline{p.GetAcceptDeadline(), p.GetHandleDeadline()} {
		pause(s.cal(), d, since, s.now)
	}
	total := p.GetSuspendedTotal().AsDuration() + s.now.Sub(since)
	p.SuspendedTotal = durationpb.New(total)
	p.SuspendedAt, p.SuspendReason = nil, ""
	if dl := p.GetHandleDeadline(); dl != nil {
		s.say("deadlines of %s moved by the %s suspended; handle due %s", p.GetDepartment(), s.now.Sub(since).Round(time.Second), stamp(dl.GetDueAt()))
	}
	return nil
}

func requestExtension(s *step) error {
	p, req := s.part, s.req
	dl := p.GetHandleDeadline()
	switch {
	case p.GetStatus() != accepted:
		return fmt.Errorf("%w: the part of %s is %s; only a signed part can ask for more time", ErrForbiddenTransition, p.GetDepartment(), p.GetStatus().Name())
	case dl == nil:
		return fmt.Errorf("%w: the part of %s has no handle deadline to extend", ErrForbiddenTransition, p.GetDepartment())
	case p.GetExtension().GetState() == ExtensionPending:
		return fmt.Errorf("%w: the part of %s has an extension request pending", ErrForbiddenTransition, p.GetDepartment())
	case (req.ExtendBy > 0) == !req.Until.IsZero():
		return fmt.Errorf("%w: an extension asks for extend_by or until, one of the two", ErrInvalid)
	case req.ExtendBy < 0:
		return fmt.Errorf("%w: extend_by must be positive", ErrInvalid)
	case req.ExtendWorking && !dl.GetWorking():
		return fmt.Errorf("%w: the handle deadline of %s runs on natural time; give extend_by in hours or minutes, or until", ErrInvalid, p.GetDepartment())
	case !req.Until.IsZero() && !req.Until.After(dl.GetDueAt().AsTime()):
		return fmt.Errorf("%w: until (%s) is not after the current deadline (%s)", ErrInvalid, req.Until.UTC().Format(time.RFC3339), stamp(dl.GetDueAt()))
	case !req.Until.IsZero() && !req.Until.After(s.now):
		return fmt.Errorf("%w: until is in the past", ErrInvalid)
	}
	e := &cityhubv1.Extension{
		State:       ExtensionPending,
		Reason:      req.Note,
		RequestedBy: s.by.Subject,
		RequestedAt: timestamppb.New(s.now),
	}
	if req.ExtendBy > 0 {
		e.ExtendBy = durationpb.New(req.ExtendBy)
	} else {
		e.Until = timestamppb.New(req.Until)
	}
	p.Extension = e
	return nil
}

func pendingExtension(p *cityhubv1.Part) (*cityhubv1.Extension, error) {
	e := p.GetExtension()
	if e.GetState() != ExtensionPending {
		return nil, fmt.Errorf("%w: the part of %s has no extension request pending", ErrForbiddenTransition, p.GetDepartment())
	}
	return e, nil
}

func grantExtension(s *step) error {
	p := s.part
	e, err := pendingExtension(p)
	if err != nil {
		return err
	}
	dl := p.GetHandleDeadline()
	if dl == nil || p.GetStatus() != accepted {
		return fmt.Errorf("%w: the part of %s has no running handle deadline", ErrForbiddenTransition, p.GetDepartment())
	}
	old := dl.GetDueAt().AsTime()
	due := old
	switch {
	case e.GetUntil() != nil:
		due = e.GetUntil().AsTime()
	case dl.GetWorking():
		due = s.cal().Add(old, e.GetExtendBy().AsDuration())
	default:
		due = old.Add(e.GetExtendBy().AsDuration())
	}
	if !due.After(old) {
		return fmt.Errorf("%w: the requested deadline %s is not after the current one", ErrInvalid, due.UTC().Format(time.RFC3339))
	}
	move(s.cal(), dl, old, due, s.now)
	e.State = ExtensionGranted
	e.DecidedBy, e.DecidedAt, e.DecisionNote = s.by.Subject, timestamppb.New(s.now), s.req.Note
	s.say("handle deadline of %s moved from %s to %s", p.GetDepartment(), stamp(timestamppb.New(old)), stamp(dl.GetDueAt()))
	return nil
}

func refuseExtension(s *step) error {
	e, err := pendingExtension(s.part)
	if err != nil {
		return err
	}
	e.State = ExtensionRefused
	e.DecidedBy, e.DecidedAt, e.DecisionNote = s.by.Subject, timestamppb.New(s.now), s.req.Note
	return nil
}

func mergeCase(s *step) error {
	switch into := s.req.Into; {
	case into == "":
		return fmt.Errorf("%w: merge needs the case to merge into", ErrInvalid)
	case into == s.c.GetId():
		return fmt.Errorf("%w: a case cannot be merged into itself", ErrInvalid)
	}
	s.c.MergedInto = s.req.Into
	s.c.ClosedAt = timestamppb.New(s.now)
	s.say("merged into %s", s.req.Into)
	return nil
}

func linkCase(s *step) error {
	switch into := s.req.Into; {
	case into == "":
		return fmt.Errorf("%w: link needs the case to link into", ErrInvalid)
	case into == s.c.GetId():
		return fmt.Errorf("%w: a case cannot be linked into itself", ErrInvalid)
	case into == s.c.GetLinkedInto():
		return fmt.Errorf("%w: the case is linked into %s already", ErrForbiddenTransition, into)
	}
	s.c.LinkedInto = s.req.Into
	s.say("linked into %s", s.req.Into)
	return nil
}

// RecordLink records on target that case part was linked into it, as by
// at now: the other half of a link, written after the part was. Nothing
// about target refuses it, not even a target that closed meanwhile; only
// a part that names no other case is invalid. It changes nothing but the
// linked list and the update time, and returns the audit entry, whose
// version and request id the caller sets.
func RecordLink(target *cityhubv1.Case, part string, by Actor, now time.Time) (*cityhubv1.AuditEntry, error) {
	return recordOther(target, &target.Linked, part, Attach, "linked", by, now)
}

// recordOther adds case other to target's list (merged or linked) and
// returns the entry of action that says so; verb says what became of
// other.
func recordOther(target *cityhubv1.Case, list *[]string, other string, action Action, verb string, by Actor, now time.Time) (*cityhubv1.AuditEntry, error) {
	if other == "" || other == target.GetId() {
		return nil, fmt.Errorf("%w: a case cannot be %s into itself", ErrInvalid, verb)
	}
	if !slices.Contains(*list, other) {
		*list = append(*list, other)
	}
	target.UpdatedAt = timestamppb.New(now)
	return &cityhubv1.AuditEntry{
		Action:     string(action),
		Actor:      by.Subject,
		Role:       string(by.Role),
		Department: by.Dept,
		At:         timestamppb.New(now),
		From:       target.GetStatus(),
		To:         target.GetStatus(),
		Effect:     other + " " + verb + " into this case",
	}, nil
}

// CheckMerge decides what a merge of case dup into req.Into can be refused
// for before either case is read: the actor's role, and a target that is
// the duplicate itself. The rest is decided on the cases: CheckMergeTarget
// on the target, Apply on the duplicate.
func CheckMerge(dup string, req Request, by Actor) error {
	t, err := lookup(Request{Action: Merge})
	if err != nil {
		return err
	}
	switch {
	case !slices.Contains(t.Roles, by.Role):
		return fmt.Errorf("%w: role %s may not %s", ErrForbidden, by.Role, Merge)
	case req.Into == "":
		return fmt.Errorf("%w: merge needs the case to merge into", ErrInvalid)
	case req.Into == dup:
		return fmt.Errorf("%w: a case cannot be merged into itself", ErrInvalid)
	}
	return nil
}

// CheckMergeTarget refuses a merge into target when target is closed or
// cancelled: only an open case takes in duplicates.
func CheckMergeTarget(target *cityhubv1.Case) error {
	if !target.GetStatus().Open() {
		return fmt.Errorf("%w: cannot merge into a case that is %s", ErrForbiddenTransition, target.GetStatus().Name())
	}
	return nil
}

// RecordMerge records on target that case dup was merged into it, as by at
// now: the other half of a merge, written after the duplicate was
// cancelled. The merge was decided then, so nothing about target refuses
// it now, not even a target that closed meanwhile; only a dup that names
// no other case is invalid. It changes nothing but the merged list and the
// update time, and returns the audit entry, whose version and request id
// the caller sets.
func RecordMerge(target *cityhubv1.Case, dup string, by Actor, now time.Time) (*cityhubv1.AuditEntry, error) {
	return recordOther(target, &target.Merged, dup, Absorb, "merged", by, now)
}

// escalate raises the case a rung; on a timer, to the rung of the deadline
// moment that came.
func escalate(s *step) error {
	c := s.c
	if m := s.req.timer; m != nil {
		dl, err := fire(s, m)
		if err != nil {
			return err
		}
		level := LevelDistrict
		what := fmt.Sprintf("the %s deadline of %s passed at %s", m.stage, m.dept, stamp(dl.GetDueAt()))
		if m.step == stepFinal {
			level = LevelCity
			what = fmt.Sprintf("the %s deadline of %s is still unmet at %s", m.stage, m.dept, stamp(dl.GetFinalAt()))
		}
		if c.GetEscalationLevel() < level {
			c.EscalationLevel = level
			s.say("%s: escalated to the %s", what, strings.ReplaceAll(LevelName(level), "-", " "))
		} else {
			s.say("%s; the case is with the %s already", what, strings.ReplaceAll(LevelName(c.GetEscalationLevel()), "-", " "))
		}
		return nil
	}
	if s.by.Role == RoleSystem {
		return fmt.Errorf("%w: the system escalates only on a deadline", ErrInvalid)
	}
	if c.GetEscalationLevel() >= LevelCity {
		return fmt.Errorf("%w: the case is with the city centre already", ErrForbiddenTransition)
	}
	c.EscalationLevel++
	s.say("escalated to the %s", strings.ReplaceAll(LevelName(c.EscalationLevel), "-", " "))
	return nil
}

func warn(s *step) error {
	m := s.req.timer
	if m == nil || m.step != stepWarn {
		return fmt.Errorf("%w: warnings come from deadlines only", ErrInvalid)
	}
	dl, err := fire(s, m)
	if err != nil {
		return err
	}
	s.say("the %s deadline of %s is near: due %s", m.stage, m.dept, stamp(dl.GetDueAt()))
	return nil
}

func stamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return "never"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}
