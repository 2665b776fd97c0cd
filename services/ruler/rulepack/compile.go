package rulepack

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// Builtins are the expr builtins a condition may call. Left out: now, date
// and the like (a rule must give the same answer on redelivery), and
// whatever builds large values (repeat, toJSON, fromJSON, ...).
var Builtins = []string{
	"len", "abs", "ceil", "floor", "round", "max", "min",
	"lower", "upper", "trim", "trimPrefix", "trimSuffix", "hasPrefix", "hasSuffix",
	"indexOf", "split", "join", "int", "float", "string",
	"all", "any", "none", "one", "count", "filter", "map", "sum", "mean",
	"first", "last", "keys", "values", "get", "duration",
}

// MaxOperands bounds the operands kept to explain one rule.
const MaxOperands = 8

func exprOptions(asBool bool) []expr.Option {
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.DisableAllBuiltins(),
		expr.MaxNodes(MaxExprNodes),
	}
	for _, b := range Builtins {
		opts = append(opts, expr.EnableBuiltin(b))
	}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	return opts
}

// Compile compiles every rule of p: conditions, clear conditions and titles.
// With a catalog it also checks departments, event types and the attributes
// conditions read against it. It reports every problem as an Errors value.
func Compile(p *Pack, cat *catalog.Catalog) error {
	c := compiler{file: p.File, cat: cat}
	if cat != nil && p.Owner != "" {
		if _, ok := cat.Department(p.Owner); !ok {
			c.errorf(Pos{}, "", "owner %q is not a department of the catalog", p.Owner)
		}
	}
	for _, r := range p.Rules {
		c.rule(r)
	}
	sortErrors(c.errs)
	return c.errs.err()
}

type compiler struct {
	file string
	cat  *catalog.Catalog
	errs Errors
}

func (c *compiler) errorf(at Pos, rule, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Pos: at, Rule: rule, Err: fmt.Errorf(format, args...)})
}

func (c *compiler) rule(r *Rule) {
	if r.When != "" {
		r.Program, r.Types = c.condition(r, "when", r.When)
		if r.Program != nil {
			r.Operands = operands(r.When)
		}
	}
	if r.ClearWhen != "" {
		r.ClearProgram, r.ClearTypes = c.condition(r, "clear_when", r.ClearWhen)
	}
	if r.Title != "" {
		t, err := ParseTitle(r.Name(), r.Title)
		if err != nil {
			c.errorf(r.Fields["title"], r.ID, "title: %v", err)
		} else {
			r.TitleTemplate = t
		}
	}
	if d := r.Dispatch; d != nil && c.cat != nil {
		for _, dep := range append([]string{d.Lead}, d.Assist...) {
			if _, ok := c.cat.Department(dep); dep != "" && !ok {
				c.errorf(r.Fields["dispatch"], r.ID, "dispatch: %q is not a department of the catalog", dep)
			}
		}
	}
	if c.cat != nil {
		for _, l := range r.GroupBy {
			if attr, ok := trimAttr(l); ok && !c.attrDeclared(attr, r.Types) {
				c.errorf(r.Fields["group_by"], r.ID, "group_by: attribute %q is not declared for %s", attr, typesText(r.Types))
			}
		}
	}
}

// condition checks, analyses and compiles one condition.
func (c *compiler) condition(r *Rule, field, src string) (*vm.Program, []string) {
	at := r.Fields[field]
	if err := CheckExpr(src); err != nil {
		c.errorf(at, r.ID, "%s: %v", field, err)
		return nil, nil
	}
	tree, err := parser.Parse(src)
	if err != nil {
		c.exprError(r, field, src, err)
		return nil, nil
	}
	types := eventTypes(tree.Node)
	if c.cat != nil && !c.checkCatalog(r, field, tree, types) {
		return nil, nil
	}
	prog, err := expr.Compile(src, exprOptions(true)...)
	if err != nil {
		c.exprError(r, field, src, err)
		return nil, nil
	}
	return prog, types
}

// exprError reports a compile error at its place in the file when the
// expression sits on one line of it, else at the field.
func (c *compiler) exprError(r *Rule, field, src string, err error) {
	at := r.Fields[field]
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		if !strings.Contains(src, "\n") && fe.Line <= 1 {
			at.Column += fe.Column + quoteOffset(r, field)
		}
	}
	c.errorf(at, r.ID, "%s: %s", field, msg)
}

// quoteOffset is 1 when the field's value is written in quotes, whose
// opening mark the expression's own columns do not count.
func quoteOffset(r *Rule, field string) int {
	if r.quoted != nil && r.quoted[field] {
		return 1
	}
	return 0
}

