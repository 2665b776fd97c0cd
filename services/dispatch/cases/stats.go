package cases

import (
	"context"
	"maps"
	"slices"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/scope"
)

// Bounds of Stats.
const (
	// MaxStatsRange is the longest from–to range a stats request may ask for.
	MaxStatsRange = 366 * 24 * time.Hour
	// DefaultStatsRange is the range when from is not given.
	DefaultStatsRange = 30 * 24 * time.Hour
	// MaxStatsCases bounds the cases one stats request reads. The count is
	// checked first, cheaply; a range over it is refused (TooManyError)
	// rather than tying up Redis.
	MaxStatsCases = 100_000
)

// StatsRequest asks for the evaluation figures of the cases opened in a
// range. An *InvalidError names its fields as the dispatcher API's query
// parameters do.
type StatsRequest struct {
	// From and To are the range of creation times, To exclusive: To is now
	// when zero, From DefaultStatsRange before To.
	From, To time.Time
	// Department, when set, asks for that department's figures only.
	Department string
	// District, when set, counts only that district's cases.
	District string
}

// Figures are the evaluation figures (综合评价) of a department, or of every
// case in scope. Counts are of cases; averages are in seconds and null when
// nothing was measured.
type Figures struct {
	// Received counts the cases dispatched to the department (for the
	// total: every case opened in the range).
	Received int `json:"received"`
	// Accepted counts parts signed for; AcceptedOnTime those signed by
	// their accept deadline (or with none). The total counts lead parts.
	Accepted       int `json:"accepted"`
	AcceptedOnTime int `json:"accepted_on_time"`
	// Handled counts parts reported done; HandledOnTime those reported by
	// their handle deadline (or with none). The total counts cases all of
	// whose parts are done, and on time when all were.
	Handled       int `json:"handled"`
	HandledOnTime int `json:"handled_on_time"`
	// Closed counts cases verified and closed; ClosedOnTime those whose
	// part (for the total: every part) was handled on time.
	Closed       int `json:"closed"`
	ClosedOnTime int `json:"closed_on_time"`
	// Returned counts cases the department handed back (for the total:
	// cases returned at least once).
	Returned int `json:"returned"`
	// Reworked counts cases that failed verification at least once (返工).
	Reworked int `json:"reworked"`
	// Escalated counts cases that went up the escalation ladder.
	Escalated int `json:"escalated"`
	// OverdueNow counts open cases with a part past its running deadline now.
	OverdueNow int `json:"overdue_now"`
	// AvgHandleSeconds is the mean time from dispatch to handled;
	// AvgCloseSeconds from dispatch to closed.
	AvgHandleSeconds *float64 `json:"avg_handle_seconds"`
	AvgCloseSeconds  *float64 `json:"avg_close_seconds"`

	handleSum, closeSum     time.Duration
	handleCount, closeCount int
}

// DepartmentFigures are the figures of one department.
type DepartmentFigures struct {
	Department string `json:"department"`
	Figures
}

// Stats are the evaluation figures of a range; the dispatcher API answers
// them as they are.
type Stats struct {
	// From and To are the range of creation times, To exclusive.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// AsOf is the moment "overdue now" refers to.
	AsOf time.Time `json:"as_of"`
	// Districts are the districts counted: the caller's scope, narrowed by
	// the district asked for; empty for every district.
	Districts []string `json:"districts"`
	// Department is set when the figures are one department's.
	Department string `json:"department,omitempty"`
	// Departments hold one row per department, ordered by code.
	Departments []DepartmentFigures `json:"departments"`
	// Total covers every case counted.
	Total Figures `json:"total"`
}

