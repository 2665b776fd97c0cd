package rulepack

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Limits on what mutes alerts.
const (
	MaxSilences     = 1000
	MaxInhibits     = 100
	MaxMatchers     = 16
	MaxMatchValues  = 64
	MaxSilenceSpan  = 366 * 24 * time.Hour
	maxMatcherValue = 256
)

// Matchers select alerts: every name must match one of its values. Names
// are rule ("pack/id"), pack, severity, and the group labels (district,
// street, grid, type, source, attrs.NAME). A label an alert does not group
// by is read from where the alert happened: district, street and grid from
// its location, type from its event type.
type Matchers map[string][]string

// Matches reports whether value, which returns an alert's value for a
// name, satisfies every matcher.
func (m Matchers) Matches(value func(name string) string) bool {
	for name, values := range m {
		if !slices.Contains(values, value(name)) {
			return false
		}
	}
	return true
}

// String returns the matchers as name=value pairs in name order.
func (m Matchers) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+strings.Join(m[k], "|"))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Silence mutes the alerts its matchers select from Starts until Ends: a
// maintenance window, planned roadworks. A muted alert still exists, is
// published and shown, and names the silence in silenced_by; it opens no
// case.
type Silence struct {
	// Name identifies the silence; it is unique across packs.
	Name      string
	Matchers  Matchers
	Starts    time.Time
	Ends      time.Time
	Reason    string
	CreatedBy string
	// Pack is the pack declaring the silence, Pos where it starts.
	Pack string
	Pos  Pos
}

// Active reports whether the silence mutes alerts at t.
func (s *Silence) Active(t time.Time) bool {
	return !t.Before(s.Starts) && t.Before(s.Ends)
}

// Inhibit mutes the alerts Target selects while an alert Source selects is
// firing with the same values of the Equal labels: a district-wide flood
// alert inhibits the street waterlogging alerts of its district. The
// muted alert names the inhibiting alerts in inhibited_by.
type Inhibit struct {
	Source Matchers
	Target Matchers
	Equal  []string
	// Pack is the pack declaring the rule, Pos where it starts.
	Pack string
	Pos  Pos
}

// SourceRules returns the rules whose alerts may inhibit: Source must name
// them.
func (in *Inhibit) SourceRules() []string { return in.Source["rule"] }

// TargetRules returns the rules whose alerts may be inhibited.
func (in *Inhibit) TargetRules() []string { return in.Target["rule"] }

var ruleNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_-]{0,63}$`)

// validMatcher reports whether name may be matched on.
func validMatcher(name string) bool {
	return name == "rule" || name == "pack" || name == "severity" || ValidLabel(name)
}

// matchers reads a mapping of names to a value or a list of values.
func (p *yamlParser) matchers(n *yaml.Node, what string) Matchers {
	m := Matchers{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping of names to values, got %s", what, kind(n))
		return m
	}
	if len(n.Content)/2 > MaxMatchers {
		p.errorf(n, "%s: more than %d matchers", what, MaxMatchers)
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode || !validMatcher(name) {
			p.errorf(k, "%s: %q cannot be matched: want %s", what, truncate(name, 64), matcherChoices)
			continue
		}
		if _, dup := m[name]; dup {
			p.errorf(k, "%s: %q given twice", what, name)
			continue
		}
		var values []string
		one := func(vn *yaml.Node) {
			s := p.str(vn, what+"."+name, maxMatcherValue)
			if s == "" {
				if vn.Kind == yaml.ScalarNode && vn.Tag != "!!null" {
					p.errorf(vn, "%s.%s: empty value", what, name)
				}
				return
			}
			switch name {
			case "rule":
				if !ruleNameRE.MatchString(s) {
					p.errorf(vn, "%s.rule: %q is not a rule name like pack/rule-id", what, s)
					return
				}
			case "severity":
				if _, err := cityhubv1.ParseSeverity(s); err != nil {
					p.errorf(vn, "%s.severity: %v", what, err)
					return
				}
			}
			values = append(values, s)
		}
		if v.Kind == yaml.SequenceNode {
			p.list(v, what+"."+name, MaxMatchValues, one)
		} else {
			one(v)
		}
		if len(values) > 0 {
			m[name] = values
		}
	}
	return m
}

func (p *yamlParser) timestamp(n *yaml.Node, what string) time.Time {
	s := p.str(n, what, 64)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		p.errorf(n, "%s: %q is not an RFC 3339 time like 2025-07-01T08:00:00+08:00", what, s)
		return time.Time{}
	}
	return t
}

func (p *yamlParser) silence(n *yaml.Node, pack string) *Silence {
	s := &Silence{Pack: pack, Pos: pos(n)}
	seen := p.fields(n, "silence", map[string]func(*yaml.Node){
		"name":       func(v *yaml.Node) { s.Name = p.name(v, "silence.name") },
		"matchers":   func(v *yaml.Node) { s.Matchers = p.matchers(v, "silence.matchers") },
		"starts":     func(v *yaml.Node) { s.Starts = p.timestamp(v, "silence.starts") },
		"ends":       func(v *yaml.Node) { s.Ends = p.timestamp(v, "silence.ends") },
		"reason":     func(v *yaml.Node) { s.Reason = p.str(v, "silence.reason", MaxTextBytes) },
		"created_by": func(v *yaml.Node) { s.CreatedBy = p.str(v, "silence.created_by", 128) },
	})
	if n.Kind != yaml.MappingNode {
		return s
	}
	for _, f := range []string{"name", "matchers", "starts", "ends", "reason", "created_by"} {
		if _, ok := seen[f]; !ok {
			p.errorf(n, "silence: missing field %q", f)
		}
	}
	if v := seen["matchers"]; v != nil && v.Kind == yaml.MappingNode && len(s.Matchers) == 0 {
		p.errorf(v, "silence.matchers: a silence must select something; it would mute every alert")
	}
	if !s.Starts.IsZero() && !s.Ends.IsZero() {
		switch {
		case !s.Ends.After(s.Starts):
			p.errorf(seen["ends"], "silence.ends: %s is not after starts", s.Ends.Format(time.RFC3339))
		case s.Ends.Sub(s.Starts) > MaxSilenceSpan:
			p.errorf(seen["ends"], "silence: longer than %d days", int(MaxSilenceSpan.Hours()/24))
		}
	}
	return s
}

func (p *yamlParser) inhibit(n *yaml.Node, pack string) *Inhibit {
	in := &Inhibit{Pack: pack, Pos: pos(n)}
	seen := p.fields(n, "inhibit", map[string]func(*yaml.Node){
		"source": func(v *yaml.Node) { in.Source = p.matchers(v, "inhibit.source") },
		"target": func(v *yaml.Node) { in.Target = p.matchers(v, "inhibit.target") },
		"equal": func(v *yaml.Node) {
			p.list(v, "inhibit.equal", MaxGroupBy, func(ln *yaml.Node) {
				l := p.str(ln, "inhibit.equal", 80)
				switch {
				case l == "":
				case !ValidLabel(l):
					p.errorf(ln, "inhibit.equal: %q is not a label: want %s", l, labelChoices)
				case slices.Contains(in.Equal, l):
					p.errorf(ln, "inhibit.equal: %q given twice", l)
				default:
					in.Equal = append(in.Equal, l)
				}
			})
		},
	})
	if n.Kind != yaml.MappingNode {
		return in
	}
	for _, f := range []string{"source", "target"} {
		if v, ok := seen[f]; !ok {
			p.errorf(n, "inhibit: missing field %q", f)
		} else if v.Kind == yaml.MappingNode && len((map[string]Matchers{"source": in.Source, "target": in.Target})[f]["rule"]) == 0 {
			p.errorf(v, "inhibit.%s: name the rule or rules (rule: pack/id)", f)
		}
	}
	return in
}

// checkMuteRules checks that the rules silences and inhibit rules name
// exist among packs, and that silence names are unique. Loading reports
// these with the other problems of the packs.
func checkMuteRules(packs []*Pack) Errors {
	var errs Errors
	rules := map[string]bool{}
	for _, p := range packs {
		for _, r := range p.Rules {
			rules[r.Name()] = true
		}
	}
	check := func(p *Pack, at Pos, what string, m Matchers) {
		for _, r := range m["rule"] {
			if !rules[r] {
				errs = append(errs, &Error{File: p.File, Pos: at, Err: fmt.Errorf("%s: rule %q is not in any loaded pack", what, r)})
			}
		}
	}
	names := map[string]string{}
	for _, p := range packs {
		for _, s := range p.Silences {
			check(p, s.Pos, "silence "+s.Name, s.Matchers)
			if other, dup := names[s.Name]; dup {
				errs = append(errs, &Error{File: p.File, Pos: s.Pos, Err: fmt.Errorf("silence %q is also defined in %s", s.Name, other)})
			}
			names[s.Name] = p.File
		}
		for _, in := range p.Inhibits {
			check(p, in.Pos, "inhibit.source", in.Source)
			check(p, in.Pos, "inhibit.target", in.Target)
		}
	}
	return errs
}
