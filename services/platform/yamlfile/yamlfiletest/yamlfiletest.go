// Package yamlfiletest reads the expectations that bad YAML inputs carry
// in their own comments, so that each test of located errors compares
// what a loader said with what the file says it should say.
package yamlfiletest

import (
	"bufio"
	"bytes"
	"os"
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