// Stats computes the figures r asks for over what p may see. Unlike a
// listing, which just comes back shorter, figures asked for outside p's
// scope are refused (*ForbiddenError): a zero would read as a fact. Stats
// also fails with *InvalidError, *TooManyError, and an *OpError when the
// cases could not be read.
//
// Cost: the figures are computed from the cases themselves, not kept as
// counters, so they are always consistent with the cases and need nothing
// rebuilt. One round trip counts the cases in range (ZCOUNT per district,
// refused over MaxStatsCases); then, per district, the creation-time index
// is walked in pages of a few hundred ids, each page's cases and histories
// read in one pipeline (see casestore.EachCreated): about N/256 round trips
// and O(N) work in Redis for N cases, with one page in memory at a time.
// The all-cases index is walked even for one department, because a case
// the department returned leaves its department index while it still
// counts as received and returned.
func (s *Service) Stats(ctx context.Context, p *auth.Principal, r StatsRequest) (Stats, error) {
	now := s.now().UTC()
	from, to, districts, department, err := s.checkStats(r, now)
	if err != nil {
		return Stats{}, err
	}
	var ok bool
	if districts, department, ok = scope.Narrow(p, districts, department); !ok {
		return Stats{}, &ForbiddenError{Reason: statsRefusal(p, r)}
	}
	read := districts
	if read == nil {
		read = s.store.Districts()
	}
	n, err := s.store.CountCreated(ctx, read, from, to)
	if err != nil {
		return Stats{}, &OpError{Op: "count cases", Err: err}
	}
	if n > MaxStatsCases {
		return Stats{}, &TooManyError{Cases: n, Max: MaxStatsCases}
	}
	acc := newStatsAccumulator(department, now)
	for _, d := range read {
		if err := s.store.EachCreated(ctx, d, from, to, acc.add); err != nil {
			return Stats{}, &OpError{Op: "read cases", Err: err}
		}
	}
	out := acc.result()
	out.From, out.To, out.AsOf = from, to, now
	out.Districts = districts
	if out.Districts == nil {
		out.Districts = []string{}
	}
	out.Department = department
	return out, nil
}

// checkStats resolves r's range and checks what it names; districts is nil
// for every district.
func (s *Service) checkStats(r StatsRequest, now time.Time) (from, to time.Time, districts []string, department string, err error) {
	to, from = now, r.From.UTC()
	if !r.To.IsZero() {
		to = r.To.UTC()
	}
	if r.From.IsZero() {
		from = to.Add(-DefaultStatsRange)
	}
	switch {
	case !from.Before(to):
		return from, to, nil, "", invalid("from", "must be before to")
	case to.Sub(from) > MaxStatsRange:
		return from, to, nil, "", invalid("from", "the range from %s to %s is longer than %d days", from.Format(time.RFC3339), to.Format(time.RFC3339), int(MaxStatsRange.Hours()/24))
	}
	if r.Department != "" {
		if _, ok := s.cat.Department(r.Department); !ok {
			return from, to, nil, "", invalid("department", "unknown department %q", r.Department)
		}
	}
	if r.District != "" {
		if _, ok := s.cat.District(r.District); !ok {
			return from, to, nil, "", invalid("district", "unknown district %q", r.District)
		}
		districts = []string{r.District}
	}
	return from, to, districts, r.Department, nil
}

// statsRefusal says why p may not have the figures r asks for, once
// scope.Narrow has said it may not.
func statsRefusal(p *auth.Principal, r StatsRequest) string {
	switch p.Role {
	case auth.RoleDepartment:
		if r.Department != "" && r.Department != p.Dept {
			return "a department sees only its own figures"
		}
		return "the token names no department"
	case auth.RoleDispatcher, auth.RoleViewer:
		return "district " + r.District + " is outside your scope"
	}
	return "role " + string(p.Role) + " sees no figures"
}

// statsAccumulator adds cases up into figures: each case is walked once
// into facts (factsOf), which are then folded into the total (addCase) and
// into the row of each department that received it (addDepartment).
type statsAccumulator struct {
	department string // only this department's cases and row, when set
	now        time.Time
	total      Figures
	depts      map[string]*Figures
}

func newStatsAccumulator(department string, now time.Time) *statsAccumulator {
	return &statsAccumulator{department: department, now: now, depts: map[string]*Figures{}}
}

// add counts case c with its history. It has the signature of
// casestore.EachCreated's callback and never fails.
func (a *statsAccumulator) add(c *cityhubv1.Case, hist []*cityhubv1.AuditEntry) error {
	f := factsOf(c, hist)
	if a.department != "" {
		if _, ok := f.depts[a.department]; !ok {
			return nil
		}
	}
	a.total.addCase(c, f, summarize(c, a.now))
	for dept, d := range f.depts {
		if a.department != "" && dept != a.department {
			continue
		}
		a.row(dept).addDepartment(c, f, d, a.now)
	}
	return nil
}

// row returns the figures of dept, adding the row on first use.
func (a *statsAccumulator) row(dept string) *Figures {
	f := a.depts[dept]
	if f == nil {
		f = &Figures{}
		a.depts[dept] = f
	}
	return f
}

