package message

import (
	"strings"
	"testing"
)

func TestRenderAndRefusals(t *testing.T) {
	tpl, err := Parse(`{{ .Case.Title }}（{{ .Case.District }}）`, `{{ .Department }}：请于 {{ clock .Case.AcceptDue }} 前签收。{{ if .AckURL }}签收：{{ .AckURL }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tpl.Render(Sample())
	if err != nil {
		t.Fatal(err)
	}
	if r.Title != "燃气泄漏 天平路（徐汇区）" || !strings.Contains(r.Text, "燃气公司：请于 07-01 11:10 前签收") || !strings.Contains(r.Text, "https://hub.example/ack/sample") {
		t.Errorf("rendered %+v", r)
	}
	for name, tc := range map[string]struct{ title, text, want string }{
		"unknown field":    {"x", "{{ .Case.Colour }}", "can't evaluate field Colour"},
		"unknown function": {"x", `{{ env "HOME" }}`, `function "env" not defined`},
		"syntax":           {"{{ .Case", "x", "unclosed action"},
		"too long":         {"x", `{{ range .Case.Title }}{{ end }}`, "range can't iterate"},
		"renders too much": {"x", strings.Repeat("{{ .Case.Title }}", MaxRendered/10), "renders more than"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.title, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "template:") {
				t.Errorf("the message keeps text/template's prefix: %v", err)
			}
		})
	}
}
