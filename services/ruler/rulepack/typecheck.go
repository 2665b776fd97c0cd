package rulepack

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// typedEnv is Env as the type check sees it. Env's attributes are a
// map[string]any, so expr types every attribute as unknown and lets
// `event.attrs.depth + 1` through as a condition; the check replaces each
// attribute it reads by one of these fields, which has the catalog's type.
type typedEnv struct {
	Env
	Number float64 `expr:"__cityhub_number"`
	String string  `expr:"__cityhub_string"`
	Bool   bool    `expr:"__cityhub_bool"`
}

// typedAttrs names the field of typedEnv that stands for an attribute of
// each type.
var typedAttrs = map[catalog.AttrType]string{
	catalog.AttrNumber: "__cityhub_number",
	catalog.AttrString: "__cityhub_string",
	catalog.AttrBool:   "__cityhub_bool",
}

// typeCheck compiles a condition once more, for its types only, with each
// attribute it reads typed as the catalog declares it for types. It reports
// what does not type-check, and a result that is not provably bool: expr's
// AsBool lets a result of unknown type through, to fail at run time.
func (c *compiler) typeCheck(r *Rule, src source, types []string) bool {
	opts := append(exprOptions(c.h, typedEnv{}),
		// The optimizer may fold nodes; the checked tree keeps every type.
		expr.Optimize(false),
		expr.Patch(attrTyper{c: c, types: types}))
	prog, err := expr.Compile(src.text, opts...)
	if err != nil {
		c.exprError(r, src, err)
		return false
	}
	if t := prog.Node().Type(); t.Kind() != reflect.Bool {
		c.errorf(src.at, r.ID, "%s: expected bool, but got %s", src.what, typeText(t))
		return false
	}
	return true
}

// typeText names a result type for a rule's author.
func typeText(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Interface:
		return "a value of unknown type"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// attrTyper replaces event.attrs.NAME by the typedEnv field of its
// declared type. An attribute without one type (undeclared, or declared
// differently) is reported by checkVisitor and stays unknown here.
type attrTyper struct {
	c     *compiler
	types []string
}

func (p attrTyper) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok || m.Method || p.c.cat == nil {
		return
	}
	name, ok := attrName(m)
	if !ok {
		return
	}
	if id, ok := typedAttrs[p.c.attrType(name, p.types)]; ok {
		ast.Patch(n, &ast.IdentifierNode{Value: id})
	}
}

// declared is one type an attribute is declared with, and the event types
// that declare it so.
type declared struct {
	typ   catalog.AttrType
	types []string
}

// attrTypes returns how the event types in types (every type of the
// catalog when nil) declare attr: one entry per attribute type, in catalog
// order. More than one entry means the attribute's type depends on the
// event type.
func (c *compiler) attrTypes(attr string, types []string) []declared {
	var out []declared
	add := func(t *catalog.EventType) {
		at, ok := t.Attrs[attr]
		if !ok {
			return
		}
		for i := range out {
			if out[i].typ == at {
				if !slices.Contains(out[i].types, t.Code) {
					out[i].types = append(out[i].types, t.Code)
				}
				return
			}
		}
		out = append(out, declared{typ: at, types: []string{t.Code}})
	}
	if types == nil {
		for i := range c.cat.EventTypes {
			add(&c.cat.EventTypes[i])
		}
		return out
	}
	for _, name := range types {
		if t, ok := c.cat.EventType(name); ok {
			add(t)
		}
	}
	return out
}

// attrDeclared reports whether attr is declared for one of types, or for
// any type when types is nil.
func (c *compiler) attrDeclared(attr string, types []string) bool {
	return len(c.attrTypes(attr, types)) > 0
}

// attrType returns the type attr is declared with for types (every type
// when nil), or "" when it is not declared or declared with more than one.
func (c *compiler) attrType(attr string, types []string) catalog.AttrType {
	if d := c.attrTypes(attr, types); len(d) == 1 {
		return d[0].typ
	}
	return ""
}

// conflictText says how the event types declare an attribute differently:
// "a string in a, b and a number in c".
func conflictText(decls []declared) string {
	parts := make([]string, len(decls))
	for i, d := range decls {
		parts[i] = fmt.Sprintf("a %s in %s", d.typ, strings.Join(d.types, ", "))
	}
	last := len(parts) - 1
	return strings.Join(parts[:last], ", ") + " and " + parts[last]
}
