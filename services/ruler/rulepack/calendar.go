package rulepack

import (
	"errors"
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

// Active is the part of time a rule sees events of, by their occurred_at
// on the catalog's working calendar. The zero value sees every event.
type Active string

// The values of a rule's active field.
const (
	// ActiveWorkingHours sees only events in working time: inside the work
	// hours of a working day (a working weekday that is not a holiday, or a
	// make-up working day).
	ActiveWorkingHours Active = "working_hours"
	// ActiveOffHours sees only events outside working time: evenings,
	// nights, lunch breaks, rest days and holidays.
	ActiveOffHours Active = "off_hours"
)

// activeValues are the values active may take.
var activeValues = []Active{ActiveWorkingHours, ActiveOffHours}

// helpers is what a pack's conditions read besides the event: the
// catalog's areas, and its working calendar, built once per load and
// shared by the rules compiled in it. Both are nil without a catalog, and
// the compiler then refuses what would read them.
type helpers struct {
	cat *catalog.Catalog
	cal *workcal.Calendar
	// calErr is why the catalog's calendar could not be built.
	calErr error
}

func newHelpers(cat *catalog.Catalog) *helpers {
	h := &helpers{cat: cat}
	if cat != nil {
		h.cal, h.calErr = workcal.FromCatalog(cat.WorkCalendar())
	}
	return h
}

// calendar returns the working calendar, or an error that says why there
// is none, for the message of a rule that needs it.
func (h *helpers) calendar() (*workcal.Calendar, error) {
	switch {
	case h == nil || h.cat == nil:
		return nil, errors.New("no catalog to take the working calendar from")
	case h.calErr != nil:
		return nil, fmt.Errorf("the catalog's calendar: %w", h.calErr)
	}
	return h.cal, nil
}

// timeFunctions are the functions of an event's time on the catalog's
// calendar. A rule calls them without arguments; the compiler passes
// event.occurred_at (timeArgs), so they cannot be pointed at another time.
var timeFunctions = []struct {
	name string
	// of answers for t on cal.
	of func(cal *workcal.Calendar, t time.Time) any
	// typ is the function's type after the compiler added its argument.
	typ any
}{
	{
		name: "local_hour",
		of:   func(cal *workcal.Calendar, t time.Time) any { return t.In(cal.Location()).Hour() },
		typ:  new(func(time.Time) int),
	},
	{
		name: "working_time",
		of:   func(cal *workcal.Calendar, t time.Time) any { return cal.IsWorking(t) },
		typ:  new(func(time.Time) bool),
	},
}

// isTimeFunction reports whether name is one of timeFunctions.
func isTimeFunction(name string) bool {
	for _, f := range timeFunctions {
		if f.name == name {
			return true
		}
	}
	return false
}

// timeOptions declares the time functions over the calendar of h.
func timeOptions(h *helpers) []expr.Option {
	var cal *workcal.Calendar
	if h != nil {
		cal = h.cal
	}
	opts := []expr.Option{expr.Patch(timeArgs{})}
	for _, f := range timeFunctions {
		opts = append(opts, expr.Function(f.name, func(params ...any) (any, error) {
			t, ok := params[0].(time.Time)
			if !ok {
				return nil, fmt.Errorf("%s: want a time, got %T", f.name, params[0])
			}
			if cal == nil {
				// The compiler refuses the call without a calendar.
				return nil, fmt.Errorf("%s: no working calendar", f.name)
			}
			return f.of(cal, t), nil
		}, f.typ))
	}
	return opts
}

// timeArgs passes event.occurred_at to the time functions, as expr's
// WithContext passes a context: local_hour() becomes
// local_hour(event.occurred_at). A call that has arguments is left as it
// is, and the checker refuses it.
type timeArgs struct{}

func (timeArgs) Visit(n *ast.Node) {
	call, ok := (*n).(*ast.CallNode)
	if !ok || len(call.Arguments) != 0 {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || !isTimeFunction(id.Value) {
		return
	}
	ast.Patch(n, &ast.CallNode{
		Callee: &ast.IdentifierNode{Value: id.Value},
		Arguments: []ast.Node{&ast.MemberNode{
			Node:     &ast.IdentifierNode{Value: "event"},
			Property: &ast.StringNode{Value: "occurred_at"},
		}},
	})
}

// Sees reports whether the rule sees ev at all: every event without
// active, else only those whose occurred_at is in working time
// (working_hours) or outside it (off_hours) on the catalog's calendar. An
// event the rule does not see matches none of its conditions. Sees does
// not allocate.
func (r *Rule) Sees(ev *cityhubv1.Event) bool {
	if r.Active == "" {
		return true
	}
	cal, err := r.helpers.calendar()
	if err != nil {
		return false // Compile refuses active without a calendar
	}
	return cal.IsWorking(occurredAt(ev)) == (r.Active == ActiveWorkingHours)
}
