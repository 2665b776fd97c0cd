package live

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

const (
	// subprotocol is the protocol the gateway speaks and selects.
	subprotocol = "cityhub.v1"
	// tokenProtocolPrefix starts the subprotocol that carries a browser's token.
	tokenProtocolPrefix = "bearer."
)

// Routes registers the websocket, the catalog and, when there is a
// Frontend, the pages on mux.
func (g *Gateway) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/live", g.serveLive)
	mux.Handle("GET /v1/catalog", g.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment, auth.RoleViewer)(http.HandlerFunc(g.serveCatalog)))
	if g.opts.Frontend != nil {
		g.routePages(mux)
	}
}

// tokenSource says where a handshake carried its token.
type tokenSource int

const (
	tokenNone tokenSource = iota
	tokenHeader
	tokenSubprotocol
	tokenQuery
)

// tokenOf returns the token of a handshake: from the Authorization header,
// else from a bearer.<token> subprotocol, else from ?access_token=.
func tokenOf(r *http.Request) (string, tokenSource) {
	if tok, ok := auth.BearerToken(r); ok {
		return tok, tokenHeader
	}
	for _, p := range websocket.Subprotocols(r) {
		if tok, ok := strings.CutPrefix(p, tokenProtocolPrefix); ok {
			return tok, tokenSubprotocol
		}
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok, tokenQuery
	}
	return "", tokenNone
}

// serveLive authenticates a websocket handshake, upgrades it and serves the
// connection. Neither the token nor the query string is ever logged.
func (g *Gateway) serveLive(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, code, reason, msg string) {
		g.metrics.refused.WithLabelValues(reason).Inc()
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cityhub"`)
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		httperr.Write(w, status, code, msg, nil)
	}
	origin := r.Header.Get("Origin")
	if origin != "" && !g.originAllowed(origin) {
		refuse(http.StatusForbidden, "forbidden_origin", "origin", "this origin may not open the live websocket")
		return
	}
	tok, src := tokenOf(r)
	if src == tokenNone {
		refuse(http.StatusUnauthorized, "unauthenticated", "no_token", "a token is required: Authorization: Bearer, the bearer.<token> subprotocol or ?access_token=")
		return
	}
	if origin == "" && src != tokenHeader {
		// See the package documentation: only browsers need the other
		// forms, and browsers always send an Origin.
		refuse(http.StatusForbidden, "origin_required", "no_origin", "a client that sends no Origin must carry its token in the Authorization header")
		return
	}
	if src == tokenSubprotocol && !slices.Contains(websocket.Subprotocols(r), subprotocol) {
		refuse(http.StatusBadRequest, "bad_request", "subprotocol", "offer the "+subprotocol+" subprotocol next to the token")
		return
	}
	p, err := g.opts.Verifier.Verify(tok)
	if err != nil {
		refuse(http.StatusUnauthorized, "unauthenticated", "bad_token", err.Error())
		return
	}
	if p.Role == auth.RoleSource {
		refuse(http.StatusForbidden, "forbidden", "role", "role source may not follow the live feed")
		return
	}
	e, ok := g.admit()
	if !ok {
		refuse(http.StatusServiceUnavailable, "unavailable", "not_ready", "the live feed is not ready; try again")
		return
	}
	defer g.conns.Done()

	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		g.metrics.refused.WithLabelValues("handshake").Inc()
		return // the upgrader has answered
	}
	c := &conn{
		g:         g,
		ws:        ws,
		principal: p,
		send:      make(chan *message, g.queueSize),
		slow:      make(chan struct{}),
		quit:      make(chan struct{}),
		readDone:  make(chan struct{}),
		stop:      make(chan struct{}),
	}
	g.join(c, e)
	defer g.leave(c, e)
	g.metrics.connections.Inc()
	defer g.metrics.connections.Dec()
	g.log.Debug("live connection opened", "subject", p.Subject, "role", string(p.Role), "remote", r.RemoteAddr)
	c.serve(r.Context())
	g.log.Debug("live connection closed", "subject", p.Subject, "role", string(p.Role), "remote", r.RemoteAddr)
}

// serveCatalog sends the districts, departments and event types the pages
// draw and label.
func (g *Gateway) serveCatalog(w http.ResponseWriter, _ *http.Request) {
	if g.opts.Catalog == nil {
		httperr.Write(w, http.StatusNotFound, "not_found", "this gateway has no catalog", nil)
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=60")
	httperr.WriteJSON(w, http.StatusOK, g.opts.Catalog)
}

// contentSecurityPolicy keeps the pages to what the hub itself serves.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// routePages registers every file of the frontend at its own path,
// index.html at "/" too and every other page also without its ".html". Files are registered one by one, rather than as a
// subtree, so that there is no directory listing and no pattern that could
// clash with routes other services register on the same mux.
func (g *Gateway) routePages(mux *http.ServeMux) {
	err := fs.WalkDir(g.opts.Frontend, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(name), ".") {
			return err
		}
		b, err := fs.ReadFile(g.opts.Frontend, name)
		if err != nil {
			return err
		}
		h := servePage(path.Base(name), b)
		mux.Handle("GET /"+name, h)
		if name == "index.html" {
			mux.Handle("GET /{$}", h)
		} else if page, ok := strings.CutSuffix(name, ".html"); ok && !strings.Contains(page, "/") {
			mux.Handle("GET /"+page, h) // console.html is also /console
		}
		return nil
	})
	if err != nil {
		g.log.Error("cannot serve the pages", "err", err)
	}
}

func servePage(name string, b []byte) http.Handler {
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}
