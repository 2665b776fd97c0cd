package lifecycle

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the state diagrams in ARCHITECTURE.md and README.md from the table")

// documents are the files that show the state diagram, and the heading of
// the section that holds it.
var documents = []struct{ path, section string }{
	{"../../../ARCHITECTURE.md", "\n### Cases\n"},
	{"../../../README.md", "\n## The life of a case\n"},
}

// mermaidBlock finds the ```mermaid block of the section of doc and
// returns the offsets of its body.
func mermaidBlock(t *testing.T, architecture, section string, doc []byte) (start, end int) {
	t.Helper()
	sec := bytes.Index(doc, []byte(section))
	if sec < 0 {
		t.Fatalf("%s has no %q section", architecture, strings.TrimSpace(section))
	}
	next := bytes.Index(doc[sec+1:], []byte("\n#"))
	if next < 0 {
		next = len(doc)
	} else {
		next += sec + 1
	}
	open := bytes.Index(doc[sec:next], []byte("```mermaid\n"))
	if open < 0 {
		t.Fatalf("the %q section of %s has no ```mermaid block", strings.TrimSpace(section), architecture)
	}
	start = sec + open + len("```mermaid\n")
	close := bytes.Index(doc[start:next], []byte("```"))
	if close < 0 {
		t.Fatalf("the ```mermaid block of %s is not closed", architecture)
	}
	return start, start + close
}

func TestMermaidMatchesDocuments(t *testing.T) {
	want := Mermaid()
	for _, d := range documents {
		doc, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		start, end := mermaidBlock(t, d.path, d.section, doc)
		if string(doc[start:end]) == want {
			continue
		}
		if *update {
			out := append(append(append([]byte{}, doc[:start]...), want...), doc[end:]...)
			if err := os.WriteFile(d.path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("the state diagram in %s is not the table's; run\n\tgo test ./lifecycle -run TestMermaid -update\ngot:\n%s\nwant:\n%s", d.path, doc[start:end], want)
	}
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
