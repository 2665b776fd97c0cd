package dispatch

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// Bounds of GET /v1/stats.
const (
	// MaxStatsRange is the longest from–to range a stats request may ask for.
	MaxStatsRange = 366 * 24 * time.Hour
	// DefaultStatsRange is the range when from is not given.
	DefaultStatsRange = 30 * 24 * time.Hour
	// MaxStatsCases bounds the cases one stats request reads. The count is
	// checked first, cheaply; a range over it is refused with a 400 asking
	// for a narrower one rather than tying up Redis.
	MaxStatsCases = 100_000
)

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

// StatsResponse is the body of GET /v1/stats.
type StatsResponse struct {
	// From and To are the range of creation times, To exclusive.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// AsOf is the moment "overdue now" refers to.
	AsOf time.Time `json:"as_of"`
	// Districts are the districts counted: the caller's scope, narrowed by
	// the district parameter; empty for every district.
	Districts []string `json:"districts"`
	// Department is set when the figures are one department's.
	Department string `json:"department,omitempty"`
	// Departments hold one row per department, ordered by code.
	Departments []DepartmentFigures `json:"departments"`
	// Total covers every case counted.
	Total Figures `json:"total"`
}

var statsParams = []string{"department", "district", "from", "to"}

// stats serves GET /v1/stats.
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
func (s *Service) stats(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "invalid_parameter", "malformed query string: "+err.Error(), nil)
		return
	}
	now := s.opts.Now().UTC()
	req, err := s.parseStats(q, now)
	if err != nil {
		var pe *paramError
		errors.As(err, &pe)
		httperr.Write(w, http.StatusBadRequest, "invalid_parameter", err.Error(), map[string]string{"parameter": pe.param})
		return
	}
	if msg := scopeStats(&req, p); msg != "" {
		httperr.Write(w, http.StatusForbidden, "forbidden", msg, nil)
		return
	}
	districts := req.districts
	if districts == nil {
		districts = s.store.Districts()
	}
	n, err := s.store.CountCreated(r.Context(), districts, req.from, req.to)
	if err != nil {
		s.internal(w, "count cases", err)
		return
	}
	if n > MaxStatsCases {
		httperr.Write(w, http.StatusBadRequest, "range_too_large",
			fmt.Sprintf("%d cases were opened in the range, more than the %d one request may read: narrow from/to or name a district", n, MaxStatsCases),
			map[string]any{"cases": n, "max": MaxStatsCases})
		return
	}
	acc := newStatsAccumulator(req.department, now)
	for _, d := range districts {
		if err := s.store.EachCreated(r.Context(), d, req.from, req.to, acc.add); err != nil {
			s.internal(w, "read cases", err)
			return
		}
	}
	resp := acc.response()
	resp.From, resp.To, resp.AsOf = req.from, req.to, now
	resp.Districts = req.districts
	if resp.Districts == nil {
		resp.Districts = []string{}
	}
	resp.Department = req.department
	httperr.WriteJSON(w, http.StatusOK, resp)
}

type statsRequest struct {
	from, to   time.Time
	department string
	// districts is nil for every district.
	districts []string
}

func (s *Service) parseStats(q url.Values, now time.Time) (statsRequest, error) {
	var req statsRequest
	for k, v := range q {
		if !slices.Contains(statsParams, k) {
			return req, &paramError{k, "unknown; want one of " + strings.Join(statsParams, ", ")}
		}
		if len(v) > 1 {
			return req, &paramError{k, "given more than once"}
		}
	}
	req.to = now
	if v := q.Get("to"); v != "" {
		t, err := parseStatsTime(v)
		if err != nil {
			return req, &paramError{"to", err.Error()}
		}
		req.to = t
	}
	req.from = req.to.Add(-DefaultStatsRange)
	if v := q.Get("from"); v != "" {
		t, err := parseStatsTime(v)
		if err != nil {
			return req, &paramError{"from", err.Error()}
		}
		req.from = t
	}
	switch {
	case !req.from.Before(req.to):
		return req, &paramError{"from", "must be before to"}
	case req.to.Sub(req.from) > MaxStatsRange:
		return req, &paramError{"from", fmt.Sprintf("the range from %s to %s is longer than %d days", req.from.Format(time.RFC3339), req.to.Format(time.RFC3339), int(MaxStatsRange.Hours()/24))}
	}
	if v := q.Get("department"); v != "" {
		if _, ok := s.opts.Catalog.Department(v); !ok {
			return req, &paramError{"department", fmt.Sprintf("unknown department %q", v)}
		}
		req.department = v
	}
	if v := q.Get("district"); v != "" {
		if _, ok := s.opts.Catalog.District(v); !ok {
			return req, &paramError{"district", fmt.Sprintf("unknown district %q", v)}
		}
		req.districts = []string{v}
	}
	return req, nil
}

