package rulecheck

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	notifyconfig "github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
	"github.com/cityhub/cityhub/services/ruler/alerting"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
	"github.com/cityhub/cityhub/services/ruler/ruletest"
)

// Level says whether a diagnostic refuses a pack or only points at a
// likely mistake.
type Level int

const (
	// Error: the ruler would refuse the pack, or a test file cannot run.
	Error Level = iota
	// Warning: the pack loads, but a rule does something its author
	// probably did not mean.
	Warning
)

// Diagnostic is one problem found in a file.
type Diagnostic struct {
	Level Level
	File  string
	Pos   rulepack.Pos
	// Rule is the id of the rule the problem is in, if any.
	Rule    string
	Message string
}

// String returns "file:line:col: [warning: ][rule ID: ]message".
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Pos.Line, d.Pos.Column)
	}
	b.WriteString(": ")
	if d.Level == Warning {
		b.WriteString("warning: ")
	}
	if d.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", d.Rule)
	}
	b.WriteString(d.Message)
	return b.String()
}

// CheckResult is what Check found.
type CheckResult struct {
	Diagnostics []Diagnostic
	// Packs are the packs that compiled, Rules their rules, Tests the test
	// files that parsed, Notify the notify.yaml files that loaded.
	Packs, Rules, Tests, Notify int
}

// Errors returns the number of error diagnostics.
func (r *CheckResult) Errors() int {
	n := 0
	for _, d := range r.Diagnostics {
		if d.Level == Error {
			n++
		}
	}
	return n
}

// Warnings returns the number of warnings.
func (r *CheckResult) Warnings() int { return len(r.Diagnostics) - r.Errors() }

// Check validates and compiles every pack in files against cat exactly as
// the ruler would, reporting every problem of every file; then lints the
// packs that compiled (see Lint) and checks that each test file parses and
// that its expectations name rules and labels its packs can produce.
func Check(files Files, cat *catalog.Catalog) *CheckResult {
	res := &CheckResult{}
	order := map[string]int{}
	var good []*rulepack.Pack
	byName := map[string]*rulepack.Pack{}
	for i, f := range files.Packs {
		order[f] = i
		p, diags := checkPack(f, cat)
		res.Diagnostics = append(res.Diagnostics, diags...)
		if p == nil {
			continue
		}
		if other, dup := byName[p.Name]; dup {
			res.Diagnostics = append(res.Diagnostics, Diagnostic{File: f, Pos: rulepack.Pos{Line: 1, Column: 1},
				Message: fmt.Sprintf("pack %q is also defined in %s; pack names must be unique", p.Name, other.File)})
			continue
		}
		byName[p.Name] = p
		good = append(good, p)
	}
	res.Diagnostics = append(res.Diagnostics, Lint(good, cat)...)
	res.Packs = len(good)
	res.Rules = len(rulepack.Rules(good))
	for i, f := range files.Tests {
		order[f] = len(files.Packs) + i
		if d := checkTestFile(f, cat); len(d) > 0 {
			res.Diagnostics = append(res.Diagnostics, d...)
			continue
		}
		res.Tests++
	}
	for i, f := range files.Notify {
		order[f] = len(files.Packs) + len(files.Tests) + i
		if d := checkNotify(f, cat); len(d) > 0 {
			res.Diagnostics = append(res.Diagnostics, d...)
			continue
		}
		res.Notify++
	}
	slices.SortStableFunc(res.Diagnostics, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(order[a.File], order[b.File]), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
	return res
}

// checkPack parses and compiles one pack; it returns the pack when it has
// no errors.
func checkPack(file string, cat *catalog.Catalog) (*rulepack.Pack, []Diagnostic) {
	b, err := readLimited(file, rulepack.MaxFileBytes)
	if err != nil {
		return nil, []Diagnostic{{File: file, Message: err.Error()}}
	}
	p, err := rulepack.Parse(file, b)
	if err == nil {
		err = rulepack.Compile(p, cat)
	}
	if err == nil {
		err = alerting.CheckSupported([]*rulepack.Pack{p})
	}
	if err != nil {
		return nil, fromErrors(file, err)
	}
	return p, nil
}

// checkNotify loads notify.yaml as the notify service would — routes,
// receivers, rosters and templates against the catalog — without resolving
// its secrets, which the checking machine need not have.
func checkNotify(file string, cat *catalog.Catalog) []Diagnostic {
	b, err := readLimited(file, notifyconfig.MaxFileBytes)
	if err != nil {
		return []Diagnostic{{File: file, Message: err.Error()}}
	}
	_, err = notifyconfig.Parse(file, b, cat)
	if err == nil {
		return nil
	}
	var ye yamlfile.Errors
	if !errors.As(err, &ye) {
		return []Diagnostic{{File: file, Message: err.Error()}}
	}
	out := make([]Diagnostic, len(ye))
	for i, e := range ye {
		out[i] = Diagnostic{File: e.File, Pos: rulepack.Pos{Line: e.Pos.Line, Column: e.Pos.Column}, Message: e.Err.Error()}
	}
	return out
}

// fromErrors turns the errors of rulepack into diagnostics.
func fromErrors(file string, err error) []Diagnostic {
	var pe rulepack.Errors
	if !errors.As(err, &pe) {
		return []Diagnostic{{File: file, Message: err.Error()}}
	}
	out := make([]Diagnostic, len(pe))
	for i, e := range pe {
		out[i] = Diagnostic{File: e.File, Pos: e.Pos, Rule: e.Rule, Message: e.Err.Error()}
	}
	return out
}

// checkTestFile parses a test file and checks its expectations against its
// packs. Errors of the packs themselves are reported where the packs are
// checked; here they only say that the tests cannot run.
func checkTestFile(file string, cat *catalog.Catalog) []Diagnostic {
	f, err := ruletest.ReadFile(file)
	if err != nil {
		return testDiagnostics(file, strings.TrimPrefix(err.Error(), file+": "))
	}
	packs, err := rulepack.LoadFiles(cat, f.PackFiles(file)...)
	if err != nil {
		return []Diagnostic{{File: file, Message: "the packs under test do not load: " + firstLine(err.Error())}}
	}
	if err := f.CheckAgainst(packs, cat); err != nil {
		return testDiagnostics(file, err.Error())
	}
	return nil
}

// testDiagnostics splits a joined error into one diagnostic per line,
// taking the "line N: " that the YAML decoder gives as the position.
func testDiagnostics(file, msg string) []Diagnostic {
	var out []Diagnostic
	for _, l := range strings.Split(msg, "\n") {
		d := Diagnostic{File: file, Message: l}
		var line int
		if n, _ := fmt.Sscanf(l, "line %d:", &line); n == 1 {
			d.Pos = rulepack.Pos{Line: line, Column: 1}
			d.Message = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
		}
		out = append(out, d)
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " (and more)"
	}
	return s
}
