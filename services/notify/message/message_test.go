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

func TestDefaultTemplates(t *testing.T) {
	for _, lang := range []string{"zh", "en"} {
		tpl, err := Default(lang, "sms")
		if err != nil {
			t.Fatal(err)
		}
		r, err := tpl.Render(Sample())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Title, "燃气泄漏 天平路") || !strings.Contains(r.Text, "https://hub.example/ack/sample") || !strings.Contains(r.Text, "张伟") {
			t.Errorf("%s: %+v", lang, r)
		}
		alert := Sample()
		alert.Case, alert.Change = nil, "firing"
		if r, err := tpl.Render(alert); err != nil || !strings.Contains(r.Title, "燃气泄漏") || !strings.Contains(r.Text, "LEL 32%") {
			t.Errorf("%s alert: %+v, %v", lang, r, err)
		}
	}
	if r, _ := mustDefault(t, "zh").Render(Sample()); !strings.HasPrefix(r.Title, "【派遣】") {
		t.Errorf("zh title %q", r.Title)
	}
	if _, err := Default("fr", "sms"); err == nil {
		t.Error("a language without templates")
	}
}

func mustDefault(t *testing.T, lang string) *Template {
	tpl, err := Default(lang, "sms")
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}
