package lifecycle

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the state diagram in ARCHITECTURE.md from the table")

const architecture = "../../../ARCHITECTURE.md"

// mermaidBlock finds the ```mermaid block of the "Cases" section of doc and
// returns the offsets of its body.
func mermaidBlock(t *testing.T, doc []byte) (start, end int) {
	t.Helper()
	sec := bytes.Index(doc, []byte("\n### Cases\n"))
	if sec < 0 {
		t.Fatalf("%s has no \"### Cases\" section", architecture)
	}
	next := bytes.Index(doc[sec+1:], []byte("\n#"))
	if next < 0 {
		next = len(doc)
	} else {
		next += sec + 1
	}
	open := bytes.Index(doc[sec:next], []byte("```mermaid\n"))
	if open < 0 {
		t.Fatalf("the Cases section of %s has no ```mermaid block", architecture)
	}
	start = sec + open + len("```mermaid\n")
	close := bytes.Index(doc[start:next], []byte("```"))
	if close < 0 {
		t.Fatalf("the ```mermaid block of %s is not closed", architecture)
	}
	return start, start + close
}

func TestMermaidMatchesArchitecture(t *testing.T) {
	doc, err := os.ReadFile(architecture)
	if err != nil {
		t.Fatal(err)
	}
	start, end := mermaidBlock(t, doc)
	want := Mermaid()
	if string(doc[start:end]) == want {
		return
	}
	if *update {
		out := append(append(append([]byte{}, doc[:start]...), want...), doc[end:]...)
		if err := os.WriteFile(architecture, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the state diagram in %s is not the table's; run\n\tgo test ./lifecycle -run TestMermaid -update\ngot:\n%s\nwant:\n%s", architecture, doc[start:end], want)
}

func TestMermaidFollowsTheTable(t *testing.T) {
	m := Mermaid()
	for _, want := range []string{
		"[*] --> new: create\n",
		"new --> dispatched: dispatch\n",
		"handled --> closed: verify pass\n",
		"handled --> accepted: verify fail\n",
		"accepted --> cancelled: cancel / merge\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("diagram lacks %q:\n%s", want, m)
		}
	}
	for _, tr := range Table() {
		if !strings.Contains(m, string(tr.Action)) {
			t.Errorf("action %s is missing from the diagram", tr.Action)
		}
	}
}
