package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Route is a node of the routing tree. A change goes down the tree: at
// each level it takes the first child whose Match and When it passes (or
// every one of them, as long as the routes it passes say Continue), and
// the deepest routes it reaches notify their Receivers and page people
// through their Page steps. A route that passes but has no child that
// does is where the change stops; one that neither has receivers nor
// pages tells its parent's receivers.
type Route struct {
	Match Match `yaml:"match"`
	// When limits the route to times on the catalog's working calendar:
	// working_hours, off_hours, rest_days (weekends and holidays) or
	// holidays (the calendar's listed holidays); any of them when several.
	When []string `yaml:"when"`
	// Receivers are told of the change (a department's system, a group
	// robot, fixed mailboxes).
	Receivers []string `yaml:"receivers"`
	// Page is the paging ladder of the department the change is for: the
	// person on duty first, then the next, then the head, each step after
	// its delay without the part being accepted. It runs inside the part's
	// accept deadline and stops the moment the part is accepted or the
	// case leaves the state.
	Page []Step `yaml:"page"`
	// Continue lets a change that passed this route go on to its next
	// siblings too.
	Continue bool `yaml:"continue"`
	// GroupWait, GroupInterval and RepeatInterval, when set, replace the
	// defaults (and the parent's) for this route and its children.
	GroupWait      time.Duration `yaml:"group_wait"`
	GroupInterval  time.Duration `yaml:"group_interval"`
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	Routes         []Route       `yaml:"routes"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// Match is what a change must be to pass a route; an empty list matches
// anything. Within a list any value passes; across lists all must.
type Match struct {
	// Stream is cases (the default) or alerts.
	Stream     string   `yaml:"stream"`
	Change     []string `yaml:"change"`
	Department []string `yaml:"department"`
	District   []string `yaml:"district"`
	Severity   []string `yaml:"severity"`
	EventType  []string `yaml:"event_type"`
	CaseClass  []string `yaml:"case_class"`
	Rule       []string `yaml:"rule"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// Streams a route may follow.
const (
	StreamCases  = "cases"
	StreamAlerts = "alerts"
)

// CaseChanges are the changes of a case a route may match: what the state
// machine says a change means (lifecycle.Happenings). Most are addressed
// to one department — the one dispatched to, escalated to, warned,
// overdue, that accepted or returned — and Department matches that one.
var CaseChanges = lifecycle.Happenings

// DepartmentChanges are the case changes addressed to one department, the
// only ones a paging ladder may follow.
var DepartmentChanges = []string{"dispatched", "warned", "overdue", "escalated"}

// AlertChanges are the changes of an alert a route may match.
var AlertChanges = []string{"firing", "resolved", "escalated"}

// Times a route's When may name.
var Times = []string{"working_hours", "off_hours", "rest_days", "holidays"}

// Step is one rung of a paging ladder.
type Step struct {
	// After is the delay since the part was dispatched (or escalated) to
	// the department; the first step's is usually 0.
	After time.Duration `yaml:"after"`
	// To is on_duty (the person the rotations name now), next (the one
	// after the person of the step before), head, or a person's id.
	To string `yaml:"to"`
	// Via are receivers that reach a person.
	Via []string `yaml:"via"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// Targets of a paging step besides a person's id.
const (
	ToOnDuty = "on_duty"
	ToNext   = "next"
	ToHead   = "head"
)

// route checks r, a route at path below parent (nil for the root).
func (v *validator) route(r *Route, path string, parent *Route, depth int) {
	v.routes++
	if depth > MaxRouteDepth || v.routes > MaxRoutes {
		v.errorf(r.At, "%s: routes nest deeper than %d or number more than %d", path, MaxRouteDepth, MaxRoutes)
		return
	}
	if parent == nil {
		if !isZeroMatch(&r.Match) || len(r.When) > 0 || r.Continue {
			v.errorf(r.At, "routes: the root route takes every change: no match, when or continue")
		}
		if len(r.Receivers) == 0 && len(r.Routes) == 0 {
			v.errorf(r.At, "routes: the root needs receivers, for changes no route below takes")
		}
	}
	v.match(r, path, parent)
	for _, w := range r.When {
		if !contains(Times, w) {
			v.errorf(r.Where["when"], "%s: when %q: want one of %s", path, clip(w), strings.Join(Times, ", "))
		}
	}
	if parent != nil && len(parent.When) > 0 && len(r.When) > 0 && !overlaps(parent.When, r.When) {
		v.errorf(r.Where["when"], "%s: can never match: when %s inside a route for %s", path, strings.Join(r.When, ", "), strings.Join(parent.When, ", "))
	}
	for _, name := range r.Receivers {
		if v.receivers[name] == nil {
			v.errorf(r.Where["receivers"], "%s: receiver %q is not defined under receivers", path, clip(name))
		}
	}
	for _, d := range []struct {
		key string
		p   *time.Duration
	}{{"group_wait", &r.GroupWait}, {"group_interval", &r.GroupInterval}, {"repeat_interval", &r.RepeatInterval}} {
		if *d.p < 0 || *d.p > MaxWait {
			v.errorf(r.Where[d.key], "%s: %s %s is outside 0s to %s", path, d.key, *d.p, MaxWait)
		}
	}
	v.page(r, path, parent)
	// A route that matches every change of its stream and does not
	// continue keeps all of them from the siblings after it.
	takesAll := map[string]bool{}
	for i := range r.Routes {
		child := &r.Routes[i]
		cpath := fmt.Sprintf("%s.routes[%d]", path, i)
		catchAll := isZeroMatch(&child.Match) && len(child.When) == 0 && !child.Continue
		v.route(child, cpath, r, depth+1) // fills the child's stream
		if takesAll[child.Match.Stream] {
			v.errorf(child.At, "%s: can never match: a route before it takes every change of %s and does not continue", cpath, child.Match.Stream)
		}
		if catchAll {
			takesAll[child.Match.Stream] = true
		}
	}
}

func isZeroMatch(m *Match) bool {
	return m.Stream == "" && len(m.Change) == 0 && len(m.Department) == 0 && len(m.District) == 0 &&
		len(m.Severity) == 0 && len(m.EventType) == 0 && len(m.CaseClass) == 0 && len(m.Rule) == 0
}

// match checks r.Match on its own and against its parent's: a child can
// only narrow what reaches it.
func (v *validator) match(r *Route, path string, parent *Route) {
	m := &r.Match
	if parent == nil {
		return // the root takes both streams
	}
	switch {
	case m.Stream == "" && parent.Match.Stream != "":
		m.Stream = parent.Match.Stream
	case m.Stream == "":
		m.Stream = StreamCases
	case m.Stream != StreamCases && m.Stream != StreamAlerts:
		v.errorf(m.Where["stream"], "%s: match.stream %q: want cases or alerts", path, clip(m.Stream))
		return
	case parent.Match.Stream != "" && parent.Match.Stream != m.Stream:
		v.errorf(m.Where["stream"], "%s: can never match: stream %s inside a route for %s", path, m.Stream, parent.Match.Stream)
	}
	changes := CaseChanges
	if m.Stream == StreamAlerts {
		changes = AlertChanges
		if len(m.CaseClass) > 0 {
			v.errorf(m.Where["case_class"], "%s: can never match: alerts have no case class", path)
		}
	}
	known := func(key string, values []string, ok func(string) bool, what string) {
		for _, x := range values {
			if !ok(x) {
				v.errorf(m.Where[key], "%s: match.%s: %q is not %s", path, key, clip(x), what)
			}
		}
	}
	known("change", m.Change, func(s string) bool { return contains(changes, s) }, "a change of "+m.Stream+" ("+strings.Join(changes, ", ")+")")
	known("department", m.Department, v.cat.HasDepartment, "a department of the catalog")
	known("district", m.District, v.cat.HasDistrict, "a district of the catalog")
	known("severity", m.Severity, func(s string) bool { _, err := cityhubv1.ParseSeverity(s); return err == nil }, "a severity (minor, moderate, severe, extreme)")
	known("event_type", m.EventType, func(s string) bool { _, ok := v.cat.EventType(s); return ok }, "an event type of the catalog")
	known("case_class", m.CaseClass, func(s string) bool { _, ok := v.cat.CaseClassLimits(s); return ok }, "a case class of the catalog")
	p := &parent.Match
	for _, f := range []struct {
		key           string
		child, parent []string
	}{
		{"change", m.Change, p.Change}, {"department", m.Department, p.Department}, {"district", m.District, p.District},
		{"severity", m.Severity, p.Severity}, {"event_type", m.EventType, p.EventType}, {"case_class", m.CaseClass, p.CaseClass},
		{"rule", m.Rule, p.Rule},
	} {
		if len(f.child) > 0 && len(f.parent) > 0 && !overlaps(f.child, f.parent) {
			v.errorf(m.Where[f.key], "%s: can never match: %s %s inside a route for %s", path, f.key, strings.Join(f.child, ", "), strings.Join(f.parent, ", "))
		}
	}
	// What a parent requires holds below it too; a child that says
	// nothing of a field inherits the parent's list, so that each route
	// knows all it requires (the paging check reads the changes).
	inherit := func(child *[]string, parent []string) {
		if len(*child) == 0 {
			*child = parent
		}
	}
	inherit(&m.Change, p.Change)
	inherit(&m.Department, p.Department)
	inherit(&m.District, p.District)
	inherit(&m.Severity, p.Severity)
	inherit(&m.EventType, p.EventType)
	inherit(&m.CaseClass, p.CaseClass)
	inherit(&m.Rule, p.Rule)
}

// page checks r's paging ladder.
func (v *validator) page(r *Route, path string, parent *Route) {
	if len(r.Page) == 0 {
		return
	}
	if len(r.Page) > MaxSteps {
		v.errorf(r.Where["page"], "%s: page: at most %d steps", path, MaxSteps)
		return
	}
	changes := r.Match.Change // inherited from the parents by match
	if r.Match.Stream != StreamCases || len(changes) == 0 || slices.ContainsFunc(changes, func(c string) bool { return !contains(DepartmentChanges, c) }) {
		v.errorf(r.Where["page"], "%s: page: a paging ladder follows a change addressed to a department: match.change must be among %s", path, strings.Join(DepartmentChanges, ", "))
	}
	// The departments paged need a roster; a route that names none pages
	// whichever department the change is for, and one without a roster is
	// told through the route's receivers only (and counted).
	depts := r.Match.Department
	for _, d := range depts {
		if v.cat.HasDepartment(d) && v.rosters[d] == nil {
			v.errorf(r.Match.Where["department"], "%s: page: department %s has no roster to page", path, d)
		}
	}
	var last time.Duration = -1
	for i := range r.Page {
		s := &r.Page[i]
		spath := fmt.Sprintf("%s.page[%d]", path, i)
		if s.After < 0 || s.After <= last && i > 0 {
			v.errorf(s.Where["after"], "%s: after %s: each step comes later than the one before", spath, s.After)
		}
		last = s.After
		switch s.To {
		case ToOnDuty, ToHead:
		case ToNext:
			if i == 0 {
				v.errorf(s.Where["to"], "%s: to next: the first step has no person before it", spath)
			}
		case "":
			v.errorf(s.At, "%s: to: required (on_duty, next, head or a person's id)", spath)
		default:
			if len(depts) != 1 {
				v.errorf(s.Where["to"], "%s: to %q: a person can be named only on a route for one department", spath, clip(s.To))
			} else if ro := v.rosters[depts[0]]; ro != nil && !slices.ContainsFunc(ro.People, func(p Person) bool { return p.ID == s.To }) {
				v.errorf(s.Where["to"], "%s: to %q: not among the people of the %s roster", spath, clip(s.To), depts[0])
			}
		}
		if len(s.Via) == 0 {
			v.errorf(s.At, "%s: via: name the receivers that reach the person", spath)
		}
		for _, name := range s.Via {
			rec := v.receivers[name]
			switch {
			case rec == nil:
				v.errorf(s.Where["via"], "%s: receiver %q is not defined under receivers", spath, clip(name))
			case !rec.ReachesPeople():
				v.errorf(s.Where["via"], "%s: receiver %s is a %s and cannot reach a person", spath, name, rec.Kind())
			}
		}
	}
}

func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}
