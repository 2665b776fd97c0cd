package rulepack

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Limits on what one pack may hold. They keep a hostile or mistaken pack
// from costing the ruler more than a few milliseconds and kilobytes.
const (
	MaxFileBytes    = 1 << 20
	MaxRules        = 1000
	MaxGroupBy      = 8
	MaxTextBytes    = 1024 // description, title, version
	MaxSummaryBytes = 4096
	MaxSteps        = 8
	MaxWindow       = 7 * 24 * time.Hour
	// MinAbsentFor is the shortest silence an absent rule may wait for:
	// the ruler looks for silences every few seconds.
	MinAbsentFor    = time.Minute
	MaxCount        = 100000
	MaxSLA          = 90 * 24 * time.Hour
	maxAssist       = 16
	maxVersionBytes = 64
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	labelRE = regexp.MustCompile(`^attrs\.[a-z0-9][a-z0-9_-]{0,63}$`)
)

// ValidLabel reports whether name may appear in group_by: the label of
// an event field (EventField.Label) or attrs.NAME.
func ValidLabel(name string) bool {
	return labelField(name) != nil || labelRE.MatchString(name)
}

// yamlParser collects the problems of one file.
type yamlParser struct {
	file string
	errs Errors
	rule string // the rule being parsed, for error context
}

func (p *yamlParser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Pos: pos(n), Rule: p.rule, Err: fmt.Errorf(format, args...)})
}

func (p *yamlParser) wrap(n *yaml.Node, err error) {
	p.errs = append(p.errs, &Error{File: p.file, Pos: pos(n), Rule: p.rule, Err: err})
}

func pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Column: n.Column}
}

// Parse parses and validates the pack in b, read from file, without
// compiling it. It reports every problem it finds as an Errors value; the
// pack is nil whenever the error is not.
func Parse(file string, b []byte) (pack *Pack, err error) {
	if len(b) > MaxFileBytes {
		return nil, Errors{{File: file, Err: fmt.Errorf("larger than %d bytes", MaxFileBytes)}}
	}
	var doc yaml.Node
	if err := decodeYAML(b, &doc); err != nil {
		return nil, Errors{{File: file, Pos: yamlErrorPos(err), Err: err}}
	}
	p := &yamlParser{file: file}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, Errors{{File: file, Err: errors.New("want one YAML document")}}
	}
	pack = p.pack(doc.Content[0])
	sortErrors(p.errs)
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return pack, nil
}

// decodeYAML decodes b into n. The decoder is a large body of code fed
// untrusted input; a panic in it becomes an error rather than a crash.
func decodeYAML(b []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML: %v", r)
		}
	}()
	if err := yaml.Unmarshal(b, n); err != nil {
		// The decoder puts "yaml: line N:" in front; the position goes
		// in front of the whole message instead.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := lineRE.FindStringSubmatchIndex(msg); m != nil && m[0] == 0 {
			return &syntaxError{line: atoi(msg[m[2]:m[3]]), msg: strings.TrimPrefix(msg[m[1]:], ": ")}
		}
		return &syntaxError{msg: msg}
	}
	return nil
}

var lineRE = regexp.MustCompile(`^line (\d+)`)

// syntaxError is a YAML syntax error; the decoder gives only its line.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return "malformed YAML: " + e.msg }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func yamlErrorPos(err error) Pos {
	var se *syntaxError
	if errors.As(err, &se) && se.line > 0 {
		return Pos{Line: se.line, Column: 1}
	}
	return Pos{}
}

func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	})
}

// fields walks the mapping n, calling the handler of each key and
// reporting keys without one, repeated keys and a node that is not a
// mapping. It returns the keys it saw.
func (p *yamlParser) fields(n *yaml.Node, what string, handlers map[string]func(*yaml.Node)) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping, got %s", what, kind(n))
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: keys must be plain names", what)
			continue
		}
		h, ok := handlers[k.Value]
		if !ok {
			p.errorf(k, "%s: unknown field %q", what, truncate(k.Value, 64))
			continue
		}
		if _, dup := seen[k.Value]; dup {
			p.errorf(k, "%s: field %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = v
		h(v)
	}
	return seen
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "something else"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// str reads a scalar string of at most max bytes.
func (p *yamlParser) str(n *yaml.Node, what string, max int) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: want a string, got %s", what, kind(n))
		return ""
	}
	if len(n.Value) > max {
		p.errorf(n, "%s: longer than %d bytes", what, max)
		return ""
	}
	return n.Value
}

