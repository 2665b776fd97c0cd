package lifecycle

import (
	"slices"
	"strings"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Mermaid renders the table as a Mermaid state diagram: one arrow per pair
// of statuses an action moves a case between (actions sharing a pair share
// the arrow), in the table's order, and a note on each status listing the
// actions that keep a case in it. ARCHITECTURE.md shows it; a test keeps
// the two equal.
func Mermaid() string {
	type edge struct{ from, to cityhubv1.CaseStatus }
	var (
		edges     []edge
		labels    = map[edge][]string{}
		statuses  []cityhubv1.CaseStatus
		unchanged = map[cityhubv1.CaseStatus][]string{}
	)
	for _, t := range table {
		label := string(t.Action)
		if t.Outcome != "" {
			label += " " + t.Outcome
		}
		for _, from := range t.From {
			if t.To == none || t.To == from {
				if !slices.Contains(statuses, from) {
					statuses = append(statuses, from)
				}
				if !slices.Contains(unchanged[from], label) {
					unchanged[from] = append(unchanged[from], label)
				}
				continue
			}
			e := edge{from, t.To}
			if _, ok := labels[e]; !ok {
				edges = append(edges, e)
			}
			if !slices.Contains(labels[e], label) {
				labels[e] = append(labels[e], label)
			}
		}
	}
	name := func(s cityhubv1.CaseStatus) string {
		if s == none {
			return "[*]"
		}
		return s.Name()
	}
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	for _, e := range edges {
		b.WriteString("    " + name(e.from) + " --> " + name(e.to) + ": " + strings.Join(labels[e], " / ") + "\n")
	}
	for _, s := range statuses {
		b.WriteString("    note right of " + name(s) + ": " + strings.Join(unchanged[s], ", ") + "\n")
	}
	return b.String()
}