func (a *statsAccumulator) result() Stats {
	out := Stats{Departments: []DepartmentFigures{}}
	for _, dept := range slices.Sorted(maps.Keys(a.depts)) {
		f := a.depts[dept]
		f.finish()
		out.Departments = append(out.Departments, DepartmentFigures{Department: dept, Figures: *f})
	}
	a.total.finish()
	out.Total = a.total
	return out
}

// Action names as the audit history records them.
var (
	actionReturn     = string(lifecycle.Return)
	actionEscalate   = string(lifecycle.Escalate)
	actionVerifyFail = string(lifecycle.Verify) + ":fail"
)

// caseFacts are what one case and its history say, before anything is
// counted.
type caseFacts struct {
	// depts are the departments that received the case: those that lead,
	// assist or hold a part now (scope.Departments), and any the history
	// shows acting on it as a department or returning it (one that
	// returned it holds no part any more).
	depts map[string]deptFacts
	// returned: some department handed the case back.
	returned bool
	// reworked: it failed verification at least once; escalated: it went
	// up the ladder.
	reworked, escalated bool
}

// deptFacts are what one case says about one department that received it.
type deptFacts struct {
	// returned: the department handed the case back.
	returned bool
	// part is the department's part now; nil when it returned the case and
	// was not dispatched it again.
	part *cityhubv1.Part
}

// factsOf walks c's parts and its history once.
func factsOf(c *cityhubv1.Case, hist []*cityhubv1.AuditEntry) caseFacts {
	f := caseFacts{
		depts:     map[string]deptFacts{},
		reworked:  c.GetReworkCount() > 0,
		escalated: c.GetEscalationLevel() > 0,
	}
	for _, dept := range scope.Departments(c) {
		f.depts[dept] = deptFacts{}
	}
	for _, part := range slices.Backward(c.GetParts()) { // the first part of a department is its part
		if d, ok := f.depts[part.GetDepartment()]; ok {
			d.part = part
			f.depts[part.GetDepartment()] = d
		}
	}
	for _, e := range hist {
		dept := e.GetDepartment()
		if dept != "" && e.GetRole() == string(auth.RoleDepartment) {
			f.depts[dept] = f.depts[dept]
		}
		switch e.GetAction() {
		case actionReturn:
			if dept != "" {
				d := f.depts[dept]
				d.returned = true
				f.depts[dept] = d
				f.returned = true
			}
		case actionVerifyFail:
			f.reworked = true
		case actionEscalate:
			f.escalated = true
		}
	}
	return f
}

// caseSummary is what the parts of a case add up to, for the total.
type caseSummary struct {
	// leadsAccepted counts lead parts signed for, leadsOnTime those signed
	// by their accept deadline.
	leadsAccepted, leadsOnTime int
	// allHandled: there are parts and every one is handled; allOnTime:
	// every handled part was handled by its deadline.
	allHandled, allOnTime bool
	// lastHandled is when the last part was handled.
	lastHandled time.Time
	// anyOverdue: some part is past its running deadline at now.
	anyOverdue bool
}

// summarize adds up the parts of c as of now.
func summarize(c *cityhubv1.Case, now time.Time) caseSummary {
	s := caseSummary{allHandled: len(c.GetParts()) > 0, allOnTime: true}
	for _, part := range c.GetParts() {
		if part.GetLead() && part.GetAcceptedAt() != nil {
			s.leadsAccepted++
			if onTime(part.GetAcceptedAt().AsTime(), acceptDue(c, part)) {
				s.leadsOnTime++
			}
		}
		if part.GetHandledAt() == nil {
			s.allHandled = false
		} else {
			if h := part.GetHandledAt().AsTime(); h.After(s.lastHandled) {
				s.lastHandled = h
			}
			if !onTime(part.GetHandledAt().AsTime(), handleDue(c, part)) {
				s.allOnTime = false
			}
		}
		if overdue(c, part, now) {
			s.anyOverdue = true
		}
	}
	return s
}

