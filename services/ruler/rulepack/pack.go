package rulepack

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Pack is one parsed rule pack. Once compiled it is read-only and safe to
// share between goroutines.
type Pack struct {
	// File is the path the pack was read from, as given to the loader.
	File    string
	Name    string
	Owner   string
	Version string
	Rules   []*Rule
	// Silences mute alerts for a time; Inhibits mute alerts while others
	// fire. Both apply to the alerts of every pack, not only this one.
	Silences []*Silence
	Inhibits []*Inhibit
}

// Rule is one rule of a pack.
type Rule struct {
	// Pack is the name of the pack the rule belongs to, PackVersion its
	// version.
	Pack        string
	PackVersion string
	ID          string
	Description string
	When        string
	Severity    cityhubv1.Severity
	// GroupBy names the labels of the rule's alerts: district, street,
	// grid, type, source, or attrs.NAME.
	GroupBy []string
	Title   string
	// Summary is a longer text than the title, rendered the same way.
	Summary string
	// Escalate lists conditions with the severity each gives the alert,
	// tried in order on every matching event; the first that holds sets
	// the alert's severity, and when none does it is Severity.
	Escalate     []*Step
	Count        *Count
	For          time.Duration
	ResolveAfter time.Duration
	ClearWhen    string
	Dispatch     *Dispatch
	// Shadow rules are evaluated and their alerts recorded and published
	// marked shadow, but never dispatched.
	Shadow bool
	// Publish names where the rule's alerts are made public beyond the
	// hub: "cap", the city's CAP feed of warnings (PublishTargets).
	Publish []string
	// Absent makes the rule fire when its events stop: each event When
	// matches is a sign of life of its group, and the group's alert fires
	// once none has come for Absent.For, and resolves with the next one.
	Absent *Absent
	// Active, when set, restricts the rule to the events of working time
	// or of the rest of the time (see Sees); the others match none of its
	// conditions.
	Active Active

	// Pos is where the rule starts; Fields holds where each field's value
	// is, by field name.
	Pos    Pos
	Fields map[string]Pos
	quoted map[string]bool
	block  map[string]bool

	// Set by Compile.

	// Program is the compiled When; it returns bool.
	Program *vm.Program
	// ClearProgram is the compiled ClearWhen, or nil.
	ClearProgram *vm.Program
	// Operands are the non-literal operands of When's comparisons, for
	// explaining why a rule matched.
	Operands []Operand
	// TitleTemplate renders Title; nil when the rule has no title.
	TitleTemplate *Title
	// SummaryTemplate renders Summary; nil when the rule has no summary.
	SummaryTemplate *Title
	// Types lists the event types When can match, when its text makes that
	// plain (event.type == "x" as a conjunct, or event.type in [...]); nil
	// means any type.
	Types []string
	// ClearTypes is Types for ClearWhen.
	ClearTypes []string
	// helpers are the catalog Compile was given and its calendar: in_area
	// reads its areas, active and the time functions its calendar.
	helpers *helpers
}

// Name returns the rule's name as alerts carry it: "pack/id".
func (r *Rule) Name() string { return r.Pack + "/" + r.ID }

// Count asks for at least AtLeast matching events within Within before an
// alert fires.
type Count struct {
	AtLeast int
	Within  time.Duration
	// Distinct, when set, counts distinct values of this event field
	// instead of events: "source", "location.street", "attrs.caller_id"
	// (the forms Env.Value reads). An event whose field is empty does not
	// count.
	Distinct string
}

// Absent is the silence an absent rule waits for.
type Absent struct {
	// For is how long a group may go without a matching event.
	For time.Duration
}

// Step is one threshold of a rule's escalate list.
type Step struct {
	When     string
	Severity cityhubv1.Severity
	// Pos is where the step's when is.
	Pos    Pos
	quoted bool
	// Program is the compiled When (set by Compile).
	Program *vm.Program
}

// Dispatch says which departments a case opened from the rule's alert goes
// to and its deadlines; zero durations mean the case class's or the
// department's defaults. Compile fills Lead and CaseClass from the catalog
// when the rule leaves them out: the lead is the owner of the event type
// the rule matches, the class that event type's class.
type Dispatch struct {
	Lead      string
	Assist    []string
	Accept    time.Duration
	Handle    time.Duration
	CaseClass string
}

// Operand is one side of a comparison in a condition, compiled on its own.
type Operand struct {
	Source  string
	Program *vm.Program
	// Leaf marks a comparison or an in_area call, whose value is a bool;
	// the others are the operands of comparisons.
	Leaf bool
}

// PublishTargets are the places a rule may publish its alerts to.
var PublishTargets = []string{"cap"}

// Pos is a position in a file, 1-based.
type Pos struct {
	Line   int
	Column int
}

// Error is one problem of a pack, at a position of its file.
type Error struct {
	File string
	Pos  Pos
	// Rule is the id of the rule the problem is in, if any.
	Rule string
	Err  error
}

// Error returns "file:line:col: rule ID: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Pos.Line, e.Pos.Column)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one or more packs, in file and position
// order.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, nil when empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// ErrUnsupported marks a field that is parsed and valid but that the
// evaluator does not implement yet; a pack using it is refused.
var ErrUnsupported = errors.New("not supported yet")
