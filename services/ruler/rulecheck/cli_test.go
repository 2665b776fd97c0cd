package rulecheck

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the command line in-process, as the rulecheck binary would.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLICheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"errors of every file at once", []string{"check", "testdata/clean.good.yaml", "testdata/dup.good.yaml", "testdata/fields.bad.yaml",
			"testdata/lint.good.yaml", "testdata/many.bad.yaml", "testdata/tests"}, 1, []string{
			"testdata/fields.bad.yaml:7:5: rule a: rule: unknown field \"colour\"\n",
			"testdata/many.bad.yaml:21:15: rule c: dispatch: \"police\" is not a department of the catalog\n",
			"testdata/many.bad.yaml:26:11: rule d: when: expected bool, but got a number\n",
			"testdata/lint.good.yaml:7:11: warning: rule impossible: when can never hold",
			"5 packs (8 rules), 3 test files: 10 errors, 8 warnings\n",
		}},
		{"a clean pack, the catalog found above it", []string{"check", "testdata/clean.good.yaml"}, 0, []string{
			"1 packs (1 rules), 0 test files: 0 errors, 0 warnings\n",
		}},
		{"warnings alone pass", []string{"check", "testdata/lint.good.yaml"}, 0, []string{"0 errors, 7 warnings"}},
		{"warnings fail with --strict", []string{"check", "--strict", "testdata/lint.good.yaml"}, 1, []string{"0 errors, 7 warnings"}},
		{"flags after paths", []string{"check", "testdata/lint.good.yaml", "--strict"}, 1, nil},
		{"an explicit catalog", []string{"check", "--catalog", "testdata/catalog.yaml", rulesDir + "/packs/gas.yaml"}, 1, []string{
			`gas.yaml: owner "gas" is not a department of the catalog`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, c := range tc.contains {
				if !strings.Contains(out+errOut, c) {
					t.Errorf("output lacks %q:\n%s%s", c, out, errOut)
				}
			}
		})
	}
}

