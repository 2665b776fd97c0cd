package engine

// Direct comparisons: how a worker evaluates conditions without allocating.
//
// Conditions are compiled by package rulepack against rulepack.Env, whose
// attributes are a map[string]any. Filling that map boxes every number and
// string of an event into an interface (one allocation each), and every
// field the VM reads through reflection is boxed again. For a stream where
// most events match no rule, that boxing is most of the cost.
//
// So the engine compiles each condition a second time, from the same text,
// with a patch that replaces every comparison of event data with a literal
// (or with other event data) by a call __cityhub_test(k). Test k reads its
// operands straight from the protobuf event into a small typed value and
// compares them in Go; the VM only sees the int constant k going in and a
// bool coming out, neither of which allocates. What the patch does not
// cover (time fields, arithmetic, builtins, `matches`, ...) still reads the
// event through the embedded rulepack.Env, which the worker then fills for
// that event; a program that reads nothing else never needs it.
//
// The tests keep expr's semantics exactly: where the typed comparison
// cannot decide in the common way (a missing attribute compared for order,
// a list, mismatched kinds), it boxes its operands and defers to expr's own
// runtime functions, which panic as the VM would; the VM turns the panic
// into the rule's evaluation error.

import (
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
	"google.golang.org/protobuf/types/known/structpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// testFunc is the name the patched programs call; a rule's own text cannot
// reach it, since rulepack compiles that text against rulepack.Env, which
// has no such name.
const testFunc = "__cityhub_test"

// directEnv is the environment of the patched programs: the event as
// rulepack.Env shows it (filled only when a program needs it) and the
// worker's test function.
type directEnv struct {
	*rulepack.Env
	Test func(int) bool `expr:"__cityhub_test"`
}

// directProgram is one condition as the worker runs it.
type directProgram struct {
	// eval, when set, is the condition compiled to Go: what is left of it
	// after the patch is only tests joined by &&, || and !, so the VM has
	// nothing to add but its own overhead.
	eval    func(*cityhubv1.Event) bool
	program *vm.Program
	// patched reports whether program is the patched one, run against a
	// directEnv; otherwise it is rulepack's, run against rulepack.Env.
	patched bool
	// needsEnv reports whether program still reads the event through
	// rulepack.Env, which must then be filled first.
	needsEnv bool
}

// directRule holds the programs of one rule.
type directRule struct {
	when, clear directProgram
}

// directRules compiles the conditions of rules with the comparison patch.
// A condition that does not compile that way (which would be a gap in the
// patch, never a fault of the rule: rulepack compiled the same text) runs
// as rulepack compiled it.
func directRules(rules []*rulepack.Rule) ([]directRule, []test) {
	var tests []test
	out := make([]directRule, len(rules))
	for i, r := range rules {
		out[i].when = directCompile(r.When, r.Program, &tests)
		if r.ClearProgram != nil {
			out[i].clear = directCompile(r.ClearWhen, r.ClearProgram, &tests)
		}
	}
	// The tests are all in place now: point the Go conditions at them.
	for i := range out {
		for _, p := range []*directProgram{&out[i].when, &out[i].clear} {
			if p.patched && !p.needsEnv {
				p.eval, _ = goCondition(p.program.Node(), tests)
			}
		}
	}
	return out, tests
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

func directCompile(src string, fallback *vm.Program, tests *[]test) directProgram {
	n := len(*tests)
	p := &patcher{tests: tests}
	opts := []expr.Option{
		expr.Env(directEnv{}),
		expr.DisableAllBuiltins(),
		expr.MaxNodes(rulepack.MaxExprNodes),
		expr.AsBool(),
		expr.Patch(p),
	}
	for _, b := range rulepack.Builtins {
		opts = append(opts, expr.EnableBuiltin(b))
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		*tests = (*tests)[:n]
		return directProgram{program: fallback, needsEnv: true}
	}
	return directProgram{program: prog, patched: true, needsEnv: readsEvent(prog.Node())}
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

type testOp int

const (
	opEq testOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
	opContains
	opStartsWith
	opEndsWith
)

var testOps = map[string]testOp{
	"==": opEq, "!=": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
	"in": opIn, "contains": opContains, "startsWith": opStartsWith, "endsWith": opEndsWith,
}

// valueKind is the kind of a value as a condition sees it.
type valueKind uint8

const (
	kindNil valueKind = iota
	kindNumber
	kindString
	kindBool
	// kindOther is a list or an object attribute: only boxed comparisons.
	kindOther
)

// value is an operand's value, unboxed.
type value struct {
	kind valueKind
	num  float64
	str  string
	b    bool
	// raw is the attribute value of kindOther.
	raw *structpb.Value
}

// box returns v as the VM would hold it: what rulepack.Env puts in its
// attribute map (structpb's AsInterface is that conversion).
func (v value) box() any {
	switch v.kind {
	case kindNumber:
		return v.num
	case kindString:
		return v.str
	case kindBool:
		return v.b
	case kindOther:
		return v.raw.AsInterface()
	}
	return nil
}

func attrValue(x *structpb.Value) value {
	switch k := x.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return value{kind: kindNumber, num: k.NumberValue}
	case *structpb.Value_StringValue:
		return value{kind: kindString, str: k.StringValue}
	case *structpb.Value_BoolValue:
		return value{kind: kindBool, b: k.BoolValue}
	case *structpb.Value_ListValue, *structpb.Value_StructValue:
		return value{kind: kindOther, raw: x}
	}
	return value{} // absent or null: nil
}

// operand is one side of a test: event data, or a literal.
type operand struct {
	// read reads the operand from an event; nil for a literal.
	read func(*cityhubv1.Event) value
	// name is the field path (location.street) or, when attr, the
	// attribute's name.
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
	_, ok := stringGetters[o.name]
	return !o.attr && ok
}

// operandOf returns the operand n is, when it is one a test can read:
// event.F for a typed field F, event.attrs.NAME (or ["NAME"]), the latter
// optionally followed by `?? literal`, or a scalar literal.
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
	name := strings.Join(path, ".")
	f, ok := fields[name]
	if !ok {
		return operand{}, false
	}
	return operand{name: name, read: f}, true
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

// fields are the event fields a test reads directly, exactly as
// rulepack.Env.Reset fills them.
var fields = map[string]func(*cityhubv1.Event) value{
	"id":                func(ev *cityhubv1.Event) value { return str(ev.GetId()) },
	"source":            func(ev *cityhubv1.Event) value { return str(ev.GetSource()) },
	"type":              func(ev *cityhubv1.Event) value { return str(ev.GetType()) },
	"severity":          func(ev *cityhubv1.Event) value { return str(ev.GetSeverity().Name()) },
	"text":              func(ev *cityhubv1.Event) value { return str(ev.GetText()) },
	"location.district": func(ev *cityhubv1.Event) value { return str(ev.GetLocation().GetDistrict()) },
	"location.street":   func(ev *cityhubv1.Event) value { return str(ev.GetLocation().GetStreet()) },
	"location.grid":     func(ev *cityhubv1.Event) value { return str(ev.GetLocation().GetGrid()) },
	"location.address":  func(ev *cityhubv1.Event) value { return str(ev.GetLocation().GetAddress()) },
	"location.lon":      func(ev *cityhubv1.Event) value { return num(ev.GetLocation().GetLon()) },
	"location.lat":      func(ev *cityhubv1.Event) value { return num(ev.GetLocation().GetLat()) },
}

// stringGetters read the string fields among fields.
var stringGetters = map[string]func(*cityhubv1.Event) string{
	"id":                (*cityhubv1.Event).GetId,
	"source":            (*cityhubv1.Event).GetSource,
	"type":              (*cityhubv1.Event).GetType,
	"severity":          func(ev *cityhubv1.Event) string { return ev.GetSeverity().Name() },
	"text":              (*cityhubv1.Event).GetText,
	"location.district": func(ev *cityhubv1.Event) string { return ev.GetLocation().GetDistrict() },
	"location.street":   func(ev *cityhubv1.Event) string { return ev.GetLocation().GetStreet() },
	"location.grid":     func(ev *cityhubv1.Event) string { return ev.GetLocation().GetGrid() },
	"location.address":  func(ev *cityhubv1.Event) string { return ev.GetLocation().GetAddress() },
}

func str(s string) value   { return value{kind: kindString, str: s} }
func num(f float64) value  { return value{kind: kindNumber, num: f} }
func boolean(b bool) value { return value{kind: kindBool, b: b} }

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

// test is one comparison, evaluated on the current event.
type test struct {
	op          testOp
	left, right operand
}

// eval evaluates t on ev. It allocates only where it defers to expr's
// runtime, which the common cases never do.
func (t *test) eval(ev *cityhubv1.Event) bool {
	a := t.left.get(ev)
	if t.op == opIn {
		_, ok := t.right.set[a.str]
		return ok
	}
	b := t.right.get(ev)
	switch t.op {
	case opEq, opNe:
		eq, ok := equal(a, b)
		if !ok {
			eq = runtime.Equal(t.left.boxedValue(a), t.right.boxedValue(b))
		}
		return eq == (t.op == opEq)
	case opContains:
		return strings.Contains(a.str, b.str)
	case opStartsWith:
		return strings.HasPrefix(a.str, b.str)
	case opEndsWith:
		return strings.HasSuffix(a.str, b.str)
	}
	if a.kind == kindNumber && b.kind == kindNumber {
		return order(t.op, compareFloat(a.num, b.num))
	}
	if a.kind == kindString && b.kind == kindString {
		return order(t.op, strings.Compare(a.str, b.str))
	}
	// nil, bool or mixed kinds: the VM's runtime panics with its message,
	// which the VM reports as the rule's evaluation error.
	x, y := t.left.boxedValue(a), t.right.boxedValue(b)
	switch t.op {
	case opLt:
		return runtime.Less(x, y)
	case opLe:
		return runtime.LessOrEqual(x, y)
	case opGt:
		return runtime.More(x, y)
	default:
		return runtime.MoreOrEqual(x, y)
	}
}

// compile returns t.eval, or a shortcut of it for the commonest shapes: a
// string field against a string literal, and an attribute against a
// number literal while the attribute is a number (otherwise eval decides).
func (t *test) compile() func(*cityhubv1.Event) bool {
	l, r := t.left, t.right
	if get, ok := stringGetters[l.name]; ok && !l.attr && l.read != nil {
		if t.op == opIn {
			set := r.set
			return func(ev *cityhubv1.Event) bool { _, ok := set[get(ev)]; return ok }
		}
		if r.read == nil && r.lit.kind == kindString {
			lit := r.lit.str
			switch t.op {
			case opEq:
				return func(ev *cityhubv1.Event) bool { return get(ev) == lit }
			case opNe:
				return func(ev *cityhubv1.Event) bool { return get(ev) != lit }
			case opStartsWith:
				return func(ev *cityhubv1.Event) bool { return strings.HasPrefix(get(ev), lit) }
			}
		}
	}
	if l.attr && r.read == nil && r.lit.kind == kindNumber {
		name, lit, slow := l.name, r.lit.num, t.eval
		var cmp func(x float64) bool
		switch t.op {
		case opLt:
			cmp = func(x float64) bool { return x < lit }
		case opLe:
			cmp = func(x float64) bool { return x <= lit }
		case opGt:
			cmp = func(x float64) bool { return x > lit }
		case opGe:
			cmp = func(x float64) bool { return x >= lit }
		default:
			return t.eval
		}
		return func(ev *cityhubv1.Event) bool {
			if n, ok := ev.GetAttrs().GetFields()[name].GetKind().(*structpb.Value_NumberValue); ok {
				return cmp(n.NumberValue)
			}
			return slow(ev)
		}
	}
	return t.eval
}

// equal compares scalars as runtime.Equal does; ok is false when it cannot
// decide without boxing (a list or object attribute).
func equal(a, b value) (eq, ok bool) {
	if a.kind == kindOther || b.kind == kindOther {
		return false, false
	}
	if a.kind != b.kind {
		return false, true
	}
	switch a.kind {
	case kindNumber:
		return a.num == b.num, true
	case kindString:
		return a.str == b.str, true
	case kindBool:
		return a.b == b.b, true
	}
	return true, true // nil == nil
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case a == b:
		return 0
	}
	return 2 // NaN: every order comparison is false
}

func order(op testOp, c int) bool {
	if c == 2 {
		return false
	}
	switch op {
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	}
	return c >= 0
}

// directState is a worker's part of the direct evaluation.
type directState struct {
	env directEnv
	// cur is the event being evaluated; filled reports whether the
	// worker's rulepack.Env holds it yet.
	cur    *cityhubv1.Event
	filled bool
}

func (d *directState) init(w *Worker) {
	d.env.Env = &w.env
	// One closure per worker, made once: the programs call it with a
	// constant, and it reads the worker's current event.
	d.env.Test = func(k int) bool { return w.e.tests[k].eval(d.cur) }
}

// begin starts the evaluation of ev. The worker's rulepack.Env is filled
// later, and only when a program or a Result needs it.
func (w *Worker) begin(ev *cityhubv1.Event) {
	w.d.cur = ev
	w.d.filled = false
}

// fill fills the worker's rulepack.Env with the current event, once.
func (w *Worker) fill() {
	if !w.d.filled {
		w.env.Reset(w.d.cur)
		w.d.filled = true
	}
}

// holdsDirect runs p on the current event. When it holds, the worker's
// rulepack.Env is filled, so everything that builds a Result may read it.
func (w *Worker) holdsDirect(p *directProgram, m *ruleMetrics) bool {
	ok := w.verdict(p, m)
	if ok {
		w.fill()
	}
	return ok
}

// verdict runs p on the current event: the stateless path. For a program
// that does not need the environment it allocates nothing.
func (w *Worker) verdict(p *directProgram, m *ruleMetrics) bool {
	if p.needsEnv {
		w.fill()
	}
	var ok bool
	switch {
	case p.eval != nil:
		ok = w.runGo(p.eval, m)
	case p.patched:
		ok = w.run(p.program, &w.d.env, m)
	default:
		ok = w.holds(p.program, m)
	}
	return ok
}

// run is holds for a patched program.
func (w *Worker) run(p *vm.Program, env *directEnv, m *ruleMetrics) bool {
	v, err := w.vm.Run(p, env)
	if err != nil {
		m.errors.Inc()
		return false
	}
	b, ok := v.(bool)
	return ok && b
}

// runGo is holds for a condition compiled to Go. A test panics where the
// VM would fail (expr's runtime raised it); that is the rule's evaluation
// error, as the VM reports it.
func (w *Worker) runGo(eval func(*cityhubv1.Event) bool, m *ruleMetrics) (held bool) {
	defer func() {
		if recover() != nil {
			m.errors.Inc()
			held = false
		}
	}()
	return eval(w.d.cur)
}
