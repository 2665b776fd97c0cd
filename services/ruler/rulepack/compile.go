package rulepack

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

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

// Functions are the functions cityhub adds to the builtins:
//
//	in_area(event.location, "school-zones")  bool: the location lies in the
//	    catalog area of that name; the name must be a literal the catalog
//	    declares. False for a location without coordinates.
//	distance_m(a, b)  float: great-circle metres between a and b, each a
//	    location or a [lon, lat] pair. NaN — so that every comparison is
//	    false — when a location has no coordinates.
//	local_hour()  int: the hour (0–23) of event.occurred_at in the
//	    catalog's time zone (calendar.timezone).
//	working_time()  bool: event.occurred_at falls in working time on the
//	    catalog's calendar: inside the work hours of a working weekday that
//	    is not a holiday, or of a make-up working day.
//
// The last two take no arguments and read the event's own time, so a rule
// gives the same answer however late the event arrives. Without a catalog,
// a condition that calls in_area, local_hour or working_time is refused.
var Functions = []string{"in_area", "distance_m", "local_hour", "working_time"}

// MaxOperands bounds the entries kept to explain one rule.
const MaxOperands = 12

// exprOptions returns the options every expression of a pack compiles
// with, against env: Env, or a struct that embeds it (the type check's
// typedEnv, the engine's fast path). in_area reads the areas of h's
// catalog, the time functions its calendar.
func exprOptions(h *helpers, env any) []expr.Option {
	var cat *catalog.Catalog
	if h != nil {
		cat = h.cat
	}
	opts := []expr.Option{
		expr.Env(env),
		expr.DisableAllBuiltins(),
		expr.MaxNodes(MaxExprNodes),
		expr.Function("in_area", func(params ...any) (any, error) {
			loc, _ := params[0].(Location)
			name, _ := params[1].(string)
			if cat == nil || !loc.hasPoint() {
				return false, nil
			}
			a, ok := cat.Area(name)
			if !ok {
				return false, fmt.Errorf("in_area: no area %q", name)
			}
			return a.Contains(loc.Lon, loc.Lat), nil
		}, new(func(Location, string) bool)),
		expr.Function("distance_m", func(params ...any) (any, error) {
			var pts [2][2]float64
			for i, p := range params[:2] {
				pt, ok, err := point(p)
				if err != nil {
					return nil, fmt.Errorf("distance_m: %w", err)
				}
				if !ok {
					return math.NaN(), nil
				}
				pts[i] = pt
			}
			return catalog.DistanceM(pts[0][0], pts[0][1], pts[1][0], pts[1][1]), nil
		},
			new(func(Location, Location) float64),
			new(func(Location, []any) float64),
			new(func([]any, Location) float64),
			new(func([]any, []any) float64),
		),
	}
	opts = append(opts, timeOptions(h)...)
	for _, b := range Builtins {
		opts = append(opts, expr.EnableBuiltin(b))
	}
	return opts
}

// ConditionOptions returns the options r's conditions (when, clear_when,
// escalate) compiled with, against env instead of Env. A second compile of
// their text with these, and patches, accepts what Compile accepted and
// calls the same functions over the same catalog and calendar.
func (r *Rule) ConditionOptions(env any) []expr.Option {
	return append(exprOptions(r.helpers, env), expr.AsBool())
}

// hasPoint reports whether the location has coordinates: intake requires
// lon and lat together, and (0, 0) lies in no city.
func (l Location) hasPoint() bool { return l.Lon != 0 || l.Lat != 0 }

// point reads a location or a [lon, lat] pair; ok is false for a location
// without coordinates.
func point(v any) (pt [2]float64, ok bool, err error) {
	switch v := v.(type) {
	case Location:
		return [2]float64{v.Lon, v.Lat}, v.hasPoint(), nil
	case []any:
		if len(v) != 2 {
			return pt, false, fmt.Errorf("want a [lon, lat] pair, got %d numbers", len(v))
		}
		for i, x := range v {
			switch x := x.(type) {
			case int:
				pt[i] = float64(x)
			case float64:
				pt[i] = x
			default:
				return pt, false, fmt.Errorf("want a [lon, lat] pair of numbers, got %T", x)
			}
		}
		return pt, true, nil
	}
	return pt, false, fmt.Errorf("want a location or a [lon, lat] pair, got %T", v)
}

