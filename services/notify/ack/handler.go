package ack

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// Handler serves the links: GET /ack/{token} shows the case and the
// choices, POST /ack/{token} takes one. It is safe for concurrent use.
type Handler struct {
	Signer  *Signer
	Cases   *cases.Service
	Redis   redis.UniversalClient
	Catalog *catalog.Catalog
	Now     func() time.Time
	Logger  *slog.Logger
}

// Routes registers the link's page and its form.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ack/{token}", h.show)
	mux.HandleFunc("POST /ack/{token}", h.act)
}

// MaxNoteBytes bounds the reason a person gives for handing a part back.
const MaxNoteBytes = 2 << 10

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// principal is the person of c acting for their department.
func principal(c Claims) *auth.Principal {
	return &auth.Principal{Subject: c.Person, Role: auth.RoleDepartment, Dept: c.Dept}
}

// page is what the page template shows.
type page struct {
	Status  int
	Title   string
	Message string
	Case    *cityhubv1.Case
	Part    *cityhubv1.Part
	Dept    string
	Person  string
	Open    bool // the part can still be accepted or returned
	Done    string
	// District is the case's district by name; CaseStatus and PartStatus
	// the statuses as a person reads them.
	District, CaseStatus, PartStatus string
}

// statusNames are the statuses of a case and a part as the page says them.
var statusNames = map[cityhubv1.CaseStatus]string{
	cityhubv1.CaseStatus_CASE_STATUS_NEW:        "待派遣 · new",
	cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED: "待签收 · dispatched",
	cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED:   "处置中 · accepted",
	cityhubv1.CaseStatus_CASE_STATUS_HANDLED:    "待核查 · handled",
	cityhubv1.CaseStatus_CASE_STATUS_CLOSED:     "已结案 · closed",
	cityhubv1.CaseStatus_CASE_STATUS_CANCELLED:  "已作废 · cancelled",
}

func statusName(s cityhubv1.CaseStatus) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return s.Name()
}

func (h *Handler) claims(w http.ResponseWriter, r *http.Request) (Claims, bool) {
	c, err := h.Signer.Verify(r.PathValue("token"), h.now())
	switch {
	case errors.Is(err, ErrExpired):
		h.render(w, page{Status: http.StatusGone, Title: "链接已过期 · Link expired", Message: "这个链接已过期，请在派遣台处理。This link has expired; use the console."})
		return c, false
	case err != nil:
		h.render(w, page{Status: http.StatusForbidden, Title: "链接无效 · Invalid link", Message: "这个链接不是本平台发出的，或已被改动。This link was not made by the hub, or was altered."})
		return c, false
	}
	return c, true
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	c, ok := h.claims(w, r)
	if !ok {
		return
	}
	cs, err := h.Cases.Get(r.Context(), principal(c), c.Case)
	if err != nil {
		h.caseError(w, err)
		return
	}
	p := h.view(c, cs.Case)
	if used, _ := h.used(r.Context(), c, r.PathValue("token")); used {
		p.Open, p.Message = false, "这个链接已经用过。This link has been used."
	}
	h.render(w, p)
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	c, ok := h.claims(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4*MaxNoteBytes)
	if err := r.ParseForm(); err != nil {
		h.render(w, page{Status: http.StatusBadRequest, Title: "请求有误 · Bad request", Message: "表单无法读取。The form could not be read."})
		return
	}
	var action lifecycle.Action
	switch r.PostForm.Get("action") {
	case "accept":
		action = lifecycle.Accept
	case "return":
		action = lifecycle.Return
	default:
		h.render(w, page{Status: http.StatusBadRequest, Title: "请求有误 · Bad request", Message: "请选择签收或退回。Choose accept or return."})
		return
	}
	note := strings.TrimSpace(r.PostForm.Get("note"))
	if len(note) > MaxNoteBytes {
		h.render(w, page{Status: http.StatusBadRequest, Title: "请求有误 · Bad request", Message: "说明太长。The note is too long."})
		return
	}
	if action == lifecycle.Return && note == "" {
		h.render(w, page{Status: http.StatusBadRequest, Title: "请求有误 · Bad request", Message: "退回需要说明原因。Say why the part is not yours."})
		return
	}
	token := r.PathValue("token")
	ctx := r.Context()
	// One use: the first request through takes the link. A failure that
	// may pass gives it back, so the person can try again.
	took, err := h.take(ctx, c, token)
	if err != nil {
		h.internal(w, err)
		return
	}
	if !took {
		h.render(w, page{Status: http.StatusConflict, Title: "链接已用过 · Link used", Message: "这个链接已经用过。This link has been used."})
		return
	}
	p := principal(c)
	req := cases.ActRequest{Action: action, Department: c.Dept, Note: note, RequestID: "ack." + ID(token), Via: "notify:" + c.Via}
	var res cases.Case
	for attempt := 0; ; attempt++ {
		cur, err := h.Cases.Get(ctx, p, c.Case)
		if err == nil {
			req.ExpectedVersion = cur.Case.GetVersion()
			res, err = h.Cases.Act(ctx, p, c.Case, req)
		}
		var conflict *cases.ConflictError
		if errors.As(err, &conflict) && attempt < 2 {
			continue // the case moved on meanwhile: decide on what it is now
		}
		if err != nil {
			// What changed nothing and may go otherwise next time gives the
			// link back; a refusal because the part moved on keeps it used.
			var op *cases.OpError
			var invalid *cases.InvalidError
			if errors.As(err, &op) || errors.As(err, &invalid) {
				h.release(ctx, c, token)
			}
			h.caseError(w, err)
			return
		}
		break
	}
	v := h.view(c, res.Case)
	v.Open = false
	v.Done = map[lifecycle.Action]string{lifecycle.Accept: "已签收。Accepted.", lifecycle.Return: "已退回派遣员。Handed back to the dispatcher."}[action]
	h.render(w, v)
}

