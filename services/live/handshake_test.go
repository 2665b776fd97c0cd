package live

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/cityhub/cityhub/services/platform/auth"
)

// expiredToken is a well-signed viewer token that expired well past the
// verifier's leeway.
func (e *env) expiredToken() string {
	e.t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": auth.Issuer, "aud": auth.Audience, "sub": "expired-viewer", "role": string(auth.RoleViewer),
		"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// TestHandshakeMatrix tries every way of carrying a token, from an allowed
// page, a foreign page and a program without an Origin, with a valid, an
// expired and a wrong-role token.
func TestHandshakeMatrix(t *testing.T) {
	e := newEnv(t, nil)
	tokens := map[string]string{
		"valid":      e.token(auth.Principal{Role: auth.RoleViewer}),
		"expired":    e.expiredToken(),
		"wrong role": e.token(auth.Principal{Role: auth.RoleSource, Sources: []string{"iot"}}),
	}
	origins := map[string]string{"allowed": testOrigin, "foreign": "https://evil.example", "missing": ""}
	// want gives the status by carrier, origin and token.
	want := func(carrier, origin, token string) int {
		switch {
		case origin == "foreign":
			return http.StatusForbidden // refused before the token is looked at
		case origin == "missing" && carrier != "header":
			return http.StatusForbidden // a program must use the header
		case token == "expired":
			return http.StatusUnauthorized
		case token == "wrong role":
			return http.StatusForbidden
		}
		return http.StatusSwitchingProtocols
	}
	for _, carrier := range []string{"header", "subprotocol", "query"} {
		for _, origin := range []string{"allowed", "foreign", "missing"} {
			for _, token := range []string{"valid", "expired", "wrong role"} {
				t.Run(fmt.Sprintf("%s/%s origin/%s token", carrier, origin, token), func(t *testing.T) {
					h := http.Header{}
					if o := origins[origin]; o != "" {
						h.Set("Origin", o)
					}
					d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
					u := e.url()
					switch carrier {
					case "header":
						h.Set("Authorization", "Bearer "+tokens[token])
					case "subprotocol":
						d.Subprotocols = []string{subprotocol, tokenProtocolPrefix + tokens[token]}
					case "query":
						u += "?access_token=" + url.QueryEscape(tokens[token])
					}
					ws, resp, err := d.Dial(u, h)
					got := 0
					if resp != nil {
						got = resp.StatusCode
					}
					if w := want(carrier, origin, token); got != w {
						t.Fatalf("status %d, want %d (%v)", got, w, err)
					}
					if err != nil {
						if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" {
							t.Errorf("a refused handshake selected subprotocol %q", p)
						}
						return
					}
					defer ws.Close()
					if carrier == "subprotocol" && ws.Subprotocol() != subprotocol {
						t.Errorf("subprotocol %q, want %s echoed, never the token", ws.Subprotocol(), subprotocol)
					}
					subscribe(t, ws, subscribeAll)
				})
			}
		}
	}
}