// Compile compiles every rule of p: conditions, clear conditions, escalate
// steps, titles and summaries. With a catalog it also checks departments,
// event types, areas and the attributes conditions read against it, and
// fills dispatch defaults from it; its calendar is what active and the time
// functions read. It reports every problem as an Errors value.
func Compile(p *Pack, cat *catalog.Catalog) error {
	return compile(p, newHelpers(cat))
}

// compile compiles p over h, which the packs of one load share.
func compile(p *Pack, h *helpers) error {
	c := compiler{file: p.File, cat: h.cat, h: h}
	if c.cat != nil && p.Owner != "" {
		if _, ok := c.cat.Department(p.Owner); !ok {
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
	h    *helpers
	errs Errors
}

func (c *compiler) errorf(at Pos, rule, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Pos: at, Rule: rule, Err: fmt.Errorf(format, args...)})
}

// source is an expression and where it is written.
type source struct {
	what   string // the field, for messages: "when", "escalate.when", ...
	text   string
	at     Pos
	quoted bool // written in quotes, whose opening mark columns do not count
	block  bool // a block scalar: its columns are not the file's
}

// pos returns the file position of the expression's offset-th character,
// or the field's position when the expression's columns cannot be mapped
// onto the file's.
func (s source) pos(offset int) Pos {
	if offset < 0 || s.block || strings.Contains(s.text, "\n") {
		return s.at
	}
	p := s.at
	p.Column += offset
	if s.quoted {
		p.Column++
	}
	return p
}

func (r *Rule) source(field string) source {
	return source{what: field, text: fieldText(r, field), at: r.Fields[field], quoted: r.quoted[field], block: r.block[field]}
}

func fieldText(r *Rule, field string) string {
	if field == "clear_when" {
		return r.ClearWhen
	}
	return r.When
}

func (c *compiler) rule(r *Rule) {
	r.helpers = c.h
	if r.Active != "" {
		if _, err := c.h.calendar(); err != nil {
			c.errorf(r.Fields["active"], r.ID, "active: %v", err)
		}
	}
	if r.When != "" {
		r.Program, r.Types = c.condition(r, r.source("when"), nil)
		if r.Program != nil {
			r.Operands = c.operands(r.When)
		}
	}
	if r.ClearWhen != "" {
		r.ClearProgram, r.ClearTypes = c.condition(r, r.source("clear_when"), nil)
	}
	for i, st := range r.Escalate {
		// A step sees only events that match when, so it is checked
		// against when's event types.
		src := source{what: fmt.Sprintf("escalate[%d].when", i), text: st.When, at: st.Pos, quoted: st.quoted}
		if st.When != "" {
			st.Program, _ = c.condition(r, src, r.Types)
		}
	}
	for _, t := range []struct {
		field, text string
		max         int
		out         **Title
	}{{"title", r.Title, MaxTitleBytes, &r.TitleTemplate}, {"summary", r.Summary, MaxSummaryBytes / 2, &r.SummaryTemplate}} {
		if t.text == "" {
			continue
		}
		tt, err := ParseTitle(r.Name(), t.text)
		if err != nil {
			c.errorf(r.Fields[t.field], r.ID, "%s: %v", t.field, err)
			continue
		}
		tt.max = t.max
		*t.out = tt
	}
	if r.Dispatch != nil {
		c.dispatch(r)
	}
	if r.Absent != nil && r.Absent.For == 0 {
		c.absentWait(r)
	}
	if c.cat != nil {
		for _, l := range r.GroupBy {
			if attr, ok := trimAttr(l); ok && !c.attrDeclared(attr, r.Types) {
				c.errorf(r.Fields["group_by"], r.ID, "group_by: attribute %q is not declared for %s", attr, typesText(r.Types))
			}
		}
		if r.Count != nil {
			if attr, ok := trimAttr(r.Count.Distinct); ok && !c.attrDeclared(attr, r.Types) {
				c.errorf(r.Fields["count"], r.ID, "count.distinct: attribute %q is not declared for %s", attr, typesText(r.Types))
			}
		}
	}
}