// eventTypes returns the event types a condition restricts itself to, when
// it is a conjunction with a conjunct event.type == "x" or event.type in
// ["x", "y"]; nil otherwise.
func eventTypes(n ast.Node) []string {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and":
			if t := eventTypes(n.Left); t != nil {
				return t
			}
			return eventTypes(n.Right)
		case "==":
			if isEventField(n.Left, "type") {
				if s, ok := n.Right.(*ast.StringNode); ok {
					return []string{s.Value}
				}
			}
			if isEventField(n.Right, "type") {
				if s, ok := n.Left.(*ast.StringNode); ok {
					return []string{s.Value}
				}
			}
		case "in":
			if a, ok := n.Right.(*ast.ArrayNode); ok && isEventField(n.Left, "type") {
				var out []string
				for _, e := range a.Nodes {
					s, ok := e.(*ast.StringNode)
					if !ok {
						return nil
					}
					out = append(out, s.Value)
				}
				return out
			}
		}
	}
	return nil
}

// isEventField reports whether n is event.NAME.
func isEventField(n ast.Node, name string) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "event" {
		return false
	}
	p, ok := m.Property.(*ast.StringNode)
	return ok && p.Value == name
}

// attrName returns NAME when n is event.attrs.NAME or event.attrs["NAME"].
func attrName(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || !isEventField(m.Node, "attrs") {
		return "", false
	}
	p, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return p.Value, true
}

// checkCatalog checks a condition's event types and the attributes it reads
// against the catalog: a type it names must exist, an attribute must be
// declared for the types it can match, and an attribute compared with a
// literal must have the literal's type.
func (c *compiler) checkCatalog(r *Rule, field string, tree *parser.Tree, types []string) bool {
	ok := true
	at := r.Fields[field]
	for _, t := range types {
		if _, found := c.cat.EventType(t); !found {
			c.errorf(at, r.ID, "%s: event type %q is not in the catalog", field, t)
			ok = false
		}
	}
	if !ok {
		return false
	}
	v := &catalogVisitor{c: c, types: types}
	ast.Walk(&tree.Node, v)
	for _, msg := range v.problems {
		c.errorf(at, r.ID, "%s: %s", field, msg)
	}
	return len(v.problems) == 0
}

type catalogVisitor struct {
	c        *compiler
	types    []string
	problems []string
}

func (v *catalogVisitor) Visit(n *ast.Node) {
	if name, ok := attrName(*n); ok {
		if !v.c.attrDeclared(name, v.types) {
			v.problems = append(v.problems, fmt.Sprintf("attribute %q is not declared for %s", name, typesText(v.types)))
		}
		return
	}
	b, ok := (*n).(*ast.BinaryNode)
	if !ok {
		return
	}
	for _, pair := range [2][2]ast.Node{{b.Left, b.Right}, {b.Right, b.Left}} {
		name, ok := attrName(pair[0])
		if !ok {
			continue
		}
		var want catalog.AttrType
		switch pair[1].(type) {
		case *ast.IntegerNode, *ast.FloatNode:
			want = catalog.AttrNumber
		case *ast.StringNode:
			want = catalog.AttrString
		case *ast.BoolNode:
			want = catalog.AttrBool
		default:
			continue
		}
		if got := v.c.attrType(name, v.types); got != "" && got != want {
			v.problems = append(v.problems, fmt.Sprintf("attribute %q is a %s, compared with a %s", name, got, want))
		}
	}
}

// attrDeclared reports whether attr is declared for one of types, or for
// any type when types is nil.
func (c *compiler) attrDeclared(attr string, types []string) bool {
	return c.attrType(attr, types) != ""
}

// attrType returns the declared type of attr for types (any type when nil).
func (c *compiler) attrType(attr string, types []string) catalog.AttrType {
	if types == nil {
		for _, t := range c.cat.EventTypes {
			if at, ok := t.Attrs[attr]; ok {
				return at
			}
		}
		return ""
	}
	for _, name := range types {
		if t, ok := c.cat.EventType(name); ok {
			if at, ok := t.Attrs[attr]; ok {
				return at
			}
		}
	}
	return ""
}

func typesText(types []string) string {
	if types == nil {
		return "any event type of the catalog"
	}
	return "event type " + strings.Join(types, ", ")
}

var comparisons = map[string]bool{
	"==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"in": true, "not in": true, "matches": true, "contains": true,
	"startsWith": true, "endsWith": true,
}

// operands compiles the non-literal operands of the comparisons in src,
// for explanations; an operand that does not compile on its own is skipped.
func operands(src string) []Operand {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	v := &operandVisitor{seen: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	return v.out
}

type operandVisitor struct {
	seen map[string]bool
	out  []Operand
}

func (v *operandVisitor) Visit(n *ast.Node) {
	b, ok := (*n).(*ast.BinaryNode)
	if !ok || !comparisons[b.Operator] {
		return
	}
	for _, side := range []ast.Node{b.Left, b.Right} {
		if literal(side) || len(v.out) >= MaxOperands {
			continue
		}
		src := side.String()
		if v.seen[src] {
			continue
		}
		v.seen[src] = true
		prog, err := expr.Compile(src, exprOptions(false)...)
		if err != nil {
			continue
		}
		v.out = append(v.out, Operand{Source: src, Program: prog})
	}
}

func literal(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return true
	case *ast.ArrayNode:
		for _, e := range n.Nodes {
			if !literal(e) {
				return false
			}
		}
		return true
	}
	return false
}
