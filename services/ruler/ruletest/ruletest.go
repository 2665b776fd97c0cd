// Package ruletest runs rule tests (rules/tests/*.yaml): timed events fed
// to the packs under test, and expectations about which alerts are firing
// or resolved at given moments, in the manner of promtool's rule tests.
// Tests run on a clock of their own against an in-memory Redis, through
// the same processor as the ruler, so windows, clears and resolve_after
// behave as in production. The rulecheck command and go test both use it.
package ruletest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
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

// Start is the moment a test's clock starts; events' `at` offsets count
// from it.
var Start = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

// File is a parsed test file.
type File struct {
	Packs []string `yaml:"packs"`
	Tests []Case   `yaml:"tests"`
}

// Case is one test: events and expectations.
type Case struct {
	Name   string        `yaml:"name"`
	Events []TimedEvent  `yaml:"events"`
	Expect []Expectation `yaml:"expect"`
}

// TimedEvent is an event sent at an offset from Start.
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
// Labels is in State ("firing" or "resolved") at At.
type Expectation struct {
	At     Duration          `yaml:"at"`
	Rule   string            `yaml:"rule"`
	State  string            `yaml:"state"`
	Labels map[string]string `yaml:"labels"`
}

// Duration is a time.Duration written as 5m, 90s or 0.
type Duration time.Duration

// UnmarshalYAML parses a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like 0m, 5m or 1h30m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Result is the outcome of one test case.
type Result struct {
	File     string
	Name     string
	Failures []string
}

// Passed reports whether the case met every expectation.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Parse parses a test file.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	var errs []error
	if len(f.Packs) == 0 {
		errs = append(errs, errors.New("no packs"))
	}
	for i, c := range f.Tests {
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("test %d has no name", i+1))
		}
		for _, e := range c.Expect {
			if e.State != "firing" && e.State != "resolved" {
				errs = append(errs, fmt.Errorf("test %q: expectation for %s: state %q, want firing or resolved", c.Name, e.Rule, e.State))
			}
		}
	}
	return &f, errors.Join(errs...)
}

// RunFile runs every test in the file at path; packs are found relative to
// the file. The error reports a file that cannot be read or parsed, or
// packs that do not load; failing expectations are in the results.
func RunFile(ctx context.Context, path string, cat *catalog.Catalog) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rule test: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("rule test %s: %w", path, err)
	}
	var files []string
	for _, p := range f.Packs {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		files = append(files, p)
	}
	packs, err := rulepack.LoadFiles(cat, files...)
	if err == nil {
		err = alerting.CheckSupported(packs)
	}
	if err != nil {
		return nil, fmt.Errorf("rule test %s: %w", path, err)
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, fmt.Errorf("rule test: start in-memory redis: %w", err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	var out []Result
	for _, c := range f.Tests {
		mr.FlushAll()
		res, err := runCase(ctx, packs, rdb, c)
		if err != nil {
			return nil, fmt.Errorf("rule test %s: %s: %w", path, c.Name, err)
		}
		res.File = path
		out = append(out, res)
	}
	return out, nil
}

// step is one moment of a test's timeline: events to send, then checks.
type step struct {
	at     time.Duration
	events []*cityhubv1.Event
}

func runCase(ctx context.Context, packs []*rulepack.Pack, rdb redis.UniversalClient, c Case) (Result, error) {
	res := Result{Name: c.Name}
	e, err := engine.New(packs, engine.Options{})
	if err != nil {
		return res, err
	}
	store, err := alertstate.New(alertstate.Options{Client: rdb})
	if err != nil {
		return res, err
	}
	proc := alerting.New(e, store)

	steps := map[time.Duration]*step{}
	at := func(d time.Duration) *step {
		if steps[d] == nil {
			steps[d] = &step{at: d}
		}
		return steps[d]
	}
	for i, te := range c.Events {
		s := at(time.Duration(te.At))
		ev, err := te.Event.proto(i, Start.Add(s.at))
		if err != nil {
			return res, fmt.Errorf("event %d: %w", i+1, err)
		}
		s.events = append(s.events, ev)
	}
	for _, x := range c.Expect {
		at(time.Duration(x.At))
	}
	timeline := slices.SortedFunc(maps.Values(steps), func(a, b *step) int { return cmp.Compare(a.at, b.at) })

	for _, s := range timeline {
		now := Start.Add(s.at)
		if _, err := proc.Sweep(ctx, now); err != nil {
			return res, err
		}
		if _, err := proc.Process(ctx, now, s.events); err != nil {
			return res, err
		}
		res.Failures = append(res.Failures, check(ctx, store, c.Expect, s.at)...)
	}
	return res, nil
}

// check compares the alerts at offset at with the expectations: each
// expectation due now must hold, and every firing alert must be named by a
// firing expectation due by now.
func check(ctx context.Context, store *alertstate.Store, expect []Expectation, at time.Duration) []string {
	var failures []string
	named := map[string]bool{}
	for _, x := range expect {
		fp := engine.Fingerprint(x.Rule, x.Labels)
		if time.Duration(x.At) <= at && x.State == "firing" {
			named[fp] = true
		}
		if time.Duration(x.At) != at {
			continue
		}
		a, err := store.Get(ctx, fp)
		got := "absent"
		if err == nil {
			got = a.GetState().Name()
		} else if !errors.Is(err, alertstate.ErrNotFound) {
			failures = append(failures, fmt.Sprintf("at %s: reading %s: %v", at, x.Rule, err))
			continue
		}
		if got != x.State {
			failures = append(failures, fmt.Sprintf("at %s: %s %s is %s, want %s", at, x.Rule, labelText(x.Labels), got, x.State))
		}
	}
	firing, err := store.Firing(ctx)
	if err != nil {
		return append(failures, fmt.Sprintf("at %s: reading firing alerts: %v", at, err))
	}
	for _, a := range firing {
		if !named[a.GetId()] {
			failures = append(failures, fmt.Sprintf("at %s: unexpected firing alert %s %s", at, a.GetRule(), labelText(a.GetLabels())))
		}
	}
	return failures
}

func labelText(l map[string]string) string {
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
