package cases

// This file keeps the statistics as they were computed before the walk
// over a case was split into facts and folds (stats.go): one function,
// verbatim but for names, so that TestStatsMatchReference can hold the
// two together on generated cases.

import (
	"slices"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// refAccumulator adds cases up into figures.
type refAccumulator struct {
	department string // only this department's cases and row, when set
	now        time.Time
	total      Figures
	depts      map[string]*Figures
}

func newRefAccumulator(department string, now time.Time) *refAccumulator {
	return &refAccumulator{department: department, now: now, depts: map[string]*Figures{}}
}

func (a *refAccumulator) add(c *cityhubv1.Case, hist []*cityhubv1.AuditEntry) error {
	// Who received the case: the departments holding a part now, and any
	// department the history shows acting on it (one that returned it holds
	// no part any more).
	received := map[string]bool{}
	for _, part := range c.GetParts() {
		received[part.GetDepartment()] = true
	}
	returnedBy := map[string]bool{}
	var reworked, escalated bool
	for _, e := range hist {
		if e.GetDepartment() != "" && e.GetRole() == string(auth.RoleDepartment) {
			received[e.GetDepartment()] = true
		}
		switch e.GetAction() {
		case actionReturn:
			if e.GetDepartment() != "" {
				returnedBy[e.GetDepartment()] = true
				received[e.GetDepartment()] = true
			}
		case actionVerifyFail:
			reworked = true
		case actionEscalate:
			escalated = true
		}
	}
	if c.GetReworkCount() > 0 {
		reworked = true
	}
	if c.GetEscalationLevel() > 0 {
		escalated = true
	}
	if a.department != "" && !received[a.department] {
		return nil
	}
	closed := c.GetStatus() == cityhubv1.CaseStatus_CASE_STATUS_CLOSED
	dispatched := c.GetDispatchedAt()

	// The case as a whole.
	t := &a.total
	t.Received++
	allHandled, allOnTime, anyOverdue := len(c.GetParts()) > 0, true, false
	var lastHandled time.Time
	for _, part := range c.GetParts() {
		if part.GetLead() && part.GetAcceptedAt() != nil {
			t.Accepted++
			if refOnTime(part.GetAcceptedAt().AsTime(), refAcceptDue(c, part)) {
				t.AcceptedOnTime++
			}
		}
		if part.GetHandledAt() == nil {
			allHandled = false
		} else {
			if h := part.GetHandledAt().AsTime(); h.After(lastHandled) {
				lastHandled = h
			}
			if !refOnTime(part.GetHandledAt().AsTime(), refHandleDue(c, part)) {
				allOnTime = false
			}
		}
		if a.overdue(c, part) {
			anyOverdue = true
		}
	}
	if allHandled {
		t.Handled++
		if allOnTime {
			t.HandledOnTime++
		}
		if dispatched != nil {
			t.handleSum += lastHandled.Sub(dispatched.AsTime())
			t.handleCount++
		}
	}
	if closed {
		t.Closed++
		if allHandled && allOnTime {
			t.ClosedOnTime++
		}
		if dispatched != nil && c.GetClosedAt() != nil {
			t.closeSum += c.GetClosedAt().AsTime().Sub(dispatched.AsTime())
			t.closeCount++
		}
	}
	if len(returnedBy) > 0 {
		t.Returned++
	}
	if reworked {
		t.Reworked++
	}
	if escalated {
		t.Escalated++
	}
	if anyOverdue {
		t.OverdueNow++
	}

	// Each department that received it.
	for dept := range received {
		if a.department != "" && dept != a.department {
			continue
		}
		f := a.depts[dept]
		if f == nil {
			f = &Figures{}
			a.depts[dept] = f
		}
		f.Received++
		if returnedBy[dept] {
			f.Returned++
		}
		part := refPartOf(c, dept)
		if part == nil {
			continue // returned, and not dispatched to it again
		}
		if reworked {
			f.Reworked++
		}
		if escalated {
			f.Escalated++
		}
		if part.GetAcceptedAt() != nil {
			f.Accepted++
			if refOnTime(part.GetAcceptedAt().AsTime(), refAcceptDue(c, part)) {
				f.AcceptedOnTime++
			}
		}
		handledOnTime := false
		if part.GetHandledAt() != nil {
			f.Handled++
			if handledOnTime = refOnTime(part.GetHandledAt().AsTime(), refHandleDue(c, part)); handledOnTime {
				f.HandledOnTime++
			}
			if dispatched != nil {
				f.handleSum += part.GetHandledAt().AsTime().Sub(dispatched.AsTime())
				f.handleCount++
			}
		}
		if closed {
			f.Closed++
			if handledOnTime {
				f.ClosedOnTime++
			}
			if dispatched != nil && c.GetClosedAt() != nil {
				f.closeSum += c.GetClosedAt().AsTime().Sub(dispatched.AsTime())
				f.closeCount++
			}
		}
		if a.overdue(c, part) {
			f.OverdueNow++
		}
	}
	return nil
}

func refPartOf(c *cityhubv1.Case, dept string) *cityhubv1.Part {
	for _, p := range c.GetParts() {
		if p.GetDepartment() == dept {
			return p
		}
	}
	return nil
}

// refAcceptDue is the accept deadline of part: its own, else the case's; zero
// when there is none.
func refAcceptDue(c *cityhubv1.Case, part *cityhubv1.Part) time.Time {
	if d := part.GetAcceptDeadline().GetDueAt(); d != nil {
		return d.AsTime()
	}
	if d := c.GetAcceptDueAt(); d != nil {
		return d.AsTime()
	}
	return time.Time{}
}

// refHandleDue is the handle deadline of part, as refAcceptDue.
func refHandleDue(c *cityhubv1.Case, part *cityhubv1.Part) time.Time {
	if d := part.GetHandleDeadline().GetDueAt(); d != nil {
		return d.AsTime()
	}
	if d := c.GetHandleDueAt(); d != nil {
		return d.AsTime()
	}
	return time.Time{}
}

func refOnTime(at, due time.Time) bool { return due.IsZero() || !at.After(due) }

// overdue reports whether part of open case c is past the deadline that
// runs for it now. A suspended part's clock stands still.
func (a *refAccumulator) overdue(c *cityhubv1.Case, part *cityhubv1.Part) bool {
	if !c.GetStatus().Open() || part.GetSuspendedAt() != nil || part.GetHandledAt() != nil {
		return false
	}
	due := refHandleDue(c, part)
	if part.GetAcceptedAt() == nil {
		due = refAcceptDue(c, part)
	}
	return !due.IsZero() && a.now.After(due)
}

func (a *refAccumulator) response() Stats {
	resp := Stats{Departments: []DepartmentFigures{}}
	for _, dept := range refSortedKeys(a.depts) {
		f := a.depts[dept]
		f.refFinish()
		resp.Departments = append(resp.Departments, DepartmentFigures{Department: dept, Figures: *f})
	}
	a.total.refFinish()
	resp.Total = a.total
	return resp
}

func (f *Figures) refFinish() {
	if f.handleCount > 0 {
		v := f.handleSum.Seconds() / float64(f.handleCount)
		f.AvgHandleSeconds = &v
	}
	if f.closeCount > 0 {
		v := f.closeSum.Seconds() / float64(f.closeCount)
		f.AvgCloseSeconds = &v
	}
}

func refSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
