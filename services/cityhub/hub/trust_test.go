package hub_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// copyRules copies the repository's catalog and packs into a directory the
// test may change.
func copyRules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../../rules")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A token names only departments and districts of the catalog the hub runs
// with: one minted for others is refused everywhere, and a department
// removed from the catalog loses access once the hub sees the change.
func TestTokensFollowTheCatalog(t *testing.T) {
	rules := copyRules(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RulesDir: rules})
	police := h.token(t, auth.Principal{Subject: "ps", Role: auth.RoleDepartment, Dept: "public-security"})
	ghost := h.token(t, auth.Principal{Subject: "gb", Role: auth.RoleDepartment, Dept: "ghost-bureau"})
	atlantis := h.token(t, auth.Principal{Subject: "d", Role: auth.RoleDispatcher, Districts: []string{"xuhui", "atlantis"}})
	dial := func(tok string) int {
		url := "ws" + strings.TrimPrefix(h.info.URL, "http") + "/v1/live"
		c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
		if err == nil {
			c.Close()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	for name, tok := range map[string]string{"unknown department": ghost, "unknown district": atlantis} {
		for _, path := range []string{"/v1/cases", "/v1/stats"} {
			if code, body := h.do(t, "GET", path, tok, nil); code != http.StatusUnauthorized {
				t.Errorf("%s: GET %s = %d %s, want 401", name, path, code, body)
			}
		}
		if code := dial(tok); code != http.StatusUnauthorized {
			t.Errorf("%s: /v1/live = %d, want 401", name, code)
		}
	}
	if code, body := h.do(t, "GET", "/v1/cases", police, nil); code != http.StatusOK {
		t.Fatalf("public-security before the change: %d %s", code, body)
	}

	path := filepath.Join(rules, "catalog.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "code: public-security,") {
			kept = append(kept, line)
		}
	}
	if len(kept) == len(strings.Split(string(b), "\n")) {
		t.Fatal("the catalog has no public-security line to remove")
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := h.do(t, "GET", "/v1/cases", police, nil)
		if code == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public-security still reads cases (%d) 30s after leaving the catalog", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := dial(police); code != http.StatusUnauthorized {
		t.Errorf("public-security after the change: /v1/live = %d, want 401", code)
	}
}

// /readyz tells anyone whether the hub is ready, and nothing else.
func TestReadyzSaysOnlyTheStatusToAnyone(t *testing.T) {
	h := startHub(t, hub.Options{DataDir: t.TempDir()})
	// The MQTT bridge may still be connecting to the broker just started.
	code, body := h.do(t, "GET", "/readyz", "", nil)
	for deadline := time.Now().Add(10 * time.Second); code != http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		code, body = h.do(t, "GET", "/readyz", "", nil)
	}
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("GET /readyz = %d %s", code, body)
	}
}