// name reads a code-like name: lower-case letters, digits, - and _.
func (p *yamlParser) name(n *yaml.Node, what string) string {
	s := p.str(n, what, 64)
	if s != "" && !nameRE.MatchString(s) {
		p.errorf(n, "%s %q: want lower-case letters, digits, - and _", what, s)
		return ""
	}
	return s
}

func (p *yamlParser) duration(n *yaml.Node, what string, min, max time.Duration) time.Duration {
	s := p.str(n, what, 32)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(n, "%s: %q is not a duration like 90s, 10m or 2h", what, s)
		return 0
	}
	if d < min || d > max {
		p.errorf(n, "%s: %s is outside %s to %s", what, s, min, max)
		return 0
	}
	return d
}

func (p *yamlParser) integer(n *yaml.Node, what string, min, max int) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, "%s: want a whole number, got %s", what, kind(n))
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < min || v > max {
		p.errorf(n, "%s: want a whole number from %d to %d", what, min, max)
		return 0
	}
	return v
}

func (p *yamlParser) list(n *yaml.Node, what string, max int, item func(*yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s: want a list, got %s", what, kind(n))
		return
	}
	if len(n.Content) > max {
		p.errorf(n, "%s: more than %d items", what, max)
		return
	}
	for _, c := range n.Content {
		item(c)
	}
}

func (p *yamlParser) pack(n *yaml.Node) *Pack {
	pk := &Pack{File: p.file}
	var rules *yaml.Node
	seen := p.fields(n, "pack", map[string]func(*yaml.Node){
		"pack":    func(v *yaml.Node) { pk.Name = p.name(v, "pack") },
		"owner":   func(v *yaml.Node) { pk.Owner = p.name(v, "owner") },
		"version": func(v *yaml.Node) { pk.Version = p.str(v, "version", maxVersionBytes) },
		"rules":   func(v *yaml.Node) { rules = v },
		"silences": func(v *yaml.Node) {
			p.list(v, "silences", MaxSilences, func(sn *yaml.Node) { pk.Silences = append(pk.Silences, p.silence(sn, pk.Name)) })
		},
		"inhibit": func(v *yaml.Node) {
			p.list(v, "inhibit", MaxInhibits, func(in *yaml.Node) { pk.Inhibits = append(pk.Inhibits, p.inhibit(in, pk.Name)) })
		},
	})
	required := []string{"pack", "owner"}
	if seen["silences"] == nil && seen["inhibit"] == nil {
		// A pack may hold only silences or inhibit rules.
		required = append(required, "rules")
	}
	for _, f := range required {
		if _, ok := seen[f]; !ok && n.Kind == yaml.MappingNode {
			p.errorf(n, "missing field %q", f)
		}
	}
	if rules == nil {
		return pk
	}
	ids := map[string]bool{}
	p.list(rules, "rules", MaxRules, func(rn *yaml.Node) {
		r := p.ruleNode(rn, pk.Name)
		r.PackVersion = pk.Version
		if r.ID != "" {
			if ids[r.ID] {
				p.errorf(rn, "rule id %q used twice in the pack", r.ID)
			}
			ids[r.ID] = true
		}
		pk.Rules = append(pk.Rules, r)
	})
	if rules.Kind == yaml.SequenceNode && len(rules.Content) == 0 {
		p.errorf(rules, "rules: the pack has no rules")
	}
	return pk
}

