package fastpath

import (
	"strings"

	"github.com/expr-lang/expr/vm/runtime"
	"google.golang.org/protobuf/types/known/structpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// testOp is the comparison a test makes.
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

// testOps are the operators a test replaces, by expr's names.
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

func str(s string) value   { return value{kind: kindString, str: s} }
func num(f float64) value  { return value{kind: kindNumber, num: f} }
func boolean(b bool) value { return value{kind: kindBool, b: b} }

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
	if get := l.text; get != nil {
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
