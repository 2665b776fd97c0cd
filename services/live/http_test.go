package live

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	frontendstub "github.com/cityhub/cityhub/frontend-stub"
	"github.com/cityhub/cityhub/services/platform/auth"
)

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestCatalog(t *testing.T) {
	e := newEnv(t, func(g *Gateway) { g.opts.Catalog = testCatalog(t) })
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"bad token", "x.y.z", 401},
		{"source", e.token(auth.Principal{Role: auth.RoleSource, Sources: []string{"iot"}}), 403},
		{"viewer", e.token(auth.Principal{Role: auth.RoleViewer}), 200},
		{"department", e.token(auth.Principal{Role: auth.RoleDepartment, Dept: "water-affairs"}), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, e.srv.URL+"/v1/catalog", tc.token)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				return
			}
			var c struct {
				Districts []struct {
					Code   string
					Name   string
					Centre struct{ Lon, Lat float64 }
				}
				Departments []struct{ Code string }
				EventTypes  []struct{ Code string } `json:"event_types"`
			}
			if err := json.Unmarshal([]byte(body), &c); err != nil {
				t.Fatal(err)
			}
			if len(c.Districts) != 2 || c.Districts[0].Name != "徐汇区" || c.Districts[0].Centre.Lon != 121.43 || len(c.Departments) != 1 || len(c.EventTypes) != 1 {
				t.Errorf("catalog %s", body)
			}
		})
	}
}

func TestPages(t *testing.T) {
	pages := fstest.MapFS{
		"index.html":    {Data: []byte("<!doctype html><title>wall</title>")},
		"app.js":        {Data: []byte("export {}")},
		"style.css":     {Data: []byte("body{}")},
		"icons/bell.js": {Data: []byte("export const bell = 1")},
	}
	e := newEnv(t, func(g *Gateway) { g.opts.Frontend = pages })
	for _, tc := range []struct {
		path, wantType, wantBody string
		want                     int
	}{
		{"/", "text/html", "<title>wall</title>", 200},
		{"/index.html", "text/html", "<title>wall</title>", 200},
		{"/app.js", "javascript", "export {}", 200},
		{"/style.css", "text/css", "body{}", 200},
		{"/icons/bell.js", "javascript", "bell", 200},
		{"/icons/", "", "", 404},
		{"/icons", "", "", 404},
		{"/missing.js", "", "", 404},
		{"/../index.html", "", "", 0}, // cleaned by the client or redirected
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, e.srv.URL+tc.path, "")
			if tc.want == 0 {
				return
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.wantType) {
				t.Errorf("content type %q, want %s", ct, tc.wantType)
			}
			if !strings.Contains(body, tc.wantBody) {
				t.Errorf("body %q", body)
			}
			if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("ETag") == "" {
				t.Error("missing CSP or ETag")
			}
		})
	}
}

// TestRealPages serves the embedded wall screen and console and checks
// that what they load is there.
func TestRealPages(t *testing.T) {
	e := newEnv(t, func(g *Gateway) { g.opts.Frontend = frontendstub.FS })
	resp, body := get(t, e.srv.URL+"/", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `src="wall.js"`) || !strings.Contains(body, `href="wall.css"`) {
		t.Fatalf("GET / = %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, e.srv.URL+"/console", ""); resp.StatusCode != 200 || !strings.Contains(body, `src="console.js"`) {
		t.Fatalf("GET /console = %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{"/wall.js", "/console.js", "/live.js", "/i18n.js", "/base.css", "/wall.css", "/console.css"} {
		if resp, _ := get(t, e.srv.URL+p, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", p, resp.StatusCode)
		}
	}
}
