package rulecheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Lint returns warnings about compiled packs: rules the ruler accepts but
// that probably do not do what their author meant.
//
//   - a rule id used by more than one pack (alerts stay apart, since they
//     are named pack/id, but people reading a screen mix them up);
//   - an event.type compared with a type the catalog does not have;
//   - a when or clear_when that no event type of the catalog can pass;
//   - a group_by label that no event type the rule can match sets (the
//     label is always empty), that only some of them set, or `type` on a
//     rule that matches one type only (the label never varies);
//   - no group_by (one alert for the whole city);
//   - an alert that can never resolve: no resolve_after and no clear_when.
//
// With a nil catalog only the checks that need none are made.
func Lint(packs []*rulepack.Pack, cat *catalog.Catalog) []Diagnostic {
	var out []Diagnostic
	warn := func(p *rulepack.Pack, r *rulepack.Rule, field string, format string, args ...any) {
		at, ok := r.Fields[field]
		if !ok {
			at = r.Pos
		}
		out = append(out, Diagnostic{Level: Warning, File: p.File, Pos: at, Rule: r.ID, Message: fmt.Sprintf(format, args...)})
	}
	firstUse := map[string]*rulepack.Pack{}
	for _, p := range packs {
		for _, r := range p.Rules {
			if other, dup := firstUse[r.ID]; dup && other != p {
				warn(p, r, "id", "rule id %q is also used by pack %s (%s); the alerts are told apart by pack, people may not", r.ID, other.Name, other.File)
			} else if !dup {
				firstUse[r.ID] = p
			}
			if len(r.GroupBy) == 0 {
				warn(p, r, "id", "no group_by: every event the rule matches joins one alert for the whole city")
			}
			if r.ResolveAfter == 0 && r.ClearWhen == "" && r.Absent == nil { // a sign of life resolves an absence
				warn(p, r, "id", "the alert never resolves by itself: give resolve_after or clear_when")
			}
			if cat == nil {
				continue
			}
			all := catalogTypes(cat)
			matched := all
			for _, c := range []struct{ field, src string }{{"when", r.When}, {"clear_when", r.ClearWhen}} {
				if c.src == "" {
					continue
				}
				tree, err := parser.Parse(c.src)
				if err != nil {
					continue // compiled already; cannot happen
				}
				a := typeAnalysis{all: all}
				t, _ := a.sets(tree.Node)
				for _, u := range a.unknown {
					warn(p, r, c.field, "%s: event.type is compared with %q, which is not an event type of the catalog", c.field, u)
				}
				if len(t) == 0 {
					warn(p, r, c.field, "%s can never hold: no event type of the catalog passes its event.type tests", c.field)
				}
				if c.field == "when" {
					matched = t
				}
			}
			if len(matched) > 0 {
				out = append(out, lintGroupBy(p, r, cat, matched)...)
			}
		}
	}
	return out
}

// lintGroupBy checks each group_by label against the types a rule can
// match.
func lintGroupBy(p *rulepack.Pack, r *rulepack.Rule, cat *catalog.Catalog, matched typeSet) []Diagnostic {
	var out []Diagnostic
	at, ok := r.Fields["group_by"]
	if !ok {
		at = r.Pos
	}
	warn := func(format string, args ...any) {
		out = append(out, Diagnostic{Level: Warning, File: p.File, Pos: at, Rule: r.ID, Message: fmt.Sprintf(format, args...)})
	}
	types := slices.Sorted(maps.Keys(matched))
	for _, l := range r.GroupBy {
		if l == "type" && len(types) == 1 {
			warn("group_by: the rule matches event type %s only, so the label type never varies", types[0])
			continue
		}
		attr, ok := strings.CutPrefix(l, "attrs.")
		if !ok {
			continue
		}
		var without []string
		for _, t := range types {
			et, _ := cat.EventType(t)
			if _, declared := et.Attrs[attr]; !declared {
				without = append(without, t)
			}
		}
		switch {
		case len(without) == len(types):
			warn("group_by: no event type the rule can match (%s) declares attribute %q, so the label %s is always empty", listText(types, 6), attr, l)
		case len(without) > 0:
			warn("group_by: event type %s does not declare attribute %q: alerts from those events group under an empty %s", listText(without, 6), attr, l)
		}
	}
	return out
}

