package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/view"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(dispatch.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// registeredRoutes reads the patterns Routes registers from the package's
// source: http.ServeMux cannot list them.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "Routes" || fn.Recv == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					p, _ := strconv.Unquote(lit.Value)
					out = append(out, p)
				}
				return true
			})
		}
	}
	slices.Sort(out)
	return out
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(documented)
	registered := registeredRoutes(t)
	if !slices.Equal(documented, registered) {
		t.Errorf("the document and Routes differ:\n documented %q\n registered %q", documented, registered)
	}

	// And the mux really serves each documented operation with that pattern.
	h := start(t)
	mux := http.NewServeMux()
	h.svc.Routes(mux)
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		r := httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "xuhui-01jz2fzz00q7qqz92frttftd28"), nil)
		if _, pattern := mux.Handler(r); pattern != op {
			t.Errorf("%s is served by pattern %q", op, pattern)
		}
	}
}

// humanActions are the actions a person may ask for through the API: every
// row of the table but create, whose roles include one a token can carry.
func humanActions() map[lifecycle.Action][]lifecycle.Transition {
	out := map[lifecycle.Action][]lifecycle.Transition{}
	for _, tr := range lifecycle.Table() {
		if tr.Action == lifecycle.Create {
			continue
		}
		if slices.ContainsFunc(tr.Roles, func(r auth.Role) bool { return r != lifecycle.RoleSystem }) {
			out[tr.Action] = append(out[tr.Action], tr)
		}
	}
	return out
}

func TestOpenAPIActionsFollowTheTable(t *testing.T) {
	doc := loadOpenAPI(t)
	req := doc.Components.Schemas["ActionRequest"].Value
	want := humanActions()
	var documented, table []string
	for a := range req.Discriminator.Mapping {
		documented = append(documented, a)
	}
	for a := range want {
		table = append(table, string(a))
	}
	slices.Sort(documented)
	slices.Sort(table)
	if !slices.Equal(documented, table) {
		t.Fatalf("action bodies %q, the table's actions %q: update openapi.yaml", documented, table)
	}
	props := map[string]bool{}
	for a, rows := range want {
		s := doc.Components.Schemas["Action_"+string(a)]
		if s == nil {
			t.Errorf("no schema Action_%s", a)
			continue
		}
		if enum := s.Value.Properties["action"].Value.Enum; len(enum) != 1 || enum[0] != string(a) {
			t.Errorf("Action_%s: action enum %v", a, enum)
		}
		needsNote := !slices.ContainsFunc(rows, func(tr lifecycle.Transition) bool { return !tr.NeedsNote })
		if got := slices.Contains(s.Value.Required, "note"); got != needsNote {
			t.Errorf("Action_%s: note required %v, the table says %v", a, got, needsNote)
		}
		for p := range s.Value.Properties {
			props[p] = true
		}
	}
	checkFields(t, "the action bodies", props, jsonFields(reflect.TypeFor[dispatch.ActionRequest]()))
}

// jsonFields returns the JSON names of t's fields, embedded structs
// flattened as encoding/json does.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k := range jsonFields(f.Type) {
				out[k] = true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = true
	}
	return out
}

func checkFields(t *testing.T, what string, documented, code map[string]bool) {
	t.Helper()
	for k := range code {
		if !documented[k] {
			t.Errorf("%s: field %q is not in openapi.yaml", what, k)
		}
	}
	for k := range documented {
		if !code[k] {
			t.Errorf("%s: openapi.yaml documents %q, which the code does not have", what, k)
		}
	}
}

func TestOpenAPISchemasMatchTheTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	caseFields := jsonFields(reflect.TypeFor[view.Case]())
	caseFields["allowed_actions"] = true // added to single-case answers by the API
	for name, fields := range map[string]map[string]bool{
		"Case":              caseFields,
		"Part":              jsonFields(reflect.TypeFor[view.Part]()),
		"Deadline":          jsonFields(reflect.TypeFor[view.Deadline]()),
		"Extension":         jsonFields(reflect.TypeFor[view.Extension]()),
		"AuditEntry":        jsonFields(reflect.TypeFor[view.AuditEntry]()),
		"Location":          jsonFields(reflect.TypeFor[view.Location]()),
		"Sla":               jsonFields(reflect.TypeFor[view.Sla]()),
		"AllowedAction":     jsonFields(reflect.TypeFor[lifecycle.Option]()),
		"SlaBody":           jsonFields(reflect.TypeFor[dispatch.SlaBody]()),
		"CreateRequest":     jsonFields(reflect.TypeFor[dispatch.CreateRequest]()),
		"Stats":             jsonFields(reflect.TypeFor[dispatch.StatsResponse]()),
		"Figures":           jsonFields(reflect.TypeFor[dispatch.Figures]()),
		"DepartmentFigures": jsonFields(reflect.TypeFor[dispatch.DepartmentFigures]()),
		"Denial":            jsonFields(reflect.TypeFor[casestore.Denial]()),
		"DenialCount":       jsonFields(reflect.TypeFor[casestore.DenialCount]()),
		"DenialList":        jsonFields(reflect.TypeFor[casestore.DenialLog]()),
	} {
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Errorf("no schema %s", name)
			continue
		}
		documented := map[string]bool{}
		for p := range s.Value.Properties {
			documented[p] = true
		}
		checkFields(t, name, documented, fields)
	}
}

