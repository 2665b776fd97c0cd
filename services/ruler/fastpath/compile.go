package fastpath

import (
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// testFunc is the name the patched programs call; a rule's own text cannot
// reach it, since rulepack compiles that text against rulepack.Env, which
// has no such name.
const testFunc = "__cityhub_test"

// env is the environment of the patched programs: the event as
// rulepack.Env shows it (filled only when a program needs it) and the
// runner's test function.
type env struct {
	*rulepack.Env
	Test func(int) bool `expr:"__cityhub_test"`
}

// Program is one condition as a Runner runs it.
type Program struct {
	// eval, when set, is the condition compiled to Go: what is left of it
	// after the patch is only tests joined by &&, || and !, so the VM has
	// nothing to add but its own overhead.
	eval    func(*cityhubv1.Event) bool
	program *vm.Program
	// patched reports whether program is the patched one, run against an
	// env; otherwise it is rulepack's, run against rulepack.Env.
	patched bool
	// needsEnv reports whether program still reads the event through
	// rulepack.Env, which must then be filled first.
	needsEnv bool
}

// NeedsEnv reports whether p reads the event through rulepack.Env: the
// Env given to NewRunner must then hold the current event when p runs.
func (p *Program) NeedsEnv() bool { return p.needsEnv }

// Patched reports whether p runs the patched program; otherwise it runs
// rulepack's own, which is a gap in the patch, never a fault of the rule.
func (p *Program) Patched() bool { return p.patched }

// Native reports whether p runs as Go, without the VM.
func (p *Program) Native() bool { return p.eval != nil }

// Conditions holds the programs of the conditions of a list of rules and
// the tests they call. It is read-only, and safe to share between
// goroutines.
type Conditions struct {
	rules []programs
	tests []test
}

// programs are the programs of one rule.
type programs struct {
	when, clear Program
}

// Compile compiles the conditions and clear conditions of rules, which
// rulepack compiled, with the comparison patch. A condition that does not
// compile that way runs as rulepack compiled it.
func Compile(rules []*rulepack.Rule) *Conditions {
	c := &Conditions{rules: make([]programs, len(rules))}
	for i, r := range rules {
		c.rules[i].when = c.compile(r, r.When, r.Program)
		if r.ClearProgram != nil {
			c.rules[i].clear = c.compile(r, r.ClearWhen, r.ClearProgram)
		}
	}
	// The tests are all in place now: point the Go conditions at them.
	for i := range c.rules {
		for _, p := range []*Program{&c.rules[i].when, &c.rules[i].clear} {
			if p.patched && !p.needsEnv {
				p.eval, _ = goCondition(p.program.Node(), c.tests)
			}
		}
	}
	return c
}

// When returns the program of the condition of rule i (its index in the
// rules given to Compile).
func (c *Conditions) When(i int) *Program { return &c.rules[i].when }

// Clear returns the program of the clear condition of rule i, or nil when
// the rule has none.
func (c *Conditions) Clear(i int) *Program {
	if c.rules[i].clear.program == nil {
		return nil
	}
	return &c.rules[i].clear
}

// compile compiles src, a condition of r, with the options rulepack
// compiled it with and the patch.
func (c *Conditions) compile(r *rulepack.Rule, src string, fallback *vm.Program) Program {
	n := len(c.tests)
	opts := append(r.ConditionOptions(env{}), expr.Patch(&patcher{tests: &c.tests}))
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		c.tests = c.tests[:n]
		return Program{program: fallback, needsEnv: true}
	}
	return Program{program: prog, patched: true, needsEnv: readsEvent(prog.Node())}
}

