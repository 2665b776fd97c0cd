// Package ruletest runs rule tests (rules/tests/*.yaml): timed events fed
// to the packs under test, and expectations about which alerts are firing,
// pending or resolved at given moments, in the manner of promtool's rule
// tests. Tests run on a clock of their own against alertstate.Memory, the
// Go model of the alert state that the Redis scripts are held to, through
// the same processor as the ruler, so windows, clears and resolve_after
// behave as in production. The rulecheck command and go test both use it.
package ruletest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/alerting"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Start is the moment a test's clock starts unless the test gives its own
// start; events' `at` offsets count from it.
var Start = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

// Limits on one test file. A test file is written by hand; these only keep
// a mistaken one from running for long.
const (
	MaxFileBytes      = 1 << 20
	MaxTests          = 1000
	MaxEventsPerTest  = 10000
	MaxExpectsPerTest = 10000
	// MaxOffset bounds `at`: a test covers at most a month.
	MaxOffset = 31 * 24 * time.Hour
)

// States an expectation may name.
var States = []string{"firing", "pending", "resolved"}

// File is a parsed test file.
type File struct {
	Packs []string `yaml:"packs"`
	Tests []Case   `yaml:"tests"`
}

// Case is one test: events and expectations.
type Case struct {
	Name string `yaml:"name"`
	// Start is when the test's clock starts; the package's Start when nil.
	// Give it to test rules that depend on the time of day.
	Start  *time.Time    `yaml:"start"`
	Events []TimedEvent  `yaml:"events"`
	Expect []Expectation `yaml:"expect"`
}

// TimedEvent is an event sent at an offset from the test's start.
type TimedEvent struct {
	At    Duration `yaml:"at"`
	Event Event    `yaml:"event"`
}

// Event is an event as a test writes it; missing fields get defaults.
type Event struct {
	ID         string         `yaml:"id"`
	Source     string         `yaml:"source"`
	Type       string         `yaml:"type"`
	OccurredAt *time.Time     `yaml:"occurred_at"`
	Location   Location       `yaml:"location"`
	Severity   string         `yaml:"severity"`
	Text       string         `yaml:"text"`
	Attrs      map[string]any `yaml:"attrs"`
}

// Location is an event's location as a test writes it.
type Location struct {
	Lon      float64 `yaml:"lon"`
	Lat      float64 `yaml:"lat"`
	District string  `yaml:"district"`
	Street   string  `yaml:"street"`
	Grid     string  `yaml:"grid"`
	Address  string  `yaml:"address"`
}

// Expectation holds when the alert of Rule ("pack/rule") with exactly
// Labels is in State (firing, pending or resolved) at At, and, when
// Severity is given, has that severity.
type Expectation struct {
	At       Duration          `yaml:"at"`
	Rule     string            `yaml:"rule"`
	State    string            `yaml:"state"`
	Severity string            `yaml:"severity"`
	Labels   map[string]string `yaml:"labels"`
}