// dispatch checks a rule's dispatch and fills what it leaves out from the
// catalog: the lead is the owner of the rule's event type, the case class
// that type's class.
func (c *compiler) dispatch(r *Rule) {
	d, at := r.Dispatch, r.Fields["dispatch"]
	leadFromCatalog := d.Lead == ""
	if d.Lead == "" || d.CaseClass == "" {
		var owners, classes []string
		if c.cat != nil {
			for _, name := range r.Types {
				if t, ok := c.cat.EventType(name); ok {
					if !slices.Contains(owners, t.Owner) {
						owners = append(owners, t.Owner)
					}
					if t.Class != "" && !slices.Contains(classes, t.Class) {
						classes = append(classes, t.Class)
					}
				}
			}
		}
		if d.Lead == "" {
			switch {
			case c.cat == nil:
				c.errorf(at, r.ID, "dispatch: no lead, and no catalog to take the event type's owner from")
			case len(owners) == 0:
				c.errorf(at, r.ID, "dispatch: no lead, and when does not name its event type (event.type == \"...\"), whose owner would lead")
			case len(owners) > 1:
				c.errorf(at, r.ID, "dispatch: no lead, and the event types of when have different owners (%s); name the lead", strings.Join(owners, ", "))
			default:
				d.Lead = owners[0]
			}
		}
		if d.CaseClass == "" && len(classes) == 1 {
			d.CaseClass = classes[0]
		}
	}
	if leadFromCatalog && d.Lead != "" && slices.Contains(d.Assist, d.Lead) {
		// The parser reports a lead that is written and assists too.
		c.errorf(at, r.ID, "dispatch.assist: %q is already the lead (the owner of the event type)", d.Lead)
	}
	if c.cat != nil {
		for _, dep := range append([]string{d.Lead}, d.Assist...) {
			if _, ok := c.cat.Department(dep); dep != "" && !ok {
				c.errorf(at, r.ID, "dispatch: %q is not a department of the catalog", dep)
			}
		}
		if _, ok := c.cat.CaseClasses[d.CaseClass]; d.CaseClass != "" && !ok {
			c.errorf(at, r.ID, "dispatch: case class %q is not in the catalog's case_classes", d.CaseClass)
		}
	}
}

// absentWait gives an absent rule without for its wait from the catalog:
// catalog.AbsentReports of its event types' reports_every (the longest,
// when when names several), and MinAbsentFor at the least.
func (c *compiler) absentWait(r *Rule) {
	at := r.Fields["absent"]
	switch {
	case c.cat == nil:
		c.errorf(at, r.ID, "absent: no for, and no catalog to take the event type's reports_every from")
		return
	case len(r.Types) == 0:
		c.errorf(at, r.ID, "absent: no for, and when does not name its event type (event.type == \"...\"), whose reports_every would set it")
		return
	}
	var every time.Duration
	var unscheduled []string
	for _, name := range r.Types {
		t, ok := c.cat.EventType(name)
		if !ok || t.ReportInterval() == 0 {
			unscheduled = append(unscheduled, name)
			continue
		}
		every = max(every, t.ReportInterval())
	}
	if len(unscheduled) > 0 {
		c.errorf(at, r.ID, "absent: no for, and the catalog gives %s no reports_every: say how long a group may stay silent", strings.Join(unscheduled, ", "))
		return
	}
	r.Absent.For = max(catalog.AbsentReports*every, MinAbsentFor)
}

