package rulecheck

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/ruletest"
)

// TestOptions configures RunTests.
type TestOptions struct {
	Catalog *catalog.Catalog
	// Run selects tests by name; every test when nil.
	Run *regexp.Regexp
}

// TestReport is the outcome of the test files of one run.
type TestReport struct {
	Files []FileReport
}

// FileReport is the outcome of one test file. Err is set when the file
// could not run at all: unreadable, malformed, or its packs do not load.
type FileReport struct {
	File    string
	Err     error
	Results []ruletest.Result
	Elapsed time.Duration
}

// RunTests runs the tests of every file in files. It stops early only when
// ctx ends.
func RunTests(ctx context.Context, files []string, opts TestOptions) *TestReport {
	rep := &TestReport{}
	for _, f := range files {
		if ctx.Err() != nil {
			rep.Files = append(rep.Files, FileReport{File: f, Err: ctx.Err()})
			continue
		}
		began := time.Now()
		res, err := ruletest.RunFile(ctx, f, ruletest.Options{Catalog: opts.Catalog, Run: opts.Run})
		rep.Files = append(rep.Files, FileReport{File: f, Err: err, Results: res, Elapsed: time.Since(began)})
	}
	return rep
}

// Counts returns the tests that passed and failed; a file that could not
// run counts as one failure.
func (r *TestReport) Counts() (passed, failed int) {
	for _, f := range r.Files {
		if f.Err != nil {
			failed++
		}
		for _, res := range f.Results {
			if res.Passed() {
				passed++
			} else {
				failed++
			}
		}
	}
	return passed, failed
}

// Failed reports whether any test failed or any file could not run.
func (r *TestReport) Failed() bool {
	_, failed := r.Counts()
	return failed > 0
}

// WriteText writes the report for a person: each file, each test with
// PASS or FAIL, the diff of every failure, and a closing
// "N passed, N failed" line.
func (r *TestReport) WriteText(w io.Writer) {
	for _, f := range r.Files {
		fmt.Fprintln(w, f.File)
		if f.Err != nil {
			fmt.Fprintf(w, "  ERROR %s\n", indent(f.Err.Error(), "        "))
			continue
		}
		if len(f.Results) == 0 {
			fmt.Fprintln(w, "  (no tests selected)")
		}
		for _, res := range f.Results {
			verdict := "PASS"
			if !res.Passed() {
				verdict = "FAIL"
			}
			fmt.Fprintf(w, "  %s  %s (%s)\n", verdict, res.Name, res.Elapsed.Round(time.Millisecond))
			if !res.Passed() {
				fmt.Fprint(w, indentLines(res.Details(), "        "))
			}
		}
	}
	passed, failed := r.Counts()
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
}

func indent(s, prefix string) string { return strings.ReplaceAll(s, "\n", "\n"+prefix) }

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

// JUnit XML, as CI servers read it: one testsuite per file, one testcase
// per test; a file that could not run is a testsuite with one erroring
// testcase.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML.
func (r *TestReport) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "rulecheck"}
	var total time.Duration
	for _, f := range r.Files {
		s := junitSuite{Name: f.File, Time: seconds(f.Elapsed)}
		total += f.Elapsed
		if f.Err != nil {
			s.Tests, s.Errors = 1, 1
			s.Cases = append(s.Cases, junitCase{Name: "load", Classname: f.File, Time: seconds(f.Elapsed),
				Error: &junitProblem{Message: firstLine(f.Err.Error()), Text: f.Err.Error()}})
		}
		for _, res := range f.Results {
			c := junitCase{Name: res.Name, Classname: f.File, Time: seconds(res.Elapsed)}
			if !res.Passed() {
				c.Failure = &junitProblem{Message: res.Failures[0], Text: res.Details()}
				s.Failures++
			}
			s.Tests++
			s.Cases = append(s.Cases, c)
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Suites = append(out.Suites, s)
	}
	out.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