func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"lint"},
		{"check"},
		{"check", "--colour"},
		{"test"},
		{"test", "--run", "(", "testdata"},
		{"backtest", "--pack", "testdata/backtest/new.yaml"},
		{"backtest", "--events", "x", "--kafka", "y", "--pack", "p"},
		{"backtest", "--events", "x"},
		{"backtest", "--kafka", "127.0.0.1:1", "--pack", "p"},
		{"backtest", "--events", "x", "--pack", "p", "--format", "xml"},
		{"backtest", "--events", "x", "--pack", "p", "--from", "yesterday"},
	} {
		if code, out, errOut := run(t, args...); code != 2 {
			t.Errorf("rulecheck %s: exit %d, want 2\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	if code, out, _ := run(t, "help"); code != 0 || !strings.Contains(out, "rulecheck backtest") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

func TestCLITest(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, out, errOut := run(t, "test", "--junit", junit, "testdata/tests/water.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"testdata/tests/water.yaml\n",
		"  PASS  deep water fires (",
		"  FAIL  a wrong expectation (",
		"        at 0s:\n" +
			"          - at 0s: water/deep {district=xuhui, street=tianping} is firing with severity severe, want extreme\n" +
			"          expected:\n" +
			"            firing   extreme  water/deep {district=xuhui, street=tianping}\n" +
			"          got:\n" +
			"            firing   severe   water/deep {district=xuhui, street=tianping}\n",
		"\n2 passed, 1 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatalf("junit: %v\n%s", err, b)
	}
	if suites.Tests != 3 || suites.Failures != 1 || len(suites.Suites) != 1 || suites.Suites[0].Cases[2].Failure == nil ||
		!strings.Contains(suites.Suites[0].Cases[2].Failure.Text, "want extreme") {
		t.Errorf("junit:\n%s", b)
	}

	// --run selects the passing tests only.
	code, out, _ = run(t, "test", "--run", "fires|resolves", "testdata/tests/water.yaml")
	if code != 0 || !strings.Contains(out, "2 passed, 0 failed") {
		t.Errorf("--run: exit %d\n%s", code, out)
	}

	// A file whose expectations cannot hold is an error, and fails the run.
	code, out, _ = run(t, "test", "testdata/tests/broken.yaml")
	if code != 1 || !strings.Contains(out, `ERROR rule test testdata/tests/broken.yaml: test "misnamed"`) || !strings.Contains(out, "0 passed, 1 failed") {
		t.Errorf("broken: exit %d\n%s", code, out)
	}
}

// TestCLITestRepository runs every rule test of the repository through the
// command line, as a rule author would.
func TestCLITestRepository(t *testing.T) {
	code, out, errOut := run(t, "test", rulesDir+"/tests")
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestCLIBacktestNDJSON(t *testing.T) {
	code, out, errOut := run(t, "backtest", "--events", "testdata/backtest/events.ndjson", "--pack", "testdata/backtest/new.yaml")
	want := `2025-07-01T00:00:00Z  firing   extreme  water/deep {district=xuhui, street=tianping}  143e72fc88d59547
2025-07-01T00:10:00Z  firing   moderate water/shallow {district=jingan, street=yanan-road}  fc751aac0f4359d9
2025-07-01T01:10:00Z  resolved moderate water/shallow {district=jingan, street=yanan-road}  fc751aac0f4359d9
2025-07-01T01:20:00Z  resolved extreme  water/deep {district=xuhui, street=tianping}  143e72fc88d59547
4 events: 4 alert changes (2 firing, 2 resolved)
`
	if code != 0 || out != want {
		t.Errorf("exit %d\n%s%s\nwant:\n%s", code, out, errOut, want)
	}

	code, out, errOut = run(t, "backtest", "--events", "testdata/backtest/events.ndjson",
		"--pack", "testdata/backtest/new.yaml", "--baseline", "testdata/backtest/old.yaml")
	want = `~ 2025-07-01T00:00:00Z  extreme  water/deep {district=xuhui, street=tianping}  143e72fc88d59547  severity extreme, was severe
+ 2025-07-01T00:10:00Z  moderate water/shallow {district=jingan, street=yanan-road}  fc751aac0f4359d9  added
4 events: 1 alerts fired with the baseline, 2 with the new packs: 1 added, 0 removed, 1 changed
`
	if code != 0 || out != want {
		t.Errorf("exit %d\n%s%s\nwant:\n%s", code, out, errOut, want)
	}

	// The other way round, the shallow alert is removed.
	_, out, _ = run(t, "backtest", "--events", "testdata/backtest/events.ndjson",
		"--pack", "testdata/backtest/old.yaml", "--baseline", "testdata/backtest/new.yaml")
	if !strings.Contains(out, "- 2025-07-01T00:10:00Z  moderate water/shallow {district=jingan, street=yanan-road}  fc751aac0f4359d9  removed\n") {
		t.Errorf("reversed:\n%s", out)
	}

	// A window keeps the events from 08:15 Shanghai time on.
	_, out, _ = run(t, "backtest", "--events", "testdata/backtest/events.ndjson", "--from", "2025-07-01T08:15:00+08:00",
		"--pack", "testdata/backtest/new.yaml", "--format", "json")
	var rep BacktestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if rep.Events != 2 || len(rep.Alerts) != 2 || rep.Alerts[0].Rule != "water/deep" || rep.Alerts[1].State != "resolved" {
		t.Errorf("report: %+v", rep)
	}
}

func TestCLIBacktestBoundsInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ev := `{"source":"iot","type":"waterlogging","occurred_at":"2025-07-01T08:00:00Z","location":{"district":"xuhui"}}` + "\n"
	for _, tc := range []struct {
		name, body string
		args       []string
		want       string
	}{
		{"too many events", strings.Repeat(ev, 3), []string{"--max-events", "2"}, "too many events: more than 2"},
		{"a line too long", ev, []string{"--max-line-bytes", "50"}, "a line longer than 50 bytes"},
		{"an invalid event", `{"source":"iot","type":"flood","occurred_at":"2025-07-01T08:00:00Z","location":{"district":"xuhui"}}` + "\n", nil,
			`:1: type: "flood" is not an event type of the catalog`},
		{"not JSON", "hello\n", nil, ":1: want one JSON event object per line"},
		{"unknown field", `{"source":"iot","type":"waterlogging","colour":"red","occurred_at":"2025-07-01T08:00:00Z","location":{"district":"xuhui"}}` + "\n", nil,
			":1: colour: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.name, " ", "-")+".ndjson", tc.body)
			args := append([]string{"backtest", "--events", p, "--pack", "testdata/backtest/new.yaml"}, tc.args...)
			code, out, errOut := run(t, args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want 1 and %q\n%s%s", code, tc.want, out, errOut)
			}
		})
	}
}