func (p *yamlParser) ruleNode(n *yaml.Node, pack string) *Rule {
	r := &Rule{Pack: pack, Pos: pos(n), Fields: map[string]Pos{}}
	// Name the rule in later errors as soon as its id is known.
	p.rule = ""
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "id" && nameRE.MatchString(n.Content[i+1].Value) {
				p.rule = n.Content[i+1].Value
			}
		}
	}
	defer func() { p.rule = "" }()
	seen := p.fields(n, "rule", map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { r.ID = p.name(v, "id") },
		"description": func(v *yaml.Node) { r.Description = p.str(v, "description", MaxTextBytes) },
		"when":        func(v *yaml.Node) { r.When = p.str(v, "when", MaxExprBytes) },
		"severity":    func(v *yaml.Node) { r.Severity = p.severity(v, "severity") },
		"group_by": func(v *yaml.Node) {
			p.list(v, "group_by", MaxGroupBy, func(ln *yaml.Node) {
				l := p.str(ln, "group_by", 80)
				switch {
				case l == "":
				case !ValidLabel(l):
					p.errorf(ln, "group_by: %q is not a label: want %s", l, labelChoices)
				case slices.Contains(r.GroupBy, l):
					p.errorf(ln, "group_by: %q given twice", l)
				default:
					r.GroupBy = append(r.GroupBy, l)
				}
			})
		},
		"title":   func(v *yaml.Node) { r.Title = p.str(v, "title", MaxTextBytes) },
		"summary": func(v *yaml.Node) { r.Summary = p.str(v, "summary", MaxSummaryBytes) },
		"escalate": func(v *yaml.Node) {
			p.list(v, "escalate", MaxSteps, func(sn *yaml.Node) {
				if st := p.step(sn); st != nil {
					r.Escalate = append(r.Escalate, st)
				}
			})
		},
		"shadow": func(v *yaml.Node) { r.Shadow = p.boolean(v, "shadow") },
		"publish": func(v *yaml.Node) {
			p.list(v, "publish", 8, func(ln *yaml.Node) {
				t := p.str(ln, "publish", 16)
				switch {
				case t == "":
				case !slices.Contains(PublishTargets, t):
					p.errorf(ln, "publish: %q is not a place to publish to: want %s", t, strings.Join(PublishTargets, ", "))
				case slices.Contains(r.Publish, t):
					p.errorf(ln, "publish: %q given twice", t)
				default:
					r.Publish = append(r.Publish, t)
				}
			})
		},
		"count": func(v *yaml.Node) {
			c := &Count{}
			got := p.fields(v, "count", map[string]func(*yaml.Node){
				"at_least": func(v *yaml.Node) { c.AtLeast = p.integer(v, "count.at_least", 1, MaxCount) },
				"within":   func(v *yaml.Node) { c.Within = p.duration(v, "count.within", time.Second, MaxWindow) },
				"distinct": func(v *yaml.Node) {
					s := p.str(v, "count.distinct", 80)
					if s == "" {
						return
					}
					f, ok := FieldPath(s)
					if !ok {
						p.errorf(v, "count.distinct: %q is not an event field: want %s", s, distinctChoices)
						return
					}
					c.Distinct = f
				},
			})
			if v.Kind == yaml.MappingNode && (got["at_least"] == nil || got["within"] == nil) {
				p.errorf(v, "count: both at_least and within are required")
			}
			r.Count = c
		},
		"for":           func(v *yaml.Node) { r.For = p.duration(v, "for", 0, MaxWindow) },
		"resolve_after": func(v *yaml.Node) { r.ResolveAfter = p.duration(v, "resolve_after", time.Second, MaxWindow) },
		"clear_when":    func(v *yaml.Node) { r.ClearWhen = p.str(v, "clear_when", MaxExprBytes) },
		"dispatch":      func(v *yaml.Node) { r.Dispatch = p.dispatch(v) },
		"active":        func(v *yaml.Node) { r.Active = p.active(v) },
		"absent": func(v *yaml.Node) {
			a := &Absent{}
			// Without for, the compiler takes the wait from the catalog's
			// reports_every of the rule's event types.
			p.fields(v, "absent", map[string]func(*yaml.Node){
				"for": func(v *yaml.Node) { a.For = p.duration(v, "absent.for", MinAbsentFor, MaxWindow) },
			})
			r.Absent = a
		},
	})
	for k, v := range seen {
		r.Fields[k] = pos(v)
		if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			if r.quoted == nil {
				r.quoted = map[string]bool{}
			}
			r.quoted[k] = true
		}
		if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			if r.block == nil {
				r.block = map[string]bool{}
			}
			r.block[k] = true
		}
	}
	if n.Kind == yaml.MappingNode {
		for _, f := range []string{"id", "when", "severity"} {
			if _, ok := seen[f]; !ok {
				p.errorf(n, "missing field %q", f)
			}
		}
	}
	if r.For > 0 && r.ResolveAfter == 0 && r.ClearWhen == "" {
		// Nothing could then stop a pending alert from firing: `for`
		// would be a mere delay.
		p.errorf(seen["for"], "for: needs resolve_after or clear_when to say when the condition stops holding")
	}
	if r.Absent != nil {
		// An absence has no events of its own: it fires when they stop and
		// resolves with the next one, so what shapes an event-driven alert
		// has nothing to act on.
		if len(r.GroupBy) == 0 {
			p.errorf(seen["absent"], "absent: needs group_by to say what falls silent (a device, a street's cameras)")
		}
		for _, f := range []string{"count", "for", "resolve_after", "clear_when", "escalate"} {
			if v, ok := seen[f]; ok {
				p.errorf(v, "%s: an absent rule fires when its events stop and resolves with the next one; %s has nothing to act on", f, f)
			}
		}
	}
	for i, st := range r.Escalate {
		if st.Severity == r.Severity && st.Severity != 0 {
			p.errs = append(p.errs, &Error{File: p.file, Pos: st.Pos, Rule: p.rule,
				Err: fmt.Errorf("escalate: step %d gives the rule's own severity %s", i+1, st.Severity.Name())})
		}
	}
	return r
}