// goCondition compiles n to Go when it is made of calls of tests, bool
// literals, &&, || and ! alone; both operators short-circuit as expr's do.
func goCondition(n ast.Node, tests []test) (func(*cityhubv1.Event) bool, bool) {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*cityhubv1.Event) bool { return v }, true
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != testFunc || len(n.Arguments) != 1 {
			return nil, false
		}
		k, ok := n.Arguments[0].(*ast.IntegerNode)
		if !ok || k.Value < 0 || k.Value >= len(tests) {
			return nil, false
		}
		return tests[k.Value].compile(), true
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil, false
		}
		f, ok := goCondition(n.Node, tests)
		if !ok {
			return nil, false
		}
		return func(ev *cityhubv1.Event) bool { return !f(ev) }, true
	case *ast.BinaryNode:
		l, lok := goCondition(n.Left, tests)
		r, rok := goCondition(n.Right, tests)
		if !lok || !rok {
			return nil, false
		}
		switch n.Operator {
		case "&&", "and":
			return func(ev *cityhubv1.Event) bool { return l(ev) && r(ev) }, true
		case "||", "or":
			return func(ev *cityhubv1.Event) bool { return l(ev) || r(ev) }, true
		}
	}
	return nil, false
}

// readsEvent reports whether the tree still names the event.
func readsEvent(n ast.Node) bool {
	v := &eventFinder{}
	ast.Walk(&n, v)
	return v.found
}

type eventFinder struct{ found bool }

func (v *eventFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value != testFunc {
		v.found = true
	}
	if _, ok := (*n).(*ast.PointerNode); ok {
		// # inside a predicate may range over event data; it needs the env
		// only when an identifier does, but saying so is cheap and safe.
		v.found = true
	}
}

// patcher replaces comparisons it can evaluate directly with calls of
// testFunc, appending the tests to *tests.
type patcher struct {
	tests *[]test
}

func (p *patcher) Visit(n *ast.Node) {
	b, ok := (*n).(*ast.BinaryNode)
	if !ok {
		return
	}
	op, ok := testOps[b.Operator]
	if !ok {
		return
	}
	left, lok := operandOf(b.Left)
	var right operand
	rok := false
	if op == opIn {
		// Only a string field in a list of strings, which is plain string
		// equality with each (the optimizer makes the list a set).
		var set map[string]struct{}
		set, rok = stringSet(b.Right)
		right = operand{set: set}
		lok = lok && left.read != nil && left.isString()
	} else {
		right, rok = operandOf(b.Right)
	}
	if !lok || !rok || (left.read == nil && right.read == nil && op != opIn) {
		return
	}
	switch op {
	case opContains, opStartsWith, opEndsWith:
		// Strings on both sides by type (fields, literals); attributes keep
		// the VM's type assertion and its message.
		if !left.isString() || !right.isString() {
			return
		}
	}
	k := len(*p.tests)
	*p.tests = append(*p.tests, test{op: op, left: left, right: right})
	ast.Patch(n, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: testFunc},
		Arguments: []ast.Node{&ast.IntegerNode{Value: k}},
	})
}

// operand is one side of a test: event data, or a literal.
type operand struct {
	// read reads the operand from an event; nil for a literal.
	read func(*cityhubv1.Event) value
	// text reads a string field; nil for anything else.
	text func(*cityhubv1.Event) string
	// name is the attribute's name, for an attribute.
	name string
	attr bool
	// lit is the literal, or an attribute's default (`attrs.x ?? lit`)
	// when hasDefault; boxed is the constant the VM would push for it.
	lit        value
	boxed      any
	hasDefault bool
	// set is the right side of `in`.
	set map[string]struct{}
}

func (o operand) get(ev *cityhubv1.Event) value {
	if o.read == nil {
		return o.lit
	}
	return o.read(ev)
}

// boxedValue returns the operand's value v as the VM would push it.
func (o operand) boxedValue(v value) any {
	if o.read == nil {
		return o.boxed
	}
	return v.box()
}

// isString reports whether the operand is a string by type: a string
// literal or a string field (attributes are typed only at run time).
func (o operand) isString() bool {
	if o.read == nil {
		return o.lit.kind == kindString
	}
	return o.text != nil
}

