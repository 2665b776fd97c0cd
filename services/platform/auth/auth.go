// Package auth verifies and signs the JWTs that authenticate every cityhub
// request, and carries the caller's identity (a Principal) through a
// request's context.
//
// Tokens are signed with Ed25519 (alg EdDSA), so that services hold only the
// public key; the issuer, the audience and an expiry are required.
package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a caller may do; ARCHITECTURE.md lists what each role sees and may do.
type Role string

const (
	// RoleCommander sees everything and may take every action.
	RoleCommander Role = "commander"
	// RoleDispatcher sees its districts and dispatches, verifies and closes.
	RoleDispatcher Role = "dispatcher"
	// RoleDepartment sees the cases its department has a part in.
	RoleDepartment Role = "department"
	// RoleViewer sees its districts (all when none are given) and acts on nothing.
	RoleViewer Role = "viewer"
	// RoleSource posts events to intake and sees nothing.
	RoleSource Role = "source"
)

// Roles lists every role.
var Roles = []Role{RoleCommander, RoleDispatcher, RoleDepartment, RoleViewer, RoleSource}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	if slices.Contains(Roles, Role(s)) {
		return Role(s), nil
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("unknown role %q (want one of %s)", s, strings.Join(names, ", "))
}

const (
	// Issuer is the iss claim cityhub issues and requires.
	Issuer = "cityhub"
	// Audience is the aud claim cityhub issues and requires.
	Audience = "cityhub"
	// MaxTokenBytes bounds a token before it is parsed.
	MaxTokenBytes = 8 << 10
)

// MaxSources bounds the sources one token may speak for.
const MaxSources = 32

// sourceRE is the form of a source name, as events spell it.
var sourceRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// Principal is an authenticated caller.
type Principal struct {
	Subject   string
	Role      Role
	Dept      string
	Districts []string
	// Sources are the event sources a source token speaks for: intake
	// refuses an event whose source is not among them. Only source tokens
	// carry sources, and every source token names at least one.
	Sources   []string
	ExpiresAt time.Time
}

// SpeaksFor reports whether p may post events in the name of source: a
// source token for the sources it names, a commander for any (a person at
// the console entering what a source reported), nobody else.
func (p *Principal) SpeaksFor(source string) bool {
	switch p.Role {
	case RoleCommander:
		return true
	case RoleSource:
		return slices.Contains(p.Sources, source)
	}
	return false
}

// claims is the JWT payload.
type claims struct {
	jwt.RegisteredClaims
	Role      string   `json:"role"`
	Dept      string   `json:"dept,omitempty"`
	Districts []string `json:"districts,omitempty"`
	Sources   []string `json:"sources,omitempty"`
}

// Directory says which departments and districts exist. A token naming
// any other is refused, when it is minted and whenever it is presented,
// so a department removed from the catalog loses access once the catalog
// that no longer lists it is in use. *catalog.Catalog satisfies it.
type Directory interface {
	HasDepartment(code string) bool
	HasDistrict(code string) bool
}

// check returns what is wrong with p's claims: a role's required claims,
// claims the role may not carry, and names the directory does not know
// (when dir is not nil).
func (p *Principal) check(dir Directory) error {
	var errs []error
	if p.Subject == "" {
		errs = append(errs, errors.New("no subject"))
	}
	switch {
	case p.Role == RoleDepartment && p.Dept == "":
		errs = append(errs, errors.New("a department token needs a department"))
	case p.Role != RoleDepartment && p.Dept != "":
		errs = append(errs, fmt.Errorf("a %s token names no department", p.Role))
	}
	switch {
	case p.Role == RoleSource && len(p.Sources) == 0:
		errs = append(errs, errors.New("a source token needs the sources it speaks for"))
	case p.Role != RoleSource && len(p.Sources) > 0:
		errs = append(errs, fmt.Errorf("a %s token speaks for no source", p.Role))
	case len(p.Sources) > MaxSources:
		errs = append(errs, fmt.Errorf("%d sources, at most %d", len(p.Sources), MaxSources))
	}
	for _, s := range p.Sources {
		if !sourceRE.MatchString(s) {
			errs = append(errs, fmt.Errorf("source %q: want lower-case letters, digits and _", clip(s)))
		}
	}
	if dir != nil {
		if p.Dept != "" && !dir.HasDepartment(p.Dept) {
			errs = append(errs, fmt.Errorf("department %q is not in the catalog", clip(p.Dept)))
		}
		for _, d := range p.Districts {
			if !dir.HasDistrict(d) {
				errs = append(errs, fmt.Errorf("district %q is not in the catalog", clip(d)))
			}
		}
	}
	return errors.Join(errs...)
}

// clip shortens a claim before it is echoed in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ErrUnauthenticated is wrapped by every error of Verify: the token is
// missing, malformed, expired or not signed by a trusted key.
var ErrUnauthenticated = errors.New("unauthenticated")

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	key    ed25519.PublicKey
	parser *jwt.Parser
	dir    atomic.Pointer[directory]
}

// directory boxes a Directory for atomic.Pointer.
type directory struct{ Directory }

// SetDirectory makes v refuse tokens that name a department or district
// dir does not know, from the next Verify on. Services set the catalog
// they run with, and set it again when the catalog is reloaded. Until it
// is set, names are not checked against any directory.
func (v *Verifier) SetDirectory(dir Directory) {
	v.dir.Store(&directory{dir})
}

// NewVerifier returns a Verifier that trusts tokens signed by key.
func NewVerifier(key ed25519.PublicKey) (*Verifier, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("auth: public key has %d bytes, want %d", len(key), ed25519.PublicKeySize)
	}
	return &Verifier{
		key: key,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(Issuer),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(30*time.Second),
		),
	}, nil
}

// Verify parses token and returns who it names.
func (v *Verifier) Verify(token string) (*Principal, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token", ErrUnauthenticated)
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, MaxTokenBytes)
	}
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	role, err := ParseRole(c.Role)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	p := &Principal{
		Subject:   c.Subject,
		Role:      role,
		Dept:      c.Dept,
		Districts: c.Districts,
		Sources:   c.Sources,
		ExpiresAt: c.ExpiresAt.Time,
	}
	var dir Directory
	if d := v.dir.Load(); d != nil {
		dir = d.Directory
	}
	if err := p.check(dir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return p, nil
}

// Signer issues tokens. It is safe for concurrent use.
type Signer struct {
	key ed25519.PrivateKey
	dir Directory
	now func() time.Time
}

// NewSigner returns a Signer that signs with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, now: time.Now}
}

// WithDirectory returns a Signer like s that refuses to name a department
// or district that dir does not know.
func (s *Signer) WithDirectory(dir Directory) *Signer {
	c := *s
	c.dir = dir
	return &c
}

// Sign returns a token for p, valid for ttl from now. It refuses what
// Verify would refuse.
func (s *Signer) Sign(p Principal, ttl time.Duration) (string, error) {
	if _, err := ParseRole(string(p.Role)); err != nil {
		return "", err
	}
	if err := p.check(s.dir); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if ttl <= 0 {
		return "", errors.New("auth: a token needs a positive lifetime")
	}
	now := s.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   p.Subject,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Role:      string(p.Role),
		Dept:      p.Dept,
		Districts: p.Districts,
		Sources:   p.Sources,
	}
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.key)
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal that Require put in ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}
