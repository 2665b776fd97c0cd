package message

import "fmt"

// The default templates, by language: the title and text every receiver
// kind uses unless notify.yaml names another. Chinese is the default
// language of the hub.
var defaults = map[string][2]string{
	"zh": {
		`{{ if .Case }}【{{ changeZH .Change }}】{{ .Case.Title }}{{ else }}【告警{{ changeZH .Change }}】{{ .Alert.Title }}{{ end }}`,
		`{{ if .Case -}}
{{ .Case.District }}{{ with .Case.Address }} {{ . }}{{ end }}，案件 {{ .Case.ID }}
{{- with .Department.Code }}
责任单位：{{ $.Department }}{{ end }}
{{- if not .Case.AcceptDue.IsZero }}
签收时限：{{ clock .Case.AcceptDue }}{{ end }}
{{- with .Person }}
值班人员：{{ .Name }}{{ end }}
{{- with .AckURL }}
签收或退回：{{ . }}{{ end }}
{{- if gt .Count 1 }}
另有 {{ len .More }} 条变更{{ end }}
{{- else -}}
{{ .Alert.District }} {{ .Alert.Severity }}：{{ .Alert.Summary }}
{{ .Alert.URL }}
{{- end }}`,
	},
	"en": {
		`{{ if .Case }}[{{ .Change }}] {{ .Case.Title }}{{ else }}[alert {{ .Change }}] {{ .Alert.Title }}{{ end }}`,
		`{{ if .Case -}}
{{ .Case.District }}{{ with .Case.Address }} {{ . }}{{ end }}, case {{ .Case.ID }}
{{- with .Department.Code }}
For: {{ $.Department }}{{ end }}
{{- if not .Case.AcceptDue.IsZero }}
Accept by: {{ clock .Case.AcceptDue }}{{ end }}
{{- with .Person }}
On duty: {{ .Name }}{{ end }}
{{- with .AckURL }}
Accept or return: {{ . }}{{ end }}
{{- if gt .Count 1 }}
And {{ len .More }} more changes{{ end }}
{{- else -}}
{{ .Alert.District }} {{ .Alert.Severity }}: {{ .Alert.Summary }}
{{ .Alert.URL }}
{{- end }}`,
	},
}

// changesZH names the changes in Chinese.
var changesZH = map[string]string{
	"opened": "立案", "dispatched": "派遣", "accepted": "签收", "warned": "即将超时", "overdue": "超时",
	"escalated": "升级", "returned": "退回", "handled": "处置反馈", "verify_failed": "核查不通过", "closed": "结案",
	"merged": "合并", "cancelled": "作废", "linked": "关联", "firing": "触发", "resolved": "解除",
}

// Default returns the default template in language (zh or en) for
// receivers of kind; every kind shares one today.
func Default(language, kind string) (*Template, error) {
	d, ok := defaults[language]
	if !ok {
		return nil, fmt.Errorf("no default templates in %q", language)
	}
	return Parse(d[0], d[1])
}
