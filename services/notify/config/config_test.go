package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/yamlfile/yamlfiletest"
)

func testCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The notify.yaml that ships is one a city could start from: it loads.
func TestShippedConfigLoads(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load("../../../rules/notify.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Receivers) == 0 || len(c.Rosters) == 0 || len(c.Routes.Routes) == 0 {
		t.Errorf("receivers %d, rosters %d, routes %d", len(c.Receivers), len(c.Rosters), len(c.Routes.Routes))
	}
	if c.Defaults.RepeatInterval != 2*time.Hour || c.Defaults.GroupInterval != 5*time.Minute {
		t.Errorf("defaults %+v", c.Defaults)
	}
}

func TestGoodConfigs(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Good(t, "testdata/*.good.yaml", func(f string) error { _, err := Load(f, cat); return err })
}

// TestBadConfigs checks that each bad config yields exactly the errors its
// "# want:" comments list, in order.
func TestBadConfigs(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Bad(t, "testdata/*.bad.yaml", "testdata/", func(f string) error { _, err := Load(f, cat); return err })
}

func TestSecretResolves(t *testing.T) {
	t.Setenv("CITYHUB_TEST_SECRET", "s3cret")
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    Secret
		want string
		ok   bool
	}{
		{Secret{Env: "CITYHUB_TEST_SECRET"}, "s3cret", true},
		{Secret{File: file}, "from-file", true},
		{Secret{Value: "inline"}, "inline", true},
		{Secret{Env: "CITYHUB_TEST_UNSET_SECRET"}, "", false},
		{Secret{File: filepath.Join(dir, "missing")}, "", false},
	} {
		got, err := tc.s.Resolve()
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%v.Resolve() = %q, %v", tc.s, got, err)
		}
		if strings.Contains(tc.s.String(), "s3cret") || strings.Contains(tc.s.String(), "inline") {
			t.Errorf("String shows the secret: %s", tc.s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"../../../rules/notify.yaml"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		if strings.HasSuffix(name, "catalog.yaml") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cat := testCatalog(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f.yaml", b, cat)
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c != nil, err)
		}
	})
}