// operandOf returns the operand n is, when it is one a test can read:
// event.F for a string or number field F, event.attrs.NAME (or ["NAME"]),
// the latter optionally followed by `?? literal`, or a scalar literal.
func operandOf(n ast.Node) (operand, bool) {
	if lit, boxed, ok := literalOf(n); ok {
		return operand{lit: lit, boxed: boxed}, true
	}
	if b, ok := n.(*ast.BinaryNode); ok && b.Operator == "??" {
		o, ok := operandOf(b.Left)
		def, boxed, lok := literalOf(b.Right)
		if !ok || !lok || !o.attr || o.hasDefault {
			// A typed field is never nil: `??` on it is left to the VM.
			return operand{}, false
		}
		name := o.name
		return operand{name: name, attr: true, lit: def, boxed: boxed, hasDefault: true, read: func(ev *cityhubv1.Event) value {
			if v := attrValue(ev.GetAttrs().GetFields()[name]); v.kind != kindNil {
				return v
			}
			return def
		}}, true
	}
	path, ok := eventPath(n)
	if !ok {
		return operand{}, false
	}
	if len(path) == 2 && path[0] == "attrs" {
		name := path[1]
		return operand{name: name, attr: true, read: func(ev *cityhubv1.Event) value {
			return attrValue(ev.GetAttrs().GetFields()[name])
		}}, true
	}
	f, ok := fields[strings.Join(path, ".")]
	if !ok {
		return operand{}, false
	}
	return operand{read: f.read, text: f.text}, true
}

// eventPath returns the property names of event.A.B..., when n is such a
// chain of plain property accesses.
func eventPath(n ast.Node) ([]string, bool) {
	var rev []string
	for {
		switch m := n.(type) {
		case *ast.MemberNode:
			p, ok := m.Property.(*ast.StringNode)
			if !ok || m.Method {
				return nil, false
			}
			rev = append(rev, p.Value)
			n = m.Node
		case *ast.IdentifierNode:
			if m.Value != "event" || len(rev) == 0 {
				return nil, false
			}
			out := make([]string, len(rev))
			for i, s := range rev {
				out[len(rev)-1-i] = s
			}
			return out, true
		default:
			return nil, false
		}
	}
}

// field reads one event field.
type field struct {
	read func(*cityhubv1.Event) value
	// text is the getter of a string field; nil for a number.
	text func(*cityhubv1.Event) string
}

// fields are the event fields a test reads directly, by path: the string
// and number fields of rulepack's table, which fills rulepack.Env. Time
// fields are left to the VM.
var fields = fieldReaders()

func fieldReaders() map[string]field {
	m := map[string]field{}
	for _, f := range rulepack.EventFields() {
		switch f.Kind {
		case rulepack.FieldString:
			text := f.Text
			m[f.Path] = field{text: text, read: func(ev *cityhubv1.Event) value { return str(text(ev)) }}
		case rulepack.FieldNumber:
			number := f.Number
			m[f.Path] = field{read: func(ev *cityhubv1.Event) value { return num(number(ev)) }}
		}
	}
	return m
}

// literalOf returns a scalar literal's value and the constant the VM
// pushes for it.
func literalOf(n ast.Node) (value, any, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return num(float64(n.Value)), n.Value, true
	case *ast.FloatNode:
		return num(n.Value), n.Value, true
	case *ast.StringNode:
		return str(n.Value), n.Value, true
	case *ast.BoolNode:
		return boolean(n.Value), n.Value, true
	case *ast.NilNode:
		return value{}, nil, true
	case *ast.UnaryNode:
		if n.Operator != "-" {
			return value{}, nil, false
		}
		switch x := n.Node.(type) {
		case *ast.IntegerNode:
			return num(float64(-x.Value)), -x.Value, true
		case *ast.FloatNode:
			return num(-x.Value), -x.Value, true
		}
	}
	return value{}, nil, false
}

// stringSet returns the strings of a list literal of strings.
func stringSet(n ast.Node) (map[string]struct{}, bool) {
	a, ok := n.(*ast.ArrayNode)
	if !ok || len(a.Nodes) == 0 {
		return nil, false
	}
	set := make(map[string]struct{}, len(a.Nodes))
	for _, e := range a.Nodes {
		s, ok := e.(*ast.StringNode)
		if !ok {
			return nil, false
		}
		set[s.Value] = struct{}{}
	}
	return set, true
}
