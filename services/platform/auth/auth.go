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
	"slices"
	"strings"
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

// Principal is an authenticated caller.
type Principal struct {
	Subject   string
	Role      Role
	Dept      string
	Districts []string
	ExpiresAt time.Time
}

// SeesDistrict reports whether p's district scope covers district. A
// commander sees every district, and so does a viewer or dispatcher given no
// districts; a department's scope is its cases, not districts, so it passes
// here and is narrowed by the case's parts.
func (p *Principal) SeesDistrict(district string) bool {
	if p.Role == RoleSource {
		return false
	}
	if p.Role == RoleCommander || p.Role == RoleDepartment || len(p.Districts) == 0 {
		return true
	}
	return slices.Contains(p.Districts, district)
}

// claims is the JWT payload.
type claims struct {
	jwt.RegisteredClaims
	Role      string   `json:"role"`
	Dept      string   `json:"dept,omitempty"`
	Districts []string `json:"districts,omitempty"`
}

// ErrUnauthenticated is wrapped by every error of Verify: the token is
// missing, malformed, expired or not signed by a trusted key.
var ErrUnauthenticated = errors.New("unauthenticated")

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	key    ed25519.PublicKey
	parser *jwt.Parser
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
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: token has no subject", ErrUnauthenticated)
	}
	if role == RoleDepartment && c.Dept == "" {
		return nil, fmt.Errorf("%w: a department token needs a dept claim", ErrUnauthenticated)
	}
	return &Principal{
		Subject:   c.Subject,
		Role:      role,
		Dept:      c.Dept,
		Districts: c.Districts,
		ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

// Signer issues tokens. It is safe for concurrent use.
type Signer struct {
	key ed25519.PrivateKey
	now func() time.Time
}

// NewSigner returns a Signer that signs with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, now: time.Now}
}

// Sign returns a token for p, valid for ttl from now.
func (s *Signer) Sign(p Principal, ttl time.Duration) (string, error) {
	if _, err := ParseRole(string(p.Role)); err != nil {
		return "", err
	}
	if p.Subject == "" {
		return "", errors.New("auth: a token needs a subject")
	}
	if p.Role == RoleDepartment && p.Dept == "" {
		return "", errors.New("auth: a department token needs a department")
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