func parseStatsTime(v string) (time.Time, error) {
	if len(v) > 64 {
		return time.Time{}, errors.New("too long for a time")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2025-07-01T00:00:00+08:00, got %q", v)
	}
	return t.UTC(), nil
}

// scopeStats confines req to what p may see, or says why it cannot have
// what it asked for. Unlike a listing, which just comes back shorter, a
// figure asked for outside one's scope is refused: a zero would read as a
// fact.
func scopeStats(req *statsRequest, p *auth.Principal) string {
	switch p.Role {
	case auth.RoleCommander:
		return ""
	case auth.RoleDepartment:
		if req.department != "" && req.department != p.Dept {
			return "a department sees only its own figures"
		}
		if p.Dept == "" {
			return "the token names no department"
		}
		req.department = p.Dept
		return ""
	case auth.RoleDispatcher, auth.RoleViewer:
		if len(p.Districts) == 0 {
			return ""
		}
		if req.districts == nil {
			req.districts = slices.Clone(p.Districts)
			return ""
		}
		if !p.SeesDistrict(req.districts[0]) {
			return "district " + req.districts[0] + " is outside your scope"
		}
		return ""
	}
	return "role " + string(p.Role) + " sees no figures"
}

// statsAccumulator adds cases up into figures.
type statsAccumulator struct {
	department string // only this department's cases and row, when set
	now        time.Time
	total      Figures
	depts      map[string]*Figures
}

func newStatsAccumulator(department string, now time.Time) *statsAccumulator {
	return &statsAccumulator{department: department, now: now, depts: map[string]*Figures{}}
}

// Action names as the audit history records them.
var (
	actionReturn     = string(lifecycle.Return)
	actionEscalate   = string(lifecycle.Escalate)
	actionVerifyFail = string(lifecycle.Verify) + ":fail"
)

func (a *statsAccumulator) add(c *cityhubv1.Case, hist []*cityhubv1.AuditEntry) error {
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
			if onTime(part.GetAcceptedAt().AsTime(), acceptDue(c, part)) {
				t.AcceptedOnTime++
			}
		}
		if part.GetHandledAt() == nil {
			allHandled = false
		} else {
			if h := part.GetHandledAt().AsTime(); h.After(lastHandled) {
				lastHandled = h
			}
			if !onTime(part.GetHandledAt().AsTime(), handleDue(c, part)) {
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
		part := partOf(c, dept)
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
			if onTime(part.GetAcceptedAt().AsTime(), acceptDue(c, part)) {
				f.AcceptedOnTime++
			}
		}
		handledOnTime := false
		if part.GetHandledAt() != nil {
			f.Handled++
			if handledOnTime = onTime(part.GetHandledAt().AsTime(), handleDue(c, part)); handledOnTime {
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

func partOf(c *cityhubv1.Case, dept string) *cityhubv1.Part {
	for _, p := range c.GetParts() {
		if p.GetDepartment() == dept {
			return p
		}
	}
	return nil
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

// overdue reports whether part of open case c is past the deadline that
// runs for it now. A suspended part's clock stands still.
func (a *statsAccumulator) overdue(c *cityhubv1.Case, part *cityhubv1.Part) bool {
	if !c.GetStatus().Open() || part.GetSuspendedAt() != nil || part.GetHandledAt() != nil {
		return false
	}
	due := handleDue(c, part)
	if part.GetAcceptedAt() == nil {
		due = acceptDue(c, part)
	}
	return !due.IsZero() && a.now.After(due)
}

func (a *statsAccumulator) response() StatsResponse {
	resp := StatsResponse{Departments: []DepartmentFigures{}}
	for _, dept := range sortedKeys(a.depts) {
		f := a.depts[dept]
		f.finish()
		resp.Departments = append(resp.Departments, DepartmentFigures{Department: dept, Figures: *f})
	}
	a.total.finish()
	resp.Total = a.total
	return resp
}

func (f *Figures) finish() {
	if f.handleCount > 0 {
		v := f.handleSum.Seconds() / float64(f.handleCount)
		f.AvgHandleSeconds = &v
	}
	if f.closeCount > 0 {
		v := f.closeSum.Seconds() / float64(f.closeCount)
		f.AvgCloseSeconds = &v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
