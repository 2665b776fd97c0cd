package rulecheck

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
	"github.com/cityhub/cityhub/services/ruler/ruletest"
)

const usage = `rulecheck: check, test and backtest cityhub rule packs.

Usage:
  rulecheck check    [--catalog FILE] [--strict] PATH...
  rulecheck test     [--catalog FILE] [--run REGEX] [--junit FILE] PATH...
  rulecheck backtest (--events FILE.ndjson | --kafka BROKERS --topic TOPIC)
                     [--from TIME] [--to TIME] --pack PATH... [--baseline PATH...]
                     [--catalog FILE] [--format text|json] [--max-events N]
                     [--silences FILE.json]

A PATH is a file or a directory searched recursively for packs (YAML with
a top-level "pack:"), test files (a top-level "tests:") and notify.yaml
(top-level "receivers:" and "routes:"), which check validates too. Without
--catalog, the catalog is the first catalog.yaml found in the directory of
the first PATH (or --pack) or in a directory above it.

Run "rulecheck COMMAND -h" for the flags of a command.
`

// Run runs the rulecheck command line (args without the program name),
// writing results to stdout and problems to stderr, and returns the exit
// status: 0 on success, 1 when a check finds errors, a test fails or a
// backtest cannot run, 2 on a usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "test":
		return runTest(ctx, args[1:], stdout, stderr)
	case "backtest":
		return runBacktest(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "rulecheck: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parse parses flags that may stand before, between or after the
// positional arguments, which it returns.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rulecheck %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func usageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "check [--catalog FILE] [--strict] PATH...", stderr)
	catPath := fs.String("catalog", "", "the event-type catalog (default: the nearest catalog.yaml at or above the first PATH)")
	strict := fs.Bool("strict", false, "treat warnings as errors (exit 1 on any warning)")
	paths, err := parse(fs, args)
	if err != nil {
		return usageError(err)
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	files, err := Expand(paths)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 1
	}
	if len(files.Packs)+len(files.Tests)+len(files.Notify) == 0 {
		fmt.Fprintf(stderr, "rulecheck: no packs, test files or notify.yaml in %s\n", strings.Join(paths, ", "))
		return 1
	}
	cat, catFile, err := LoadCatalog(*catPath, paths)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 1
	}
	res := Check(files, cat)
	res.Diagnostics = append(res.Diagnostics, CheckCalendar(catFile, cat.WorkCalendar(), time.Now())...)
	for _, d := range res.Diagnostics {
		fmt.Fprintln(stdout, d)
	}
	notify := ""
	if len(files.Notify) > 0 {
		notify = fmt.Sprintf(", %d notify configs", len(files.Notify))
	}
	fmt.Fprintf(stdout, "%d packs (%d rules), %d test files%s: %d errors, %d warnings\n",
		len(files.Packs), res.Rules, len(files.Tests), notify, res.Errors(), res.Warnings())
	if res.Errors() > 0 || (*strict && res.Warnings() > 0) {
		return 1
	}
	return 0
}

func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", "test [--catalog FILE] [--run REGEX] [--junit FILE] PATH...", stderr)
	catPath := fs.String("catalog", "", "the event-type catalog (default: the nearest catalog.yaml at or above the first PATH)")
	runExpr := fs.String("run", "", "run only the tests whose name matches this regular expression")
	junit := fs.String("junit", "", "also write the results as JUnit XML to this file")
	paths, err := parse(fs, args)
	if err != nil {
		return usageError(err)
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	var sel *regexp.Regexp
	if *runExpr != "" {
		if sel, err = regexp.Compile(*runExpr); err != nil {
			fmt.Fprintf(stderr, "rulecheck: --run: %v\n", err)
			return 2
		}
	}
	files, err := Expand(paths)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 1
	}
	if len(files.Tests) == 0 {
		fmt.Fprintf(stderr, "rulecheck: no test files (YAML with a top-level tests:) in %s\n", strings.Join(paths, ", "))
		return 1
	}
	cat, _, err := LoadCatalog(*catPath, paths)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 1
	}
	rep := RunTests(ctx, files.Tests, TestOptions{Catalog: cat, Run: sel})
	rep.WriteText(stdout)
	if *junit != "" {
		if err := writeFile(*junit, rep.WriteJUnit); err != nil {
			fmt.Fprintf(stderr, "rulecheck: --junit: %v\n", err)
			return 1
		}
	}
	if rep.Failed() {
		return 1
	}
	return 0
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// listFlag is a flag that may be repeated and takes comma-separated lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// timeFlag is a moment given as RFC 3339 or as a duration before now
// ("-168h", or "-7d" in days).
type timeFlag struct {
	t   time.Time
	now func() time.Time
}

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(v string) error {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		f.t = t
		return nil
	}
	if rest, ok := strings.CutPrefix(v, "-"); ok {
		var d time.Duration
		var err error
		if days, ok := strings.CutSuffix(rest, "d"); ok {
			var n int
			n, err = strconv.Atoi(days)
			d = time.Duration(n) * 24 * time.Hour
		} else {
			d, err = time.ParseDuration(rest)
		}
		if err == nil && d >= 0 {
			f.t = f.now().Add(-d)
			return nil
		}
	}
	return fmt.Errorf("%q: want an RFC 3339 time (2025-07-01T08:00:00+08:00) or a time before now (-24h, -7d)", v)
}