// caseError tells the person why the case service refused.
func (h *Handler) caseError(w http.ResponseWriter, err error) {
	var forbidden *cases.ForbiddenError
	var invalid *cases.InvalidError
	switch {
	case errors.Is(err, cases.ErrNotFound):
		h.render(w, page{Status: http.StatusNotFound, Title: "案件不存在 · No such case", Message: "案件已不在您的部门名下。The case is no longer with your department."})
	case errors.As(err, &forbidden), errors.Is(err, cases.ErrTransition):
		h.render(w, page{Status: http.StatusConflict, Title: "无法办理 · Not possible now", Message: "案件状态已变化，无需或无法再签收或退回：" + err.Error()})
	case errors.As(err, &invalid):
		h.render(w, page{Status: http.StatusBadRequest, Title: "请求有误 · Bad request", Message: err.Error()})
	default:
		h.internal(w, err)
	}
}

func (h *Handler) internal(w http.ResponseWriter, err error) {
	if h.Logger != nil {
		h.Logger.Error("acknowledgement link failed", "err", err)
	}
	h.render(w, page{Status: http.StatusServiceUnavailable, Title: "暂时无法办理 · Try again", Message: "平台暂时无法办理，请稍后再试。The hub cannot do it just now; try again shortly."})
}

func (h *Handler) view(c Claims, cs *cityhubv1.Case) page {
	p := page{Status: http.StatusOK, Title: cs.GetTitle(), Case: cs, Dept: c.Dept, Person: c.Person,
		District: cs.GetDistrict(), CaseStatus: statusName(cs.GetStatus())}
	if d, ok := h.Catalog.Department(c.Dept); ok {
		p.Dept = d.Name
	}
	if d, ok := h.Catalog.District(cs.GetDistrict()); ok {
		p.District = d.Name
	}
	for _, part := range cs.GetParts() {
		if part.GetDepartment() == c.Dept {
			p.Part = part
			p.PartStatus = statusName(part.GetStatus())
			p.Open = part.GetStatus() == cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED && cs.GetStatus().Open()
		}
	}
	return p
}

// usedKey is the single-use marker of token, under the case's district as
// hash tag.
func usedKey(c Claims, token string) string {
	district, _, _ := strings.Cut(c.Case, "-")
	return "cityhub:notify:ack:{" + district + "}:" + ID(token)
}

func (h *Handler) take(ctx context.Context, c Claims, token string) (bool, error) {
	ttl := time.Until(time.Unix(c.Expires, 0)) + time.Hour
	return h.Redis.SetNX(ctx, usedKey(c, token), "1", ttl).Result()
}

func (h *Handler) release(ctx context.Context, c Claims, token string) {
	h.Redis.Del(ctx, usedKey(c, token))
}

func (h *Handler) used(ctx context.Context, c Claims, token string) (bool, error) {
	n, err := h.Redis.Exists(ctx, usedKey(c, token)).Result()
	return n == 1, err
}

func (h *Handler) render(w http.ResponseWriter, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(p.Status)
	_ = pageTemplate.Execute(w, p)
}

var pageTemplate = template.Must(template.New("ack").Funcs(template.FuncMap{
	"clock": func(t interface{ AsTime() time.Time }) string {
		if t == nil {
			return ""
		}
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			loc = time.FixedZone("CST", 8*3600)
		}
		return t.AsTime().In(loc).Format("01-02 15:04")
	},
}).Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ .Title }} · cityhub</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#17202a}
main{max-width:560px;margin:0 auto;padding:16px}
h1{font-size:20px;margin:8px 0 12px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.12);margin-bottom:14px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}
dt{color:#5d6d7e;white-space:nowrap}
dd{margin:0;overflow-wrap:anywhere}
button{font-size:17px;padding:12px;border:0;border-radius:8px;width:100%;margin-top:10px}
.accept{background:#1e8449;color:#fff}
.return{background:#d35400;color:#fff}
textarea{width:100%;box-sizing:border-box;font:inherit;min-height:4em}
.msg{color:#5d6d7e}
.done{color:#1e8449;font-weight:600}
</style></head><body><main>
<h1>{{ .Title }}</h1>
{{- with .Message }}<p class="msg">{{ . }}</p>{{ end }}
{{- with .Done }}<p class="done">{{ . }}</p>{{ end }}
{{- with .Case }}
<div class="card"><dl>
<dt>案件</dt><dd>{{ .Id }}</dd>
<dt>地点</dt><dd>{{ $.District }}{{ with .Location }} {{ .Address }}{{ end }}</dd>
<dt>状态</dt><dd>{{ $.CaseStatus }}</dd>
{{- with $.Part }}
<dt>{{ $.Dept }}</dt><dd>{{ $.PartStatus }}{{ with .AcceptDeadline }}{{ with .DueAt }}，签收时限 {{ clock . }}{{ end }}{{ end }}</dd>
{{- end }}
</dl></div>
{{- end }}
{{- if .Open }}
<form method="post" class="card">
<button class="accept" name="action" value="accept">签收 · Accept</button>
</form>
<form method="post" class="card">
<label for="note">退回原因 · Why it is not ours</label>
<textarea id="note" name="note" required maxlength="2000"></textarea>
<button class="return" name="action" value="return">退回 · Return</button>
</form>
{{- end }}
</main></body></html>
`))