// addCase counts case c, with its facts and the summary of its parts, in
// t as a total.
func (t *Figures) addCase(c *cityhubv1.Case, f caseFacts, s caseSummary) {
	dispatched := c.GetDispatchedAt()
	t.Received++
	t.Accepted += s.leadsAccepted
	t.AcceptedOnTime += s.leadsOnTime
	if s.allHandled {
		t.Handled++
		if s.allOnTime {
			t.HandledOnTime++
		}
		if dispatched != nil {
			t.handleSum += s.lastHandled.Sub(dispatched.AsTime())
			t.handleCount++
		}
	}
	if c.GetStatus() == cityhubv1.CaseStatus_CASE_STATUS_CLOSED {
		t.Closed++
		if s.allHandled && s.allOnTime {
			t.ClosedOnTime++
		}
		t.addClose(c)
	}
	t.Returned += count(f.returned)
	t.Reworked += count(f.reworked)
	t.Escalated += count(f.escalated)
	t.OverdueNow += count(s.anyOverdue)
}

// addDepartment counts case c in fig as the row of a department that
// received it, with what c says about that department (d).
func (fig *Figures) addDepartment(c *cityhubv1.Case, f caseFacts, d deptFacts, now time.Time) {
	fig.Received++
	fig.Returned += count(d.returned)
	part := d.part
	if part == nil {
		return // returned, and not dispatched to it again
	}
	fig.Reworked += count(f.reworked)
	fig.Escalated += count(f.escalated)
	if part.GetAcceptedAt() != nil {
		fig.Accepted++
		fig.AcceptedOnTime += count(onTime(part.GetAcceptedAt().AsTime(), acceptDue(c, part)))
	}
	handledOnTime := false
	if part.GetHandledAt() != nil {
		fig.Handled++
		handledOnTime = onTime(part.GetHandledAt().AsTime(), handleDue(c, part))
		fig.HandledOnTime += count(handledOnTime)
		if dispatched := c.GetDispatchedAt(); dispatched != nil {
			fig.handleSum += part.GetHandledAt().AsTime().Sub(dispatched.AsTime())
			fig.handleCount++
		}
	}
	if c.GetStatus() == cityhubv1.CaseStatus_CASE_STATUS_CLOSED {
		fig.Closed++
		fig.ClosedOnTime += count(handledOnTime)
		fig.addClose(c)
	}
	fig.OverdueNow += count(overdue(c, part, now))
}

// addClose adds the time from dispatch to close of closed case c to the
// mean, when both are known.
func (fig *Figures) addClose(c *cityhubv1.Case) {
	if d, closed := c.GetDispatchedAt(), c.GetClosedAt(); d != nil && closed != nil {
		fig.closeSum += closed.AsTime().Sub(d.AsTime())
		fig.closeCount++
	}
}

// finish turns the sums into means.
func (fig *Figures) finish() {
	if fig.handleCount > 0 {
		v := fig.handleSum.Seconds() / float64(fig.handleCount)
		fig.AvgHandleSeconds = &v
	}
	if fig.closeCount > 0 {
		v := fig.closeSum.Seconds() / float64(fig.closeCount)
		fig.AvgCloseSeconds = &v
	}
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// acceptDue is the accept deadline of part: its own, else the case's; zero
// when there is none.
func acceptDue(c *cityhubv1.Case, part *cityhubv1.Part) time.Time {
	if d := part.GetAcceptDeadline().GetDueAt(); d != nil {
		return d.AsTime()
	}
	if d := c.GetAcceptDueAt(); d != nil {
		return d.AsTime()
	}
	return time.Time{}
}

// handleDue is the handle deadline of part, as acceptDue.
func handleDue(c *cityhubv1.Case, part *cityhubv1.Part) time.Time {
	if d := part.GetHandleDeadline().GetDueAt(); d != nil {
		return d.AsTime()
	}
	if d := c.GetHandleDueAt(); d != nil {
		return d.AsTime()
	}
	return time.Time{}
}

func onTime(at, due time.Time) bool { return due.IsZero() || !at.After(due) }

// overdue reports whether part of case c is past the deadline that runs
// for it at now: never for a closed case or a handled part, and a
// suspended part's clock stands still.
func overdue(c *cityhubv1.Case, part *cityhubv1.Part, now time.Time) bool {
	if !c.GetStatus().Open() || part.GetSuspendedAt() != nil || part.GetHandledAt() != nil {
		return false
	}
	due := handleDue(c, part)
	if part.GetAcceptedAt() == nil {
		due = acceptDue(c, part)
	}
	return !due.IsZero() && now.After(due)
}