// BacktestReport is what the backtest command prints as JSON.
type BacktestReport struct {
	Events int       `json:"events"`
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
	// Alerts are the changes of the alerts of the new packs.
	Alerts []Change `json:"alerts"`
	// Diff is set when a baseline was given.
	Diff []DiffEntry `json:"diff,omitempty"`
	// BaselineAlerts are the changes of the alerts of the baseline.
	BaselineAlerts []Change `json:"baseline_alerts,omitempty"`
}

func runBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("backtest", "backtest (--events FILE.ndjson | --kafka BROKERS --topic TOPIC) [--from TIME] [--to TIME] --pack PATH... [--baseline PATH...] [--silences FILE.json]", stderr)
	eventsPath := fs.String("events", "", "recorded events, one JSON event per line (\"-\": standard input)")
	brokers := fs.String("kafka", "", "read the events from these Kafka brokers (host:port,...)")
	topic := fs.String("topic", "city.events.v1", "the events topic, with --kafka")
	from := &timeFlag{now: time.Now}
	to := &timeFlag{now: time.Now}
	fs.Var(from, "from", "replay events from this time: RFC 3339, or before now as -24h or -7d (required with --kafka)")
	fs.Var(to, "to", "replay events before this time (default: all)")
	silencesPath := fs.String("silences", "", "silences set at run time to honour, as GET /v1/silences answers them (JSON)")
	var packs, baseline listFlag
	fs.Var(&packs, "pack", "the packs to replay: files or directories; repeat or separate with commas")
	fs.Var(&baseline, "baseline", "packs to compare with: files or directories; repeat or separate with commas")
	catPath := fs.String("catalog", "", "the event-type catalog (default: the nearest catalog.yaml at or above the first --pack)")
	format := fs.String("format", "text", "output: text or json")
	maxEvents := fs.Int("max-events", DefaultMaxEvents, "refuse to replay more events than this")
	maxLine := fs.Int("max-line-bytes", DefaultMaxLineBytes, "refuse an NDJSON line longer than this")
	rest, err := parse(fs, args)
	if err != nil {
		return usageError(err)
	}
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "rulecheck: "+format+"\n", args...)
		return code
	}
	switch {
	case len(rest) > 0:
		return fail(2, "backtest: unexpected argument %q (packs are given with --pack)", rest[0])
	case (*eventsPath == "") == (*brokers == ""):
		return fail(2, "backtest: give exactly one of --events and --kafka")
	case len(packs) == 0:
		return fail(2, "backtest: give the packs to replay with --pack")
	case *brokers != "" && from.t.IsZero():
		return fail(2, "backtest: --kafka needs --from")
	case *format != "text" && *format != "json":
		return fail(2, "backtest: --format %q: want text or json", *format)
	case *maxEvents <= 0 || *maxLine <= 0:
		return fail(2, "backtest: --max-events and --max-line-bytes must be positive")
	case !to.t.IsZero() && !to.t.After(from.t):
		return fail(2, "backtest: --to must be after --from")
	}
	cat, _, err := LoadCatalog(*catPath, packs)
	if err != nil {
		return fail(1, "%v", err)
	}
	newPacks, err := loadPacks(packs, cat)
	if err != nil {
		return fail(1, "--pack: %v", err)
	}
	var oldPacks []*rulepack.Pack
	if len(baseline) > 0 {
		if oldPacks, err = loadPacks(baseline, cat); err != nil {
			return fail(1, "--baseline: %v", err)
		}
	}
	var silences []*rulepack.Silence
	if *silencesPath != "" {
		if silences, err = readSilences(*silencesPath); err != nil {
			return fail(1, "--silences: %v", err)
		}
	}
	window := Window{From: from.t, To: to.t}
	evs, err := readEvents(ctx, *eventsPath, *brokers, *topic, window, cat, *maxEvents, *maxLine, stderr)
	if err != nil {
		return fail(1, "%v", err)
	}
	rep := BacktestReport{Events: len(evs), From: from.t, To: to.t}
	// Both replays see the same events; Replay sorts them in place, which
	// the second replay then finds done.
	if rep.Alerts, err = Replay(ctx, newPacks, silences, evs, to.t); err != nil {
		return fail(1, "backtest: %v", err)
	}
	if oldPacks != nil {
		if rep.BaselineAlerts, err = Replay(ctx, oldPacks, silences, evs, to.t); err != nil {
			return fail(1, "backtest: baseline: %v", err)
		}
		rep.Diff = Diff(Episodes(rep.BaselineAlerts), Episodes(rep.Alerts))
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if rep.Alerts == nil {
			rep.Alerts = []Change{}
		}
		if err := enc.Encode(rep); err != nil {
			return fail(1, "%v", err)
		}
		return 0
	}
	writeBacktest(stdout, rep, oldPacks != nil)
	return 0
}

