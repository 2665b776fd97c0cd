// Package route decides, from notify.yaml's routing tree, which routes a
// change reaches: whom to tell, whom to page, and how long to gather
// changes before telling them.
//
// A change enters at the root. At every route it passes, it goes on to the
// first child it passes — and past that child to the next ones as long as
// the children it passes say continue. A route it passes whose children it
// passes none of is where it stops: that route's receivers are told and
// its paging ladder runs. So a parent's receivers are the fallback for
// whatever its children leave, as in Alertmanager's tree; and a route that
// neither tells receivers nor pages anyone tells its parent's receivers,
// so that no change that reached a route is dropped unnoticed.
package route

import (
	"slices"
	"strconv"
	"time"

	"github.com/cityhub/cityhub/services/notify/config"
)

// Change is one thing that happened, as routes see it.
type Change struct {
	// Stream is config.StreamCases or config.StreamAlerts.
	Stream string
	// Kind is one of config.CaseChanges or config.AlertChanges.
	Kind string
	// Department is the department the change is addressed to (the one
	// dispatched to, warned, overdue, escalated to); empty for a change of
	// the whole case or an alert.
	Department string
	// Departments are every department of the case (lead, assists, parts)
	// or of the alert's dispatch; a route's department list matches a
	// change addressed to no department when it names one of them.
	Departments []string
	District    string
	Severity    string
	EventType   string
	CaseClass   string
	Rule        string
}

// Calendar answers the time conditions of routes (config.Times).
type Calendar interface {
	// IsWorking reports whether t is within the work hours of a working day.
	IsWorking(t time.Time) bool
	// IsRestDay reports whether t falls on a day that is not worked
	// (a weekend or a holiday, unless it is a make-up working day).
	IsRestDay(t time.Time) bool
	// IsHoliday reports whether t falls on one of the calendar's holidays.
	IsHoliday(t time.Time) bool
}

// Target is a route a change reached, with the timing that applies there.
type Target struct {
	// Path names the route in notify.yaml ("routes.routes[2]"), for
	// records of why someone was told.
	Path      string
	Receivers []string
	Page      []config.Step
	Timing    Timing
}

// Timing is how a route gathers and repeats its messages.
type Timing struct {
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// Tree routes changes. It is immutable and safe for concurrent use.
type Tree struct {
	root *node
	cal  Calendar
}

type node struct {
	path      string
	route     *config.Route
	receivers []string // the route's, or its parent's when it has none and pages nobody
	timing    Timing
	kids      []*node
}

// New builds the tree of cfg, whose When conditions cal answers.
func New(cfg *config.Config, cal Calendar) *Tree {
	d := cfg.Defaults
	return &Tree{root: build(&cfg.Routes, "routes", nil, Timing{d.GroupWait, d.GroupInterval, d.RepeatInterval}), cal: cal}
}

func build(r *config.Route, path string, parentReceivers []string, inherited Timing) *node {
	t := inherited
	for _, o := range []struct {
		dst *time.Duration
		src time.Duration
	}{{&t.GroupWait, r.GroupWait}, {&t.GroupInterval, r.GroupInterval}, {&t.RepeatInterval, r.RepeatInterval}} {
		if o.src > 0 {
			*o.dst = o.src
		}
	}
	n := &node{path: path, route: r, receivers: r.Receivers, timing: t}
	if len(r.Receivers) == 0 && len(r.Page) == 0 {
		n.receivers = parentReceivers
	}
	for i := range r.Routes {
		n.kids = append(n.kids, build(&r.Routes[i], path+".routes["+strconv.Itoa(i)+"]", n.receivers, t))
	}
	return n
}

// Route returns the routes c reaches at time at, in the order of the file.
func (t *Tree) Route(c Change, at time.Time) []Target {
	return t.walk(t.root, &c, at, nil)
}

func (t *Tree) walk(n *node, c *Change, at time.Time, out []Target) []Target {
	passed := false
	for _, k := range n.kids {
		if !t.passes(k.route, c, at) {
			continue
		}
		passed = true
		out = t.walk(k, c, at, out)
		if !k.route.Continue {
			break
		}
	}
	if passed {
		return out
	}
	if len(n.receivers) == 0 && len(n.route.Page) == 0 {
		return out
	}
	return append(out, Target{Path: n.path, Receivers: n.receivers, Page: n.route.Page, Timing: n.timing})
}

// passes reports whether c at time at passes r's match and when.
func (t *Tree) passes(r *config.Route, c *Change, at time.Time) bool {
	m := &r.Match
	if m.Stream != "" && m.Stream != c.Stream {
		return false
	}
	if !in(m.Change, c.Kind) || !in(m.District, c.District) || !in(m.Severity, c.Severity) ||
		!in(m.EventType, c.EventType) || !in(m.CaseClass, c.CaseClass) || !in(m.Rule, c.Rule) {
		return false
	}
	if len(m.Department) > 0 {
		if c.Department != "" {
			if !slices.Contains(m.Department, c.Department) {
				return false
			}
		} else if !slices.ContainsFunc(c.Departments, func(d string) bool { return slices.Contains(m.Department, d) }) {
			return false
		}
	}
	if len(r.When) == 0 {
		return true
	}
	return slices.ContainsFunc(r.When, func(w string) bool { return t.when(w, at) })
}

func (t *Tree) when(w string, at time.Time) bool {
	switch w {
	case "working_hours":
		return t.cal.IsWorking(at)
	case "off_hours":
		return !t.cal.IsWorking(at)
	case "rest_days":
		return t.cal.IsRestDay(at)
	case "holidays":
		return t.cal.IsHoliday(at)
	}
	return false
}

// in reports whether list, when not empty, holds v.
func in(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
