package hub

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// DevSignInTTL is how long a token from the dev sign-in lives. It is short:
// the console signs in again in one click when it runs out.
const DevSignInTTL = time.Hour

// maxDevSignInBody bounds the body of POST /dev/signin.
const maxDevSignInBody = 4 << 10

// devSignInRoles are the roles the dev sign-in issues: those of the people
// who use the pages. A source token is for programs; mint it with
// "cityhub token".
var devSignInRoles = []auth.Role{auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment, auth.RoleViewer}

// devSignIn lets the dispatcher console of a hub on a developer's machine
// sign in without a token pasted from a terminal. It mints short-lived
// tokens with the hub's own signing key, so it answers only where that is
// harmless:
//
//   - only when the hub embeds Kafka or Redis, that is when it is a
//     development hub rather than one pointed at a city's servers;
//   - only to loopback clients, addressed by a loopback name (a DNS
//     rebinding page on another site reaches 127.0.0.1 under its own host
//     name and is refused);
//   - only from the hub's own pages: a POST must carry an Origin equal to
//     the address it was sent to, and a JSON content type, which a form on
//     another site cannot send without a CORS preflight that the hub never
//     answers.
type devSignIn struct {
	enabled bool
	signer  *auth.Signer
	cat     *catalog.Catalog
	log     *slog.Logger
}

func newDevSignIn(key ed25519.PrivateKey, cat *catalog.Catalog, info Info, log *slog.Logger) *devSignIn {
	return &devSignIn{
		enabled: info.DevSignIn,
		signer:  auth.NewSigner(key).WithDirectory(cat),
		cat:     cat,
		log:     log.With("component", "dev-signin"),
	}
}

// routes registers GET /dev/signin, which says whether the dev sign-in is
// open to the caller and what it can choose, and POST /dev/signin, which
// mints a token.
func (d *devSignIn) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /dev/signin", d.serveStatus)
	mux.HandleFunc("POST /dev/signin", d.serveSignIn)
}

// devSignInStatus is the body of GET /dev/signin.
type devSignInStatus struct {
	Enabled     bool     `json:"enabled"`
	Roles       []string `json:"roles,omitempty"`
	TTL         string   `json:"ttl,omitempty"`
	Departments []named  `json:"departments,omitempty"`
	Districts   []named  `json:"districts,omitempty"`
}

type named struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

func (d *devSignIn) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !d.enabled || d.refuse(r) != nil {
		httperr.WriteJSON(w, http.StatusOK, devSignInStatus{})
		return
	}
	st := devSignInStatus{Enabled: true, TTL: DevSignInTTL.String()}
	for _, role := range devSignInRoles {
		st.Roles = append(st.Roles, string(role))
	}
	for _, x := range d.cat.Departments {
		st.Departments = append(st.Departments, named{x.Code, x.Name})
	}
	for _, x := range d.cat.Districts {
		st.Districts = append(st.Districts, named{x.Code, x.Name})
	}
	httperr.WriteJSON(w, http.StatusOK, st)
}

// devSignInRequest is the body of POST /dev/signin.
type devSignInRequest struct {
	Role      string   `json:"role"`
	Dept      string   `json:"dept,omitempty"`
	Districts []string `json:"districts,omitempty"`
}

// devSignInResponse is the answer to POST /dev/signin.
type devSignInResponse struct {
	Token     string    `json:"token"`
	Subject   string    `json:"subject"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (d *devSignIn) serveSignIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !d.enabled {
		httperr.Write(w, http.StatusNotFound, "not_found", "the dev sign-in is off: this hub runs against external Kafka and Redis; use a token from your identity provider", nil)
		return
	}
	if err := d.refuse(r); err != nil {
		httperr.Write(w, http.StatusForbidden, "forbidden", err.Error(), nil)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		httperr.Write(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the sign-in as application/json", nil)
		return
	}
	req, err := decodeDevSignIn(http.MaxBytesReader(w, r.Body, maxDevSignInBody))
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return
	}
	p, err := d.principal(req)
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return
	}
	tok, err := d.signer.Sign(p, DevSignInTTL)
	if err != nil {
		d.log.Error("cannot sign a dev token", "err", err)
		httperr.Write(w, http.StatusInternalServerError, "internal", "signing the token failed", nil)
		return
	}
	// A sign-in is rare and worth a line: who got which powers. Never the token.
	d.log.Info("dev sign-in", "subject", p.Subject, "role", string(p.Role), "dept", p.Dept, "districts", p.Districts)
	httperr.WriteJSON(w, http.StatusOK, devSignInResponse{Token: tok, Subject: p.Subject, ExpiresAt: time.Now().Add(DevSignInTTL).UTC().Truncate(time.Second)})
}

// refuse says why r may not use the dev sign-in, or nil when it may.
func (d *devSignIn) refuse(r *http.Request) error {
	if err := localOnly(r, "the dev sign-in"); err != nil {
		return err
	}
	if r.Method == http.MethodGet {
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" || !(strings.EqualFold(origin, "http://"+r.Host) || strings.EqualFold(origin, "https://"+r.Host)) {
		return errors.New("the dev sign-in answers only the hub's own pages")
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("the dev sign-in answers only the hub's own pages")
	}
	return nil
}

// localOnly says why r does not come from this machine to a loopback
// name, or nil when it does: what the dev pages require (a DNS-rebinding
// page on another site reaches 127.0.0.1 under its own host name and is
// refused).
func localOnly(r *http.Request, what string) error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || !loopbackIP(host) {
		return fmt.Errorf("%s answers only clients on this machine", what)
	}
	if !loopbackHost(r.Host) {
		return fmt.Errorf("%s answers only at localhost, 127.0.0.1 or [::1]", what)
	}
	return nil
}

func loopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHost reports whether a Host header names this machine by a
// loopback address or "localhost".
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.EqualFold(host, "localhost") || loopbackIP(host)
}

func decodeDevSignIn(r io.Reader) (devSignInRequest, error) {
	var req devSignInRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, fmt.Errorf("body over %d bytes", maxDevSignInBody)
		}
		return req, fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("malformed JSON body: data after the object")
	}
	return req, nil
}

// principal checks a sign-in request against the catalog.
func (d *devSignIn) principal(req devSignInRequest) (auth.Principal, error) {
	role := auth.Role(req.Role)
	if !slices.Contains(devSignInRoles, role) {
		return auth.Principal{}, fmt.Errorf("role: want commander, dispatcher, department or viewer, not %q", clip(req.Role))
	}
	p := auth.Principal{Role: role, Subject: "dev-" + req.Role}
	if req.Dept != "" {
		if _, ok := d.cat.Department(req.Dept); !ok {
			return auth.Principal{}, fmt.Errorf("dept: unknown department %q", clip(req.Dept))
		}
		p.Dept = req.Dept
		p.Subject += "-" + req.Dept
	} else if role == auth.RoleDepartment {
		return auth.Principal{}, errors.New("dept: required for the department role")
	}
	if len(req.Districts) > len(d.cat.Districts) {
		return auth.Principal{}, fmt.Errorf("districts: at most %d", len(d.cat.Districts))
	}
	for _, x := range req.Districts {
		if _, ok := d.cat.District(x); !ok {
			return auth.Principal{}, fmt.Errorf("districts: unknown district %q", clip(x))
		}
		if !slices.Contains(p.Districts, x) {
			p.Districts = append(p.Districts, x)
		}
	}
	return p, nil
}

// clip bounds caller-supplied text echoed in an error.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}