// step reads one escalate step: {when: EXPR, severity: LEVEL}.
func (p *yamlParser) step(n *yaml.Node) *Step {
	st := &Step{Pos: pos(n)}
	seen := p.fields(n, "escalate", map[string]func(*yaml.Node){
		"when": func(v *yaml.Node) {
			st.When = p.str(v, "escalate.when", MaxExprBytes)
			st.Pos = pos(v)
			st.quoted = v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
		},
		"severity": func(v *yaml.Node) { st.Severity = p.severity(v, "escalate.severity") },
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for _, f := range []string{"when", "severity"} {
		if _, ok := seen[f]; !ok {
			p.errorf(n, "escalate: missing field %q", f)
		}
	}
	return st
}

func (p *yamlParser) severity(v *yaml.Node, what string) cityhubv1.Severity {
	s := p.str(v, what, 16)
	if s == "" {
		return 0
	}
	sev, err := cityhubv1.ParseSeverity(s)
	if err != nil {
		p.errorf(v, "%s: %v", what, err)
	}
	return sev
}

// active reads a rule's active: working_hours or off_hours.
func (p *yamlParser) active(n *yaml.Node) Active {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "active: want working_hours or off_hours, got %s", kind(n))
		return ""
	}
	a := Active(n.Value)
	if !slices.Contains(activeValues, a) {
		p.errorf(n, "active: %q is neither working_hours nor off_hours", truncate(n.Value, 32))
		return ""
	}
	return a
}

func (p *yamlParser) boolean(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, "%s: want true or false, got %s", what, kind(n))
		return false
	}
	b, _ := strconv.ParseBool(n.Value)
	return b
}

// dispatch reads a rule's dispatch: a mapping, or the word default, which
// is the empty mapping: every field from the catalog.
func (p *yamlParser) dispatch(n *yaml.Node) *Dispatch {
	d := &Dispatch{}
	if n.Kind == yaml.ScalarNode && n.Value == "default" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return d
	}
	seen := p.fields(n, "dispatch", map[string]func(*yaml.Node){
		"lead":       func(v *yaml.Node) { d.Lead = p.name(v, "dispatch.lead") },
		"case_class": func(v *yaml.Node) { d.CaseClass = p.name(v, "dispatch.case_class") },
		"assist": func(v *yaml.Node) {
			p.list(v, "dispatch.assist", maxAssist, func(an *yaml.Node) {
				a := p.name(an, "dispatch.assist")
				if a == "" {
					return
				}
				if slices.Contains(d.Assist, a) {
					p.errorf(an, "dispatch.assist: %q given twice", a)
					return
				}
				d.Assist = append(d.Assist, a)
			})
		},
		"sla": func(v *yaml.Node) {
			p.fields(v, "dispatch.sla", map[string]func(*yaml.Node){
				"accept": func(v *yaml.Node) { d.Accept = p.duration(v, "dispatch.sla.accept", time.Minute, MaxSLA) },
				"handle": func(v *yaml.Node) { d.Handle = p.duration(v, "dispatch.sla.handle", time.Minute, MaxSLA) },
			})
		},
	})
	if d.Lead != "" && slices.Contains(d.Assist, d.Lead) {
		p.errorf(seen["assist"], "dispatch.assist: %q is already the lead", d.Lead)
	}
	if d.Accept > 0 && d.Handle > 0 && d.Handle < d.Accept {
		p.errorf(seen["sla"], "dispatch.sla: handle (%s) is shorter than accept (%s)", d.Handle, d.Accept)
	}
	return d
}

// trimAttr returns NAME for the label attrs.NAME.
func trimAttr(label string) (string, bool) { return strings.CutPrefix(label, "attrs.") }
