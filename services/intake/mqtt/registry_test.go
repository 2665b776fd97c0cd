package mqtt_test

import (
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/intake/mqtt"
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

// The registry that ships is one the embedded hub can start from, against
// the catalog that ships.
func TestShippedRegistryLoads(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := mqtt.LoadRegistry("../../../rules/adapters/devices.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	if r.Devices() < 5 || r.Source() != "iot" {
		t.Errorf("devices %d, source %q", r.Devices(), r.Source())
	}
	g, ok := r.Gateway("hp-bund-drainage-gw")
	if !ok || !g.SpeaksFor("wl-hp-zhongshan-01") {
		t.Errorf("gateway %+v", g)
	}
	p, ok := r.Publisher("TOKEN-WL-XH-TIANPING-01")
	if !ok || p.Device == nil || p.Device.ID != "wl-xh-tianping-01" {
		t.Errorf("publisher of the sample token: %+v", p)
	}
}

func TestGoodRegistries(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Good(t, "testdata/registry/*.good.yaml", func(f string) error { _, err := mqtt.LoadRegistry(f, cat); return err })
}

// TestBadRegistries checks that each bad registry yields exactly the
// errors its "# want:" comments list, in order, and never echoes a token.
func TestBadRegistries(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Bad(t, "testdata/registry/*.bad.yaml", "testdata/registry/", func(f string) error {
		_, err := mqtt.LoadRegistry(f, cat)
		if err != nil && strings.Contains(err.Error(), "token-000") {
			t.Errorf("an error shows a token: %v", err)
		}
		return err
	})
}

func TestRegistryDefaults(t *testing.T) {
	r, err := mqtt.LoadRegistry("testdata/registry/minimal.good.yaml", testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := r.Device("d1")
	if !ok || d.Name != "d1" || len(d.Telemetry) != 0 {
		t.Errorf("device %+v", d)
	}
	if r.Source() != mqtt.DefaultSource {
		t.Errorf("source %q", r.Source())
	}
	p := r.Principal()
	if !p.SpeaksFor("iot") || p.SpeaksFor("hotline") {
		t.Errorf("principal %+v speaks for the wrong sources", p)
	}
	if _, ok := r.Publisher(""); ok {
		t.Error("the empty token names a publisher")
	}
}
