package auth

import (
	"net/http"
	"slices"
	"strings"

	"github.com/cityhub/cityhub/services/platform/httperr"
)

// BearerToken returns the token of an "Authorization: Bearer …" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// Require returns middleware that authenticates the bearer token of every
// request and lets through only the given roles: 401 without a valid token,
// 403 for another role. The principal is in the request's context.
func (v *Verifier) Require(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := BearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cityhub"`)
				httperr.Write(w, http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer token is required", nil)
				return
			}
			p, err := v.Verify(tok)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cityhub", error="invalid_token"`)
				httperr.Write(w, http.StatusUnauthorized, "unauthenticated", err.Error(), nil)
				return
			}
			if len(roles) > 0 && !slices.Contains(roles, p.Role) {
				httperr.Write(w, http.StatusForbidden, "forbidden", "role "+string(p.Role)+" may not do this", nil)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
		})
	}
}

// Allows reports whether r carries a valid bearer token of one of roles
// (of any role when none are given), for endpoints that answer everyone
// but tell more to some.
func (v *Verifier) Allows(r *http.Request, roles ...Role) bool {
	tok, ok := BearerToken(r)
	if !ok {
		return false
	}
	p, err := v.Verify(tok)
	return err == nil && (len(roles) == 0 || slices.Contains(roles, p.Role))
}
