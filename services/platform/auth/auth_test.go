package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newPair(t *testing.T) (*Signer, *Verifier) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(priv), v
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s, v := newPair(t)
	tok, err := s.Sign(Principal{Subject: "li", Role: RoleDepartment, Dept: "water-affairs", Districts: []string{"xuhui"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "li" || p.Role != RoleDepartment || p.Dept != "water-affairs" || len(p.Districts) != 1 {
		t.Errorf("principal = %+v", p)
	}
}

func TestVerifyRejects(t *testing.T) {
	s, v := newPair(t)
	other, _ := newPair(t)
	good := Principal{Subject: "x", Role: RoleViewer}
	signed := func(s *Signer, c jwt.Claims, m jwt.SigningMethod, key any) string {
		tok, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expired := *s
	expired.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expiredTok, _ := expired.Sign(good, time.Hour)
	foreignTok, _ := other.Sign(good, time.Hour)
	noExp := signed(s, claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Audience: jwt.ClaimStrings{Audience}, Subject: "x"}, Role: "viewer"}, jwt.SigningMethodEdDSA, s.key)
	wrongAud := signed(s, claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Audience: jwt.ClaimStrings{"other"}, Subject: "x", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Role: "viewer"}, jwt.SigningMethodEdDSA, s.key)
	hmac := signed(s, claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Audience: jwt.ClaimStrings{Audience}, Subject: "x", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Role: "commander"}, jwt.SigningMethodHS256, []byte(v.key))
	badRole := signed(s, claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Audience: jwt.ClaimStrings{Audience}, Subject: "x", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Role: "mayor"}, jwt.SigningMethodEdDSA, s.key)

	for name, tok := range map[string]string{
		"empty":                              "",
		"garbage":                            "not.a.jwt",
		"expired":                            expiredTok,
		"foreign key":                        foreignTok,
		"no expiry":                          noExp,
		"wrong audience":                     wrongAud,
		"hmac with the public key as secret": hmac,
		"unknown role":                       badRole,
		"oversized":                          strings.Repeat("a.", MaxTokenBytes),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Verify = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	s, v := newPair(t)
	h := v.Require(RoleSource, RoleCommander)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		w.Write([]byte(p.Subject))
	}))
	tok := func(r Role) string {
		t, _ := s.Sign(Principal{Subject: "s-" + string(r), Role: r, Dept: "d"}, time.Minute)
		return t
	}
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"no header", "", 401},
		{"not bearer", "Basic abc", 401},
		{"bad token", "Bearer x.y.z", 401},
		{"viewer", "Bearer " + tok(RoleViewer), 403},
		{"source", "Bearer " + tok(RoleSource), 200},
		{"commander lower-case scheme", "bearer " + tok(RoleCommander), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
}

func TestLoadOrCreateKeyIsStable(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned a different key")
	}
	pem, err := EncodePublicKey(k1.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/pub.pem"
	if err := writeFile(path, pem); err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(path)
	if err != nil || !pub.Equal(k1.Public()) {
		t.Errorf("LoadPublicKey = %v, %v", pub, err)
	}
}