var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type \S+`)

// Duration is a time.Duration written as 5m, 90s or 0.
type Duration time.Duration

// UnmarshalYAML parses a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 || v > MaxOffset {
		return fmt.Errorf("line %d: %q is not a duration like 0m, 5m or 1h30m, up to %s", n.Line, n.Value, MaxOffset)
	}
	*d = Duration(v)
	return nil
}

// String returns the duration as time.Duration writes it.
func (d Duration) String() string { return time.Duration(d).String() }

// Options configures a run.
type Options struct {
	// Catalog checks the packs and the events' types; nil skips those
	// checks.
	Catalog *catalog.Catalog
	// Run selects the tests to run by name; every test when nil.
	Run *regexp.Regexp
}

// Result is the outcome of one test case.
type Result struct {
	File string
	Name string
	// Failures lists every expectation not met and every unexpected alert,
	// one line each, in time order.
	Failures []string
	// Diffs shows, for each moment at which something failed, the alerts
	// expected then and the alerts there were.
	Diffs   []Diff
	Elapsed time.Duration
}

// Passed reports whether the case met every expectation.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Details returns the failures and, for each failing moment, the expected
// and the actual alerts, as a person reads them.
func (r Result) Details() string {
	var b strings.Builder
	for _, d := range r.Diffs {
		d.write(&b)
	}
	return b.String()
}

// Diff is what was expected and what there was at one moment of a test.
type Diff struct {
	At       time.Duration
	Failures []string
	// Want lists the expectations due at At; Got the alerts that were
	// firing or pending then, and those the expectations name in any state.
	Want []AlertLine
	Got  []AlertLine
}

func (d Diff) write(w io.Writer) {
	fmt.Fprintf(w, "at %s:\n", d.At)
	for _, f := range d.Failures {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	for _, part := range []struct {
		name  string
		lines []AlertLine
	}{{"expected", d.Want}, {"got", d.Got}} {
		fmt.Fprintf(w, "  %s:\n", part.name)
		if len(part.lines) == 0 {
			fmt.Fprintf(w, "    (none)\n")
		}
		for _, l := range part.lines {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

// AlertLine is one alert in a Diff. Severity is empty where an expectation
// does not name one.
type AlertLine struct {
	Rule     string
	Labels   map[string]string
	State    string
	Severity string
}

// String returns "STATE SEVERITY RULE {labels}".
func (l AlertLine) String() string {
	sev := l.Severity
	if sev == "" {
		sev = "-"
	}
	return fmt.Sprintf("%-8s %-8s %s %s", l.State, sev, l.Rule, LabelText(l.Labels))
}

func compareLines(a, b AlertLine) int {
	return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(LabelText(a.Labels), LabelText(b.Labels)), cmp.Compare(a.State, b.State))
}

// Parse parses a test file, refusing unknown fields, and checks what can
// be checked without the packs.
func Parse(b []byte) (*File, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty test file")
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// One "line N: ..." line per problem, unknown fields named
			// as the pack parser names them.
			lines := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				lines[i] = unknownFieldRE.ReplaceAllString(e, `unknown field "$1"`)
			}
			return nil, errors.New(strings.Join(lines, "\n"))
		}
		return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var errs []error
	if len(f.Packs) == 0 {
		errs = append(errs, errors.New("no packs"))
	}
	if len(f.Tests) > MaxTests {
		errs = append(errs, fmt.Errorf("%d tests, at most %d", len(f.Tests), MaxTests))
	}
	names := map[string]bool{}
	for i, c := range f.Tests {
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("test %d has no name", i+1))
		} else if names[c.Name] {
			errs = append(errs, fmt.Errorf("test %q: the name is used twice", c.Name))
		}
		names[c.Name] = true
		if len(c.Events) > MaxEventsPerTest || len(c.Expect) > MaxExpectsPerTest {
			errs = append(errs, fmt.Errorf("test %q: at most %d events and %d expectations", c.Name, MaxEventsPerTest, MaxExpectsPerTest))
		}
		for j, e := range c.Events {
			if e.Event.Type == "" {
				errs = append(errs, fmt.Errorf("test %q: event %d has no type", c.Name, j+1))
			}
			if e.Event.Severity != "" {
				if _, err := cityhubv1.ParseSeverity(e.Event.Severity); err != nil {
					errs = append(errs, fmt.Errorf("test %q: event %d: severity: %w", c.Name, j+1, err))
				}
			}
		}
		for _, e := range c.Expect {
			if e.Rule == "" {
				errs = append(errs, fmt.Errorf("test %q: an expectation at %s names no rule", c.Name, e.At))
			}
			if !slices.Contains(States, e.State) {
				errs = append(errs, fmt.Errorf("test %q: expectation for %s: state %q, want firing, pending or resolved", c.Name, e.Rule, e.State))
			}
			if e.Severity != "" {
				if _, err := cityhubv1.ParseSeverity(e.Severity); err != nil {
					errs = append(errs, fmt.Errorf("test %q: expectation for %s: severity: %w", c.Name, e.Rule, err))
				}
			}
		}
	}
	return &f, errors.Join(errs...)
}

// ReadFile reads and parses the test file at path.
func ReadFile(path string) (*File, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileBytes)
	}
	return b, nil
}

// PackFiles returns the packs a test file names, relative to the file.
func (f *File) PackFiles(path string) []string {
	var files []string
	for _, p := range f.Packs {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		files = append(files, p)
	}
	return files
}

// RunFile runs the tests in the file at path that opts select; packs are
// found relative to the file. The error reports a file that cannot be read
// or parsed, packs that do not load, or expectations that name a rule or
// labels the packs cannot produce; failing expectations are in the
// results.
func RunFile(ctx context.Context, path string, opts Options) ([]Result, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rule test %w", err)
	}
	packs, err := rulepack.LoadFiles(opts.Catalog, f.PackFiles(path)...)
	if err == nil {
		err = alerting.CheckSupported(packs)
	}
	if err != nil {
		return nil, fmt.Errorf("rule test %s: %w", path, err)
	}
	if err := f.CheckAgainst(packs, opts.Catalog); err != nil {
		return nil, fmt.Errorf("rule test %s: %w", path, err)
	}
	var out []Result
	for _, c := range f.Tests {
		if opts.Run != nil && !opts.Run.MatchString(c.Name) {
			continue
		}
		began := time.Now()
		res, err := runCase(ctx, packs, c)
		if err != nil {
			return nil, fmt.Errorf("rule test %s: %s: %w", path, c.Name, err)
		}
		res.File = path
		res.Elapsed = time.Since(began)
		out = append(out, res)
	}
	return out, nil
}

// CheckAgainst checks the expectations against the rules of packs: each
// must name a rule they define, with exactly the labels of its group_by,
// since any other expectation can never hold. With a catalog, events must
// have a type of it.
func (f *File) CheckAgainst(packs []*rulepack.Pack, cat *catalog.Catalog) error {
	rules := map[string]*rulepack.Rule{}
	for _, r := range rulepack.Rules(packs) {
		rules[r.Name()] = r
	}
	var errs []error
	for _, c := range f.Tests {
		for _, x := range c.Expect {
			r, ok := rules[x.Rule]
			if !ok {
				errs = append(errs, fmt.Errorf("test %q: expectation at %s: no pack under test defines rule %q (want pack/rule-id)", c.Name, x.At, x.Rule))
				continue
			}
			got := slices.Sorted(maps.Keys(x.Labels))
			want := slices.Sorted(slices.Values(r.GroupBy))
			if !slices.Equal(got, want) {
				errs = append(errs, fmt.Errorf("test %q: expectation at %s for %s: labels %s, but the rule groups by [%s]",
					c.Name, x.At, x.Rule, LabelText(x.Labels), strings.Join(r.GroupBy, ", ")))
			}
		}
		if cat == nil {
			continue
		}
		for i, e := range c.Events {
			if _, ok := cat.EventType(e.Event.Type); !ok && e.Event.Type != "" {
				errs = append(errs, fmt.Errorf("test %q: event %d: type %q is not in the catalog", c.Name, i+1, e.Event.Type))
			}
		}
	}
	return errors.Join(errs...)
}

// step is one moment of a test's timeline: events to send, then checks.
type step struct {
	at     time.Duration
	events []*cityhubv1.Event
}

// runCase runs c on alert state of its own.
func runCase(ctx context.Context, packs []*rulepack.Pack, c Case) (Result, error) {
	res := Result{Name: c.Name}
	e, err := engine.New(packs, engine.Options{})
	if err != nil {
		return res, err
	}
	store := alertstate.NewMemory(alertstate.Options{})
	proc := alerting.New(e, store)
	start := Start
	if c.Start != nil {
		start = *c.Start
	}

	steps := map[time.Duration]*step{}
	at := func(d time.Duration) *step {
		if steps[d] == nil {
			steps[d] = &step{at: d}
		}
		return steps[d]
	}
	for i, te := range c.Events {
		s := at(time.Duration(te.At))
		ev, err := te.Event.proto(i, start.Add(s.at))
		if err != nil {
			return res, fmt.Errorf("event %d: %w", i+1, err)
		}
		s.events = append(s.events, ev)
	}
	for _, x := range c.Expect {
		at(time.Duration(x.At))
	}
	timeline := slices.SortedFunc(maps.Values(steps), func(a, b *step) int { return cmp.Compare(a.at, b.at) })

	// seen holds the id of every alert the test has touched, for the diff.
	seen := map[string]bool{}
	for _, s := range timeline {
		now := start.Add(s.at)
		swept, err := proc.Sweep(ctx, now)
		if err != nil {
			return res, err
		}
		touched, err := proc.Process(ctx, now, s.events)
		if err != nil {
			return res, err
		}
		for _, a := range slices.Concat(swept, touched) {
			seen[a.GetId()] = true
		}
		d, err := check(ctx, store, c.Expect, s.at, seen)
		if err != nil {
			return res, err
		}
		if len(d.Failures) > 0 {
			res.Failures = append(res.Failures, d.Failures...)
			res.Diffs = append(res.Diffs, d)
		}
	}
	return res, nil
}

// check compares the alerts at offset at with the expectations: each
// expectation due now must hold, and every firing alert must be named by a
// firing expectation due by now.
func check(ctx context.Context, store *alertstate.Memory, expect []Expectation, at time.Duration, seen map[string]bool) (Diff, error) {
	d := Diff{At: at}
	named := map[string]bool{}
	shown := map[string]bool{}
	for _, x := range expect {
		fp := engine.Fingerprint(x.Rule, x.Labels)
		if time.Duration(x.At) <= at && x.State == "firing" {
			named[fp] = true
		}
		if time.Duration(x.At) != at {
			continue
		}
		shown[fp] = true
		d.Want = append(d.Want, AlertLine{Rule: x.Rule, Labels: x.Labels, State: x.State, Severity: x.Severity})
		a, err := store.Get(ctx, fp)
		if err != nil && !errors.Is(err, alertstate.ErrNotFound) {
			return d, fmt.Errorf("read alert %s: %w", x.Rule, err)
		}
		got := "absent"
		if a != nil {
			got = a.GetState().Name()
		}
		switch {
		case got != x.State:
			d.Failures = append(d.Failures, fmt.Sprintf("at %s: %s %s is %s, want %s", at, x.Rule, LabelText(x.Labels), got, x.State))
		case x.Severity != "" && a.GetSeverity().Name() != x.Severity:
			d.Failures = append(d.Failures, fmt.Sprintf("at %s: %s %s is %s with severity %s, want %s",
				at, x.Rule, LabelText(x.Labels), got, a.GetSeverity().Name(), x.Severity))
		}
	}
	// The firing index is the authority on what fires; seen adds the
	// alerts that resolved or are pending, for the diff.
	firing, err := store.Firing(ctx)
	if err != nil {
		return d, fmt.Errorf("read firing alerts: %w", err)
	}
	ids := maps.Clone(seen)
	for _, a := range firing {
		ids[a.GetId()] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		a, err := store.Get(ctx, id)
		if errors.Is(err, alertstate.ErrNotFound) {
			continue
		}
		if err != nil {
			return d, fmt.Errorf("read alert %s: %w", id, err)
		}
		state := a.GetState().Name()
		if state == "firing" && !named[id] {
			d.Failures = append(d.Failures, fmt.Sprintf("at %s: unexpected firing alert %s %s", at, a.GetRule(), LabelText(a.GetLabels())))
		}
		if state == "firing" || state == "pending" || shown[id] {
			d.Got = append(d.Got, AlertLine{Rule: a.GetRule(), Labels: a.GetLabels(), State: state, Severity: a.GetSeverity().Name()})
		}
	}
	slices.SortFunc(d.Want, compareLines)
	slices.SortFunc(d.Got, compareLines)
	return d, nil
}

// LabelText returns labels as {name=value, …} in name order.
func LabelText(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// proto returns the event with defaults filled in: the i-th event of a
// test, at now.
func (e Event) proto(i int, now time.Time) (*cityhubv1.Event, error) {
	ev := &cityhubv1.Event{
		Id: e.ID, Source: e.Source, Type: e.Type, Text: e.Text,
		OccurredAt: timestamppb.New(now),
		ReceivedAt: timestamppb.New(now),
		Location: &cityhubv1.Location{
			Lon: e.Location.Lon, Lat: e.Location.Lat, District: e.Location.District,
			Street: e.Location.Street, Grid: e.Location.Grid, Address: e.Location.Address,
		},
	}
	if ev.Id == "" {
		ev.Id = fmt.Sprintf("test-event-%d", i+1)
	}
	if ev.Source == "" {
		ev.Source = "test"
	}
	if e.OccurredAt != nil {
		ev.OccurredAt = timestamppb.New(*e.OccurredAt)
	}
	if e.Severity != "" {
		sev, err := cityhubv1.ParseSeverity(e.Severity)
		if err != nil {
			return nil, err
		}
		ev.Severity = sev
	}
	if len(e.Attrs) > 0 {
		s, err := structpb.NewStruct(e.Attrs)
		if err != nil {
			return nil, fmt.Errorf("attrs: %w", err)
		}
		ev.Attrs = s
	}
	return ev, nil
}
