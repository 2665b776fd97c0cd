package config

import (
	"maps"
	"slices"

	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Template is a message template: a title and a text, Go text/templates
// over message.Message, restricted to formatting functions. A field the
// message does not have is refused when the file is loaded.
type Template struct {
	Title string `yaml:"title"`
	Text  string `yaml:"text"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`

	parsed *message.Template
}

// Parsed returns the parsed template.
func (t *Template) Parsed() *message.Template { return t.parsed }

// smsSample is what an SMS gateway's body template sees.
var smsSample = struct{ To, Text string }{To: "13800000001", Text: "燃气泄漏 天平路"}

func (v *validator) templates() {
	for _, name := range slices.Sorted(maps.Keys(v.cfg.Templates)) {
		t := v.cfg.Templates[name]
		at := v.cfg.At["templates"]
		if t.At.Line > 0 {
			at = t.At
		}
		switch {
		case !nameRE.MatchString(name):
			v.errorf(at, "templates: name %q: want lower-case letters, digits, - and _", clip(name))
			continue
		case len(t.Title)+len(t.Text) > MaxTemplateBytes:
			v.errorf(at, "template %s: longer than %d bytes", name, MaxTemplateBytes)
			continue
		case t.Text == "":
			v.errorf(at, "template %s: text: required", name)
			continue
		}
		p, err := message.Parse(t.Title, t.Text)
		if err != nil {
			v.errorf(at, "template %s: %v", name, err)
			continue
		}
		t.parsed = p
		v.cfg.Templates[name] = t
	}
}

// template checks a text template over sample.
func (v *validator) template(text string, at yamlfile.Pos, what string, sample any) {
	if text == "" {
		return
	}
	if len(text) > MaxTemplateBytes {
		v.errorf(at, "%s: longer than %d bytes", what, MaxTemplateBytes)
		return
	}
	if _, err := message.ParseText(what, text, sample); err != nil {
		v.errorf(at, "%v", err)
	}
}