// validator checks requests and the real answers of the handlers against
// the document.
type validator struct {
	t      *testing.T
	h      *harness
	router routers.Router
}

// call sends a request as c and checks the answer (status included) against
// the document; the request too when it is meant to be valid.
func (v *validator) call(c *client, method, path string, body any, validRequest bool) (int, []byte) {
	v.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			v.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, v.h.api.URL+path, bytes.NewReader(raw))
	if err != nil {
		v.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// The router matches on the path alone: the document's server is "/".
	route, params, err := v.router.FindRoute(withHost(req))
	if err != nil {
		v.t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if validRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			v.t.Errorf("%s %s: request does not follow the document: %v", method, path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(raw))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(out)), Options: opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		v.t.Errorf("%s %s → %d %s\ndoes not follow the document: %v", method, path, resp.StatusCode, out, err)
	}
	return resp.StatusCode, out
}

// withHost gives a copy of r a path-only URL, as the document's server "/"
// describes.
func withHost(r *http.Request) *http.Request {
	c := r.Clone(context.Background())
	c.URL.Scheme, c.URL.Host, c.Host = "", "", ""
	return c
}

func (v *validator) act(c *client, id string, body map[string]any, want int) map[string]any {
	v.t.Helper()
	status, b := v.call(c, "POST", "/v1/cases/"+id+"/actions", body, want < 500)
	if status != want {
		v.t.Fatalf("%v: %d %s, want %d", body, status, b, want)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// TestOpenAPIAnswersFollowTheDocument drives every endpoint and every action
// a person can take through the real handlers and validates each request
// and answer against the document.
func TestOpenAPIAnswersFollowTheDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	h := start(t)
	v := &validator{t: t, h: h, router: router}
	cmd := h.as(auth.RoleCommander, "")
	disp := h.as(auth.RoleDispatcher, "")
	water := h.as(auth.RoleDepartment, "water-affairs")
	traffic := h.as(auth.RoleDepartment, "traffic-police")
	yes, no := true, false
	sla := map[string]any{"accept": "10m", "handle": "2h"}

	open := func(rid string, extra map[string]any) string {
		body := map[string]any{"title": "积水", "district": "xuhui", "request_id": rid, "location": map[string]any{"street": "tianping", "lon": 121.4, "lat": 31.2}}
		for k, x := range extra {
			body[k] = x
		}
		status, b := v.call(disp, "POST", "/v1/cases", body, true)
		if status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, b)
		}
		var c view.Case
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}

	// A case through the whole loop, with every action on the way.
	a := open("a", nil)
	if status, _ := v.call(disp, "POST", "/v1/cases", map[string]any{"title": "积水", "district": "xuhui", "request_id": "a"}, true); status != 200 {
		t.Errorf("repeated create: %d, want 200", status)
	}
	v.act(disp, a, map[string]any{"action": "dispatch", "lead": "water-affairs", "assist": []string{"traffic-police"}, "sla": sla, "expected_version": 1, "request_id": "a1"}, 200)
	v.act(water, a, map[string]any{"action": "accept", "expected_version": 2, "request_id": "a2"}, 200)
	v.act(traffic, a, map[string]any{"action": "accept", "expected_version": 3, "request_id": "a3"}, 200)
	v.act(water, a, map[string]any{"action": "suspend", "note": "waiting for the pump", "expected_version": 4, "request_id": "a4"}, 200)
	h.setNow(t0.Add(time.Hour))
	v.act(water, a, map[string]any{"action": "resume", "expected_version": 5, "request_id": "a5"}, 200)
	v.act(water, a, map[string]any{"action": "request_extension", "note": "more rain", "extend_by": "2h", "expected_version": 6, "request_id": "a6"}, 200)
	v.act(disp, a, map[string]any{"action": "grant_extension", "department": "water-affairs", "expected_version": 7, "request_id": "a7"}, 200)
	v.act(traffic, a, map[string]any{"action": "request_extension", "note": "jam", "until": t0.Add(5 * time.Hour).Format(time.RFC3339), "expected_version": 8, "request_id": "a8"}, 200)
	v.act(disp, a, map[string]any{"action": "refuse_extension", "department": "traffic-police", "note": "no", "expected_version": 9, "request_id": "a9"}, 200)
	v.act(water, a, map[string]any{"action": "handle", "note": "pumped", "expected_version": 10, "request_id": "a10"}, 200)
	v.act(traffic, a, map[string]any{"action": "handle", "note": "cleared", "expected_version": 11, "request_id": "a11"}, 200)
	v.act(disp, a, map[string]any{"action": "verify", "pass": no, "note": "still wet", "expected_version": 12, "request_id": "a12"}, 200)
	v.act(cmd, a, map[string]any{"action": "escalate", "note": "slow", "expected_version": 13, "request_id": "a13"}, 200)
	v.act(water, a, map[string]any{"action": "comment", "note": "on it", "expected_version": 14, "request_id": "a14"}, 200)
	v.act(water, a, map[string]any{"action": "handle", "note": "dry", "expected_version": 15, "request_id": "a15"}, 200)
	v.act(traffic, a, map[string]any{"action": "handle", "note": "open", "expected_version": 16, "request_id": "a16"}, 200)
	v.act(disp, a, map[string]any{"action": "verify", "pass": yes, "expected_version": 17, "request_id": "a17"}, 200)

	// Return, cancel and merge on other cases.
	b := open("b", map[string]any{"lead": "water-affairs", "sla": sla})
	v.act(water, b, map[string]any{"action": "return", "note": "not ours", "expected_version": 1, "request_id": "b1"}, 200)
	v.act(disp, b, map[string]any{"action": "cancel", "note": "false alarm", "expected_version": 2, "request_id": "b2"}, 200)
	c := open("c", map[string]any{"lead": "water-affairs", "sla": sla})
	d := open("d", map[string]any{"lead": "water-affairs", "sla": sla})
	v.act(disp, d, map[string]any{"action": "merge", "into": c, "note": "same puddle", "expected_version": 1, "request_id": "d1"}, 200)

	// Errors, which follow the document too.
	v.act(disp, a, map[string]any{"action": "comment", "note": "late", "expected_version": 3, "request_id": "x1"}, 409)
	v.act(disp, b, map[string]any{"action": "accept", "expected_version": 3, "request_id": "x2"}, 403)
	v.act(h.as(auth.RoleDepartment, "gas"), c, map[string]any{"action": "accept", "expected_version": 2, "request_id": "x3"}, 404)
	v.call(disp, "POST", "/v1/cases/"+a+"/actions", map[string]any{"action": "fly"}, false)
	v.call(disp, "POST", "/v1/cases", map[string]any{"title": ""}, false)
	v.call(&client{h, ""}, "GET", "/v1/cases", nil, true)
	v.call(h.as(auth.RoleViewer, ""), "GET", "/v1/cases/"+casestore.NewID("xuhui", t0), nil, true)
	v.call(cmd, "GET", "/v1/cases?limit=0", nil, false)
	v.call(cmd, "GET", "/v1/stats?from=yesterday", nil, false)

	// Reads.
	for _, c := range []*client{cmd, disp, water, h.as(auth.RoleViewer, "")} {
		v.call(c, "GET", "/v1/cases", nil, true)
		v.call(c, "GET", "/v1/cases/"+a, nil, true)
		v.call(c, "GET", "/v1/stats", nil, true)
	}
	status, page := v.call(cmd, "GET", "/v1/cases?status=open&district=xuhui&department=water-affairs&arbitration=false&limit=1", nil, true)
	var l struct {
		NextCursor string `json:"next_cursor"`
	}
	if status != 200 || json.Unmarshal(page, &l) != nil || l.NextCursor == "" {
		t.Fatalf("first page: %d %s", status, page)
	}
	v.call(cmd, "GET", "/v1/cases?limit=1&cursor="+l.NextCursor, nil, true)
	v.call(cmd, "GET", "/v1/stats?department=water-affairs&district=xuhui&from="+t0.Add(-time.Hour).Format(time.RFC3339)+"&to="+t0.Add(time.Hour).Format(time.RFC3339), nil, true)
	v.call(cmd, "GET", "/v1/cases/"+b+"/denials", nil, true)
	v.call(disp, "GET", "/v1/cases/"+b+"/denials", nil, true)
	if status, body := v.call(water, "GET", "/v1/openapi.yaml", nil, true); status != 200 || !bytes.Equal(body, dispatch.OpenAPI) {
		t.Errorf("openapi.yaml: %d", status)
	}
}
