package hub

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

const testCatalog = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.4365, lat: 31.1886}}
  - {code: pudong, name: 浦东新区, centre: {lon: 121.5447, lat: 31.2224}}
departments:
  - {code: water-affairs, name: 水务局}
event_types:
  - {code: waterlogging, name: 道路积水, owner: water-affairs, attrs: {water_depth_cm: number}}
`

func newTestDevSignIn(t *testing.T, info Info) (*http.ServeMux, *auth.Verifier) {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	newDevSignIn(key, cat, info, slog.New(slog.DiscardHandler)).routes(mux)
	return mux, v
}

// signInRequest is a POST as the console on http://127.0.0.1:8080 sends it.
func signInRequest(body string) *http.Request {
	r := httptest.NewRequest("POST", "http://127.0.0.1:8080/dev/signin", strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:53412"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "http://127.0.0.1:8080")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return r
}

func TestDevSignInMintsAShortLivedToken(t *testing.T) {
	mux, v := newTestDevSignIn(t, Info{EmbeddedKafka: true, DevSignIn: true})
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, signInRequest(`{"role":"department","dept":"water-affairs","districts":["xuhui","xuhui"]}`))
	if w.Code != http.StatusOK {
		t.Fatalf("POST = %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var got devSignInResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(got.Token)
	if err != nil {
		t.Fatalf("the minted token does not verify: %v", err)
	}
	if p.Role != auth.RoleDepartment || p.Dept != "water-affairs" || !slices.Equal(p.Districts, []string{"xuhui"}) || p.Subject != "dev-department-water-affairs" {
		t.Errorf("principal = %+v", p)
	}
	if left := time.Until(p.ExpiresAt); left > DevSignInTTL || left < DevSignInTTL-time.Minute {
		t.Errorf("the token lives %v, want about %v", left, DevSignInTTL)
	}
}

func TestDevSignInStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		info   Info
		remote string
		want   bool
	}{
		{"embedded hub, local client", Info{EmbeddedRedis: true, DevSignIn: true}, "127.0.0.1:40000", true},
		{"embedded hub, IPv6 loopback", Info{EmbeddedKafka: true, DevSignIn: true}, "[::1]:40000", true},
		{"embedded hub, remote client", Info{EmbeddedKafka: true, DevSignIn: true}, "192.0.2.7:40000", false},
		{"hub on external servers", Info{}, "127.0.0.1:40000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux, _ := newTestDevSignIn(t, tc.info)
			r := httptest.NewRequest("GET", "http://localhost:8080/dev/signin", nil)
			r.RemoteAddr = tc.remote
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			var st devSignInStatus
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != http.StatusOK {
				t.Fatalf("GET = %d %s", w.Code, w.Body)
			}
			if st.Enabled != tc.want {
				t.Errorf("enabled = %v, want %v", st.Enabled, tc.want)
			}
			if st.Enabled && (len(st.Departments) != 1 || len(st.Districts) != 2 || !slices.Contains(st.Roles, "department") || slices.Contains(st.Roles, "source")) {
				t.Errorf("status = %+v", st)
			}
			if !st.Enabled && (len(st.Departments) > 0 || len(st.Roles) > 0) {
				t.Errorf("a refused caller learns %+v", st)
			}
		})
	}
}

func TestDevSignInRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		info   Info
		change func(r *http.Request)
		body   string
		want   int
	}{
		{name: "hub on external servers", info: Info{}, want: http.StatusNotFound},
		{name: "remote client", change: func(r *http.Request) { r.RemoteAddr = "10.1.2.3:5000" }, want: http.StatusForbidden},
		{name: "a name other than loopback (DNS rebinding)", change: func(r *http.Request) {
			r.Host = "attacker.example:8080"
			r.Header.Set("Origin", "http://attacker.example:8080")
		}, want: http.StatusForbidden},
		{name: "no origin", change: func(r *http.Request) { r.Header.Del("Origin") }, want: http.StatusForbidden},
		{name: "another origin", change: func(r *http.Request) { r.Header.Set("Origin", "http://localhost:3000") }, want: http.StatusForbidden},
		{name: "cross-site fetch", change: func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, want: http.StatusForbidden},
		{name: "form post", change: func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, want: http.StatusUnsupportedMediaType},
		{name: "source role", body: `{"role":"source"}`, want: http.StatusBadRequest},
		{name: "unknown role", body: `{"role":"mayor"}`, want: http.StatusBadRequest},
		{name: "department without dept", body: `{"role":"department"}`, want: http.StatusBadRequest},
		{name: "unknown department", body: `{"role":"department","dept":"navy"}`, want: http.StatusBadRequest},
		{name: "unknown district", body: `{"role":"dispatcher","districts":["atlantis"]}`, want: http.StatusBadRequest},
		{name: "unknown field", body: `{"role":"viewer","ttl":"100h"}`, want: http.StatusBadRequest},
		{name: "trailing data", body: `{"role":"viewer"} {}`, want: http.StatusBadRequest},
		{name: "oversized body", body: `{"role":"viewer","dept":"` + strings.Repeat("x", maxDevSignInBody) + `"}`, want: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := Info{EmbeddedKafka: true, DevSignIn: true}
			if tc.want == http.StatusNotFound {
				info = tc.info
			}
			mux, _ := newTestDevSignIn(t, info)
			body := tc.body
			if body == "" {
				body = `{"role":"commander"}`
			}
			r := signInRequest(body)
			if tc.change != nil {
				tc.change(r)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("POST = %d %s, want %d", w.Code, w.Body, tc.want)
			}
			if strings.Contains(w.Body.String(), `"token"`) {
				t.Errorf("a refusal carries a token: %s", w.Body)
			}
		})
	}
}
