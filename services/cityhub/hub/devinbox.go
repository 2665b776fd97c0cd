package hub

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// devInbox serves GET /dev/inbox: every message the embedded hub would have
// sent, newest first, with the receiver it was meant for and its
// acknowledgement link — so a newcomer sees what notify does without a
// WeCom group or an SMS gateway. Like the dev sign-in it answers only a
// browser on this machine, and only when the hub runs its embedded Kafka
// or Redis; it is JSON for a client that asks for it.
type devInbox struct {
	enabled bool
	inbox   *receiver.Inbox
}

func (d *devInbox) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /dev/inbox", d.serve)
}

func (d *devInbox) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !d.enabled || d.inbox == nil {
		httperr.Write(w, http.StatusNotFound, "not_found", "the dev inbox is off: this hub runs against external Kafka and Redis, or sends for real", nil)
		return
	}
	if err := localOnly(r, "the dev inbox"); err != nil {
		httperr.Write(w, http.StatusForbidden, "forbidden", err.Error(), nil)
		return
	}
	items := d.inbox.Items()
	if strings.Contains(r.Header.Get("Accept"), "application/json") || r.URL.Query().Get("format") == "json" {
		httperr.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = inboxPage.Execute(w, items)
}

// inboxPage lists the messages; html/template escapes what they say.
var inboxPage = template.Must(template.New("inbox").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>消息收件箱 · cityhub</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#0f1720;color:#e6edf3}
header{padding:12px 20px;background:#16212c;border-bottom:1px solid #2b3a48}
main{max-width:900px;margin:0 auto;padding:12px 20px}
article{border:1px solid #2b3a48;border-radius:8px;padding:10px 14px;margin:10px 0;background:#131c25}
.meta{color:#8aa0b4;font-size:13px}
h2{font-size:16px;margin:4px 0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:6px 0;font:inherit}
a{color:#6cb6ff}
.empty{color:#8aa0b4}
</style></head><body>
<header><strong>消息收件箱</strong> <span class="meta">开发模式：以下消息未真正发出，列出本应发往的接收方 · Dev inbox: what would have been sent</span></header>
<main>
{{- range . }}
<article data-receiver="{{ .Receiver }}" data-case="{{ .CaseID }}">
<div class="meta">{{ .At.Format "2006-01-02 15:04:05" }} UTC · {{ .Receiver }}{{ with .Person }} → {{ . }}{{ end }} · {{ .Change }}{{ with .CaseID }} · {{ . }}{{ end }}</div>
<h2>{{ .Title }}</h2>
<pre>{{ .Text }}</pre>
{{- with .AckURL }}<a class="ack" href="{{ . }}">签收或退回 · accept or return</a>{{ end }}
</article>
{{- else }}
<p class="empty">还没有消息。No messages yet.</p>
{{- end }}
</main></body></html>
`))