// condition checks, analyses and compiles one condition. types, when not
// nil, are the event types the condition is checked against; otherwise
// those its own text restricts it to, which it returns.
func (c *compiler) condition(r *Rule, src source, types []string) (*vm.Program, []string) {
	if err := CheckExpr(src.text); err != nil {
		c.errorf(src.at, r.ID, "%s: %v", src.what, err)
		return nil, nil
	}
	tree, err := parser.Parse(src.text)
	if err != nil {
		c.exprError(r, src, err)
		return nil, nil
	}
	own := eventTypes(tree.Node)
	if types == nil {
		types = own
	}
	if !c.check(r, src, tree, own, types) {
		return nil, nil
	}
	if c.cat != nil {
		// The type check below would refuse these too; this names the
		// attribute.
		if name, typ := c.resultAttr(tree.Node, types); typ != "" && typ != catalog.AttrBool {
			c.errorf(src.at, r.ID, "%s: expected bool, but got a %s (attribute %q)", src.what, typ, name)
			return nil, nil
		}
	}
	if !c.typeCheck(r, src, types) {
		return nil, nil
	}
	prog, err := expr.Compile(src.text, r.ConditionOptions(Env{})...)
	if err != nil {
		c.exprError(r, src, err)
		return nil, nil
	}
	return prog, own
}

// resultAttr returns the attribute a condition's value is, with its
// declared type: event.attrs.NAME, or event.attrs.NAME ?? default.
func (c *compiler) resultAttr(n ast.Node, types []string) (string, catalog.AttrType) {
	if b, ok := n.(*ast.BinaryNode); ok && b.Operator == "??" {
		n = b.Left
	}
	name, ok := attrName(n)
	if !ok {
		return "", ""
	}
	return name, c.attrType(name, types)
}

// exprError reports a compile error at its place in the file when the
// expression sits on one line of it, else at the field.
func (c *compiler) exprError(r *Rule, src source, err error) {
	at := src.at
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		if fe.Line <= 1 {
			at = src.pos(fe.Column)
		}
	}
	c.errorf(at, r.ID, "%s: %s", src.what, msg)
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
			if IsEventField(n.Left, "type") {
				if s, ok := n.Right.(*ast.StringNode); ok {
					return []string{s.Value}
				}
			}
			if IsEventField(n.Right, "type") {
				if s, ok := n.Left.(*ast.StringNode); ok {
					return []string{s.Value}
				}
			}
		case "in":
			if a, ok := n.Right.(*ast.ArrayNode); ok && IsEventField(n.Left, "type") {
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

// IsEventField reports whether n, a node of a parsed condition, is
// event.NAME; rule linters use it to read what a condition compares.
func IsEventField(n ast.Node, name string) bool {
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
	if !ok || !IsEventField(m.Node, "attrs") {
		return "", false
	}
	p, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return p.Value, true
}

// check checks a condition beyond what the expr compiler does: the event
// types it names and the attributes it reads against the catalog, and the
// arguments of in_area, distance_m and the time functions. Each problem is
// reported where it is in the file when the expression's columns map onto
// the file's.
func (c *compiler) check(r *Rule, src source, tree *parser.Tree, own, types []string) bool {
	ok := true
	if c.cat != nil {
		for _, t := range own {
			if _, found := c.cat.EventType(t); !found {
				c.errorf(src.at, r.ID, "%s: event type %q is not in the catalog", src.what, t)
				ok = false
			}
		}
		if !ok {
			return false
		}
	}
	v := &checkVisitor{c: c, types: types}
	ast.Walk(&tree.Node, v)
	for _, p := range v.problems {
		c.errorf(src.pos(p.offset), r.ID, "%s: %s", src.what, p.msg)
	}
	return len(v.problems) == 0
}

type problem struct {
	offset int
	msg    string
}

type checkVisitor struct {
	c        *compiler
	types    []string
	problems []problem
}

func (v *checkVisitor) add(n ast.Node, format string, args ...any) {
	v.problems = append(v.problems, problem{offset: n.Location().From, msg: fmt.Sprintf(format, args...)})
}

func (v *checkVisitor) Visit(n *ast.Node) {
	switch node := (*n).(type) {
	case *ast.CallNode:
		v.call(node)
		return
	case *ast.MemberNode:
		name, ok := attrName(node)
		if !ok || v.c.cat == nil {
			return
		}
		switch decls := v.c.attrTypes(name, v.types); {
		case len(decls) == 0:
			v.add(node, "attribute %q is not declared for %s", name, typesText(v.types))
		case len(decls) > 1 && v.types == nil:
			v.add(node, "attribute %q is %s: name the event type (event.type == \"...\")", name, conflictText(decls))
		case len(decls) > 1:
			v.add(node, "attribute %q is %s: split the rule by event type", name, conflictText(decls))
		}
		return
	case *ast.BinaryNode:
		if v.c.cat == nil {
			return
		}
		for _, pair := range [2][2]ast.Node{{node.Left, node.Right}, {node.Right, node.Left}} {
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
				v.add(pair[0], "attribute %q is a %s, compared with a %s", name, got, want)
			}
		}
	}
}

