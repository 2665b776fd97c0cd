// Package yamlfiletest reads the expectations that bad YAML inputs carry
// in their own comments, so that each test of located errors compares
// what a loader said with what the file says it should say.
package yamlfiletest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Wants returns the "# want: " lines of file, each with prefix (the
// directory the loader names the file by) in front, failing t when there
// are none.
func Wants(t testing.TB, file, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, prefix+w)
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s has no # want: lines", file)
	}
	return want
}

// LoadFunc loads one input file, returning the loader's error.
type LoadFunc func(file string) error

// Good runs load on each file matching pattern, in a subtest of its own,
// failing on any error; it fails t when no file matches.
func Good(t *testing.T, pattern string, load LoadFunc) {
	t.Helper()
	for _, f := range files(t, pattern) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Bad runs load on each file matching pattern, in a subtest of its own,
// and checks that the error says exactly what the file's "# want: " lines
// say, in order, each with prefix in front; it fails t when no file
// matches.
func Bad(t *testing.T, pattern, prefix string, load LoadFunc) {
	t.Helper()
	for _, f := range files(t, pattern) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := strings.Join(Wants(t, f, prefix), "\n")
			err := load(f)
			if err == nil {
				t.Fatal("a bad input was accepted")
			}
			if got := err.Error(); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func files(t *testing.T, pattern string) []string {
	t.Helper()
	fs, err := filepath.Glob(pattern)
	if err != nil || len(fs) == 0 {
		t.Fatalf("no inputs match %s (%v)", pattern, err)
	}
	return fs
}