func listText(s []string, max int) string {
	if len(s) <= max {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:max], ", ") + fmt.Sprintf(" and %d more", len(s)-max)
}

// typeSet is a set of event type codes.
type typeSet map[string]bool

func catalogTypes(cat *catalog.Catalog) typeSet {
	s := typeSet{}
	for _, t := range cat.EventTypes {
		s[t.Code] = true
	}
	return s
}

func (s typeSet) and(o typeSet) typeSet {
	out := typeSet{}
	for t := range s {
		if o[t] {
			out[t] = true
		}
	}
	return out
}

func (s typeSet) or(o typeSet) typeSet {
	out := maps.Clone(s)
	maps.Copy(out, o)
	return out
}

func (s typeSet) minus(o typeSet) typeSet {
	out := typeSet{}
	for t := range s {
		if !o[t] {
			out[t] = true
		}
	}
	return out
}

// typeAnalysis works out, for a condition, the event types for which it
// may be true and those for which it may be false, from its tests of
// event.type combined with &&, ||, ! and ?:. Any other part of the
// condition may be either for any type. The answer is safe: a type left
// out of the "may be true" set can never make the condition true.
type typeAnalysis struct {
	all     typeSet
	unknown []string // literals compared with event.type that the catalog lacks
}

func (a *typeAnalysis) sets(n ast.Node) (mayTrue, mayFalse typeSet) {
	switch n := n.(type) {
	case *ast.BoolNode:
		if n.Value {
			return a.all, typeSet{}
		}
		return typeSet{}, a.all
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			t, f := a.sets(n.Node)
			return f, t
		}
	case *ast.ConditionalNode:
		ct, cf := a.sets(n.Cond)
		t1, f1 := a.sets(n.Exp1)
		t2, f2 := a.sets(n.Exp2)
		return ct.and(t1).or(cf.and(t2)), ct.and(f1).or(cf.and(f2))
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and":
			lt, lf := a.sets(n.Left)
			rt, rf := a.sets(n.Right)
			return lt.and(rt), lf.or(rf)
		case "||", "or":
			lt, lf := a.sets(n.Left)
			rt, rf := a.sets(n.Right)
			return lt.or(rt), lf.and(rf)
		case "==", "!=":
			lit, ok := typeLiteral(n.Left, n.Right)
			if !ok {
				break
			}
			eq := a.literal(lit)
			if n.Operator == "==" {
				return eq, a.all.minus(eq)
			}
			return a.all.minus(eq), eq
		case "in", "not in":
			arr, ok := n.Right.(*ast.ArrayNode)
			if !ok || !rulepack.IsEventField(n.Left, "type") {
				break
			}
			in := typeSet{}
			for _, e := range arr.Nodes {
				s, ok := e.(*ast.StringNode)
				if !ok {
					return a.all, a.all
				}
				in = in.or(a.literal(s.Value))
			}
			if n.Operator == "in" {
				return in, a.all.minus(in)
			}
			return a.all.minus(in), in
		}
	}
	return a.all, a.all
}

// literal returns the set holding the type lit, empty (and noted) when the
// catalog lacks it.
func (a *typeAnalysis) literal(lit string) typeSet {
	if !a.all[lit] {
		if !slices.Contains(a.unknown, lit) {
			a.unknown = append(a.unknown, lit)
		}
		return typeSet{}
	}
	return typeSet{lit: true}
}

// typeLiteral returns "x" when one side is event.type and the other the
// string literal "x".
func typeLiteral(l, r ast.Node) (string, bool) {
	if rulepack.IsEventField(l, "type") {
		if s, ok := r.(*ast.StringNode); ok {
			return s.Value, true
		}
	}
	if rulepack.IsEventField(r, "type") {
		if s, ok := l.(*ast.StringNode); ok {
			return s.Value, true
		}
	}
	return "", false
}
