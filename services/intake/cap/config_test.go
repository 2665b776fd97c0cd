package cap_test

import (
	"path/filepath"
	"strings"
	"testing"

	capxml "github.com/cityhub/cityhub/services/intake/cap"
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

func testConfig(t testing.TB, cat *catalog.Catalog) *capxml.Config {
	t.Helper()
	c, err := capxml.LoadConfig("testdata/config/adapter.good.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The cap.yaml that ships loads against the catalog that ships, and
// turns the sample warnings into events.
func TestShippedConfig(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := capxml.LoadConfig("../../../rules/adapters/cap.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "weather" || c.Feed.Sender == "" || len(c.Types) == 0 {
		t.Errorf("source %q sender %q types %d", c.Source, c.Feed.Sender, len(c.Types))
	}
	for _, f := range []string{"rainstorm.good.xml", "typhoon-update.good.xml", "cancel.good.xml"} {
		a, err := capxml.Parse(read(t, filepath.Join("testdata", f)))
		if err != nil {
			t.Fatal(err)
		}
		tr := c.Translate(a, cat, a.Sent)
		if len(tr.Inputs) == 0 {
			t.Errorf("%s: no events; skipped %v", f, tr.Skipped)
		}
		for _, in := range tr.Inputs {
			if in.Type != "rainfall" {
				t.Errorf("%s: type %s", f, in.Type)
			}
		}
	}
}

func TestGoodConfigs(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Good(t, "testdata/config/*.good.yaml", func(f string) error { _, err := capxml.LoadConfig(f, cat); return err })
}

// The defaults a minimal file gets.
func TestConfigDefaults(t *testing.T) {
	c, err := capxml.LoadConfig("testdata/config/minimal.good.yaml", testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Feed
	if strings.Join(c.Statuses, ",") != "Actual" || c.MaxDistanceKM != capxml.DefaultMaxDistanceKM ||
		f.Size != capxml.DefaultFeedSize || f.Language != capxml.DefaultLanguage || f.ID != capxml.DefaultFeedID || f.RadiusKM != capxml.DefaultRadiusKM {
		t.Errorf("defaults: statuses %v distance %v feed %+v", c.Statuses, c.MaxDistanceKM, f)
	}
}

// TestBadConfigs checks that each bad file yields exactly the errors its
// "# want:" lines list, in order.
func TestBadConfigs(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Bad(t, "testdata/config/*.bad.yaml", "", func(f string) error { _, err := capxml.LoadConfig(f, cat); return err })
}