func loadPacks(paths []string, cat *catalog.Catalog) ([]*rulepack.Pack, error) {
	files, err := Expand(paths)
	if err != nil {
		return nil, err
	}
	if len(files.Packs) == 0 {
		return nil, fmt.Errorf("no packs in %s", strings.Join(paths, ", "))
	}
	return rulepack.LoadFiles(cat, files.Packs...)
}

func readEvents(ctx context.Context, path, brokers, topic string, w Window, cat *catalog.Catalog, maxEvents, maxLine int, stderr io.Writer) ([]*cityhubv1.Event, error) {
	if brokers != "" {
		evs, stats, err := ReadKafka(ctx, KafkaOptions{Brokers: strings.Split(brokers, ","), Topic: topic, Window: w, MaxEvents: maxEvents})
		if err != nil {
			return nil, err
		}
		if stats.Undecodable > 0 {
			fmt.Fprintf(stderr, "rulecheck: skipped %d of %d messages that are not events\n", stats.Undecodable, stats.Messages)
		}
		return evs, nil
	}
	var r io.Reader = os.Stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, path
	}
	return ReadNDJSON(r, name, NDJSONOptions{Catalog: cat, Window: w, MaxEvents: maxEvents, MaxLineBytes: maxLine})
}

func writeBacktest(w io.Writer, rep BacktestReport, withBaseline bool) {
	fired, resolved := 0, 0
	for _, c := range rep.Alerts {
		switch c.State {
		case "firing":
			fired++
		case "resolved":
			resolved++
		}
	}
	if !withBaseline {
		for _, c := range rep.Alerts {
			fmt.Fprintf(w, "%s  %-8s %-8s %s %s  %s\n", c.At.Format(time.RFC3339), c.State, c.Severity, c.Rule, ruletest.LabelText(c.Labels), c.Fingerprint)
		}
		fmt.Fprintf(w, "%d events: %d alert changes (%d firing, %d resolved)\n", rep.Events, len(rep.Alerts), fired, resolved)
		return
	}
	var added, removed, changed int
	for _, d := range rep.Diff {
		e := d.Episode
		prefix, note := "", ""
		switch d.Kind {
		case Added:
			prefix, note = "+", "added"
			added++
		case Removed:
			prefix, note = "-", "removed"
			removed++
		case Changed:
			prefix = "~"
			changed++
			var parts []string
			if d.Baseline.Severity != e.Severity {
				parts = append(parts, fmt.Sprintf("severity %s, was %s", e.Severity, d.Baseline.Severity))
			}
			if !d.Baseline.Start.Equal(e.Start) {
				parts = append(parts, fmt.Sprintf("fires at %s, was %s", e.Start.Format(time.RFC3339), d.Baseline.Start.Format(time.RFC3339)))
			}
			note = strings.Join(parts, "; ")
		}
		fmt.Fprintf(w, "%s %s  %-8s %s %s  %s  %s\n", prefix, e.Start.Format(time.RFC3339), e.Severity, e.Rule, ruletest.LabelText(e.Labels), e.Fingerprint, note)
	}
	fmt.Fprintf(w, "%d events: %d alerts fired with the baseline, %d with the new packs: %d added, %d removed, %d changed\n",
		rep.Events, len(Episodes(rep.BaselineAlerts)), len(Episodes(rep.Alerts)), added, removed, changed)
}