// call checks the arguments of in_area, distance_m and the time functions.
func (v *checkVisitor) call(n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	if isTimeFunction(id.Value) {
		if len(n.Arguments) > 0 {
			v.add(n, "%s takes no arguments: it reads event.occurred_at", id.Value)
		} else if _, err := v.c.h.calendar(); err != nil {
			v.add(n, "%s: %v", id.Value, err)
		}
		return
	}
	switch id.Value {
	case "in_area":
		if len(n.Arguments) != 2 {
			return // the compiler says what is wrong
		}
		s, ok := n.Arguments[1].(*ast.StringNode)
		switch {
		case !ok:
			v.add(n.Arguments[1], "in_area: the area must be a quoted name of a catalog area")
		case v.c.cat == nil:
			v.add(s, "in_area: no catalog to find area %q in", s.Value)
		default:
			if _, found := v.c.cat.Area(s.Value); !found {
				v.add(s, "in_area: area %q is not in the catalog", s.Value)
			}
		}
	case "distance_m":
		for _, a := range n.Arguments {
			arr, ok := a.(*ast.ArrayNode)
			if !ok {
				continue
			}
			if len(arr.Nodes) != 2 || !isNumber(arr.Nodes[0]) || !isNumber(arr.Nodes[1]) {
				v.add(a, "distance_m: want a location or a [lon, lat] pair of numbers")
				continue
			}
			lon, lat := number(arr.Nodes[0]), number(arr.Nodes[1])
			if lon < -180 || lon > 180 || lat < -90 || lat > 90 {
				v.add(a, "distance_m: [%v, %v] is not a [lon, lat] pair", lon, lat)
			}
		}
	}
}

func isNumber(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		return true
	case *ast.UnaryNode:
		return n.Operator == "-" && isNumber(n.Node)
	}
	return false
}

func number(n ast.Node) float64 {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return float64(n.Value)
	case *ast.FloatNode:
		return n.Value
	case *ast.UnaryNode:
		return -number(n.Node)
	}
	return 0
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

// operands compiles, for explanations, the leaves of a condition: each
// comparison's non-literal operands, then the comparison itself, and calls
// of in_area and working_time. A part that does not compile on its own is
// skipped.
func (c *compiler) operands(src string) []Operand {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	v := &operandVisitor{h: c.h, seen: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	return v.out
}

type operandVisitor struct {
	h    *helpers
	seen map[string]bool
	out  []Operand
}

func (v *operandVisitor) add(n ast.Node, leaf bool) {
	src := n.String()
	if v.seen[src] || len(v.out) >= MaxOperands {
		return
	}
	v.seen[src] = true
	prog, err := expr.Compile(src, exprOptions(v.h, Env{})...)
	if err != nil {
		return
	}
	v.out = append(v.out, Operand{Source: src, Program: prog, Leaf: leaf})
}

// Visit sees children before their parents, so a comparison nested in
// another's operand comes first.
func (v *operandVisitor) Visit(n *ast.Node) {
	switch node := (*n).(type) {
	case *ast.BinaryNode:
		if !comparisons[node.Operator] {
			return
		}
		for _, side := range []ast.Node{node.Left, node.Right} {
			if !literal(side) && !isComparison(side) {
				v.add(side, false)
			}
		}
		v.add(node, true)
	case *ast.CallNode:
		if id, ok := node.Callee.(*ast.IdentifierNode); ok && (id.Value == "in_area" || id.Value == "working_time") {
			v.add(node, true)
		}
	}
}

func isComparison(n ast.Node) bool {
	b, ok := n.(*ast.BinaryNode)
	return ok && comparisons[b.Operator]
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
