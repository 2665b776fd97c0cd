package engine

import (
	"strings"
	"testing"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

const escalatePack = `
pack: flood-control
owner: water-affairs
rules:
  - id: waterlogging
    when: event.type == "waterlogging" && (event.attrs.water_depth_cm ?? 0) >= 15
    severity: moderate
    escalate:
      - {when: event.attrs.water_depth_cm >= 50, severity: extreme}
      - {when: event.attrs.water_depth_cm >= 30, severity: severe}
    group_by: [district, street]
    summary: "{{ .labels.street }}: {{ .event.attrs.water_depth_cm }} cm"
  - id: callers
    when: event.type == "waterlogging" && event.source == "hotline"
    severity: minor
    count: {at_least: 3, within: 30m, distinct: event.attrs.caller_id}
`

func TestEscalateSummaryAndDistinct(t *testing.T) {
	e, err := New(compile(t, escalatePack), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker()
	var fp string
	for _, tc := range []struct {
		depth float64
		want  cityhubv1.Severity
		step  string
	}{
		{20, cityhubv1.Severity_SEVERITY_MODERATE, ""},
		{35, cityhubv1.Severity_SEVERITY_SEVERE, "escalate[1]: event.attrs.water_depth_cm >= 30 = true → severe"},
		{60, cityhubv1.Severity_SEVERITY_EXTREME, "escalate[0]: event.attrs.water_depth_cm >= 50 = true → extreme"},
		{16, cityhubv1.Severity_SEVERITY_MODERATE, ""},
	} {
		got := w.Eval(event("waterlogging", "xuhui", "tianping", map[string]any{"water_depth_cm": tc.depth}), nil)
		if len(got) != 1 {
			t.Fatalf("depth %v: %d results", tc.depth, len(got))
		}
		r := got[0]
		if r.Severity != tc.want {
			t.Errorf("depth %v: severity %s, want %s", tc.depth, r.Severity.Name(), tc.want.Name())
		}
		// Escalating or not, it is the same alert.
		if fp != "" && r.Fingerprint != fp {
			t.Errorf("depth %v: fingerprint changed", tc.depth)
		}
		fp = r.Fingerprint
		last := r.Explanation[len(r.Explanation)-1]
		gotStep := ""
		if strings.HasPrefix(last.Expr, "escalate") {
			gotStep = last.Expr + " = " + last.Value
		}
		if gotStep != tc.step {
			t.Errorf("depth %v: escalation explained as %q, want %q", tc.depth, gotStep, tc.step)
		}
		if want := "tianping: " + strings.TrimSuffix(strings.TrimSuffix(formatValue(tc.depth), ".0"), "") + " cm"; r.Summary != want {
			t.Errorf("summary = %q, want %q", r.Summary, want)
		}
	}

	ev := event("waterlogging", "xuhui", "tianping", map[string]any{"caller_id": "138-0000"})
	ev.Source = "hotline"
	got := w.Eval(ev, nil)
	if len(got) != 1 || got[0].Rule.ID != "callers" || got[0].Distinct != "138-0000" {
		t.Errorf("distinct value: %+v", got)
	}
}
