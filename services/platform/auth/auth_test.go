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
		p := Principal{Subject: "s-" + string(r), Role: r}
		switch r {
		case RoleDepartment:
			p.Dept = "d"
		case RoleSource:
			p.Sources = []string{"iot"}
		}
		t, err := s.Sign(p, time.Minute)
		if err != nil {
			panic(err)
		}
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

// directory is a catalog of two departments and two districts.
type testDirectory struct{}

func (testDirectory) HasDepartment(c string) bool { return c == "water-affairs" || c == "gas" }
func (testDirectory) HasDistrict(c string) bool   { return c == "xuhui" || c == "pudong" }

func TestClaimsMustFitTheRole(t *testing.T) {
	s, v := newPair(t)
	raw := func(c claims) string {
		c.RegisteredClaims = jwt.RegisteredClaims{Issuer: Issuer, Audience: jwt.ClaimStrings{Audience}, Subject: c.Subject, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for name, p := range map[string]Principal{
		"source without sources":    {Subject: "x", Role: RoleSource},
		"source with a bad source":  {Subject: "x", Role: RoleSource, Sources: []string{"Video AI"}},
		"viewer speaking for iot":   {Subject: "x", Role: RoleViewer, Sources: []string{"iot"}},
		"department without a dept": {Subject: "x", Role: RoleDepartment},
		"dispatcher with a dept":    {Subject: "x", Role: RoleDispatcher, Dept: "gas"},
		"no subject":                {Role: RoleViewer},
		"too many sources":          {Subject: "x", Role: RoleSource, Sources: make([]string, MaxSources+1)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Sign(p, time.Hour); err == nil {
				t.Error("Sign accepted it")
			}
			// A token minted elsewhere with the same claims is refused too.
			tok := raw(claims{Role: string(p.Role), Dept: p.Dept, Districts: p.Districts, Sources: p.Sources, RegisteredClaims: jwt.RegisteredClaims{Subject: p.Subject}})
			if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Verify = %v, want ErrUnauthenticated", err)
			}
		})
	}
	tok, err := s.Sign(Principal{Subject: "video-ai", Role: RoleSource, Sources: []string{"video", "hotline"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.SpeaksFor("video") || !p.SpeaksFor("hotline") || p.SpeaksFor("iot") {
		t.Errorf("sources %v", p.Sources)
	}
	if (&Principal{Role: RoleCommander}).SpeaksFor("iot") != true || (&Principal{Role: RoleViewer}).SpeaksFor("iot") {
		t.Error("a commander speaks for every source, a viewer for none")
	}
}

func TestNamesOutsideTheDirectoryAreRefused(t *testing.T) {
	s, v := newPair(t)
	// Tokens minted before the directory was known, or by another signer.
	ghostDept, _ := s.Sign(Principal{Subject: "x", Role: RoleDepartment, Dept: "ghost-bureau"}, time.Hour)
	ghostDistrict, _ := s.Sign(Principal{Subject: "x", Role: RoleDispatcher, Districts: []string{"xuhui", "atlantis"}}, time.Hour)
	gas, _ := s.Sign(Principal{Subject: "x", Role: RoleDepartment, Dept: "gas"}, time.Hour)
	v.SetDirectory(testDirectory{})
	for name, tok := range map[string]string{"department": ghostDept, "district": ghostDistrict} {
		if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s outside the directory: Verify = %v, want ErrUnauthenticated", name, err)
		}
	}
	if _, err := v.Verify(gas); err != nil {
		t.Errorf("a known department: %v", err)
	}
	ds := s.WithDirectory(testDirectory{})
	if _, err := ds.Sign(Principal{Subject: "x", Role: RoleDepartment, Dept: "ghost-bureau"}, time.Hour); err == nil {
		t.Error("minted a token for a department outside the directory")
	}
	if _, err := ds.Sign(Principal{Subject: "x", Role: RoleViewer, Districts: []string{"atlantis"}}, time.Hour); err == nil {
		t.Error("minted a token for a district outside the directory")
	}
	// A reloaded directory without the gas company cuts its tokens off.
	v.SetDirectory(withoutGas{})
	if _, err := v.Verify(gas); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a department removed from the directory: Verify = %v", err)
	}
}

type withoutGas struct{ testDirectory }

func (withoutGas) HasDepartment(c string) bool { return c == "water-affairs" }

func TestAllows(t *testing.T) {
	s, v := newPair(t)
	viewer, _ := s.Sign(Principal{Subject: "x", Role: RoleViewer}, time.Hour)
	for _, tc := range []struct {
		header string
		roles  []Role
		want   bool
	}{
		{"", nil, false},
		{"Bearer junk", nil, false},
		{"Bearer " + viewer, nil, true},
		{"Bearer " + viewer, []Role{RoleViewer, RoleCommander}, true},
		{"Bearer " + viewer, []Role{RoleCommander}, false},
	} {
		r := httptest.NewRequest("GET", "/readyz", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := v.Allows(r, tc.roles...); got != tc.want {
			t.Errorf("Allows(%.20q, %v) = %v, want %v", tc.header, tc.roles, got, tc.want)
		}
	}
}
