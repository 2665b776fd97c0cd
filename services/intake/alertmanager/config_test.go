package alertmanager

import (
	"strings"
	"testing"

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

func testConfig(t testing.TB, cat *catalog.Catalog) *Config {
	t.Helper()
	c, err := Load("testdata/mapping.good.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The sample mapping that ships loads against the catalog that ships.
func TestShippedMappingLoads(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load("../../../rules/adapters/alertmanager.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mappings) == 0 {
		t.Fatal("no mappings")
	}
	for i, m := range c.Mappings {
		if _, ok := cat.EventType(m.Type); !ok {
			t.Errorf("mappings[%d]: type %q", i, m.Type)
		}
	}
}

func TestGoodMappings(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Good(t, "testdata/*.good.yaml", func(f string) error { _, err := Load(f, cat); return err })
}

// TestBadMappings checks that each bad mapping yields exactly the errors
// its "# want:" comments list, in order.
func TestBadMappings(t *testing.T) {
	cat := testCatalog(t)
	yamlfiletest.Bad(t, "testdata/*.bad.yaml", "testdata/", func(f string) error { _, err := Load(f, cat); return err })
}

// New checks the mapping again, against the catalog it is given: a
// mapping read against one catalog is refused with another that lacks
// its types.
func TestNewChecksMappingAgainstCatalog(t *testing.T) {
	cfg := testConfig(t, testCatalog(t))
	other, err := catalog.Parse([]byte(`
districts: [{code: xuhui, name: 徐汇区}]
departments: [{code: gas, name: 燃气公司}]
event_types: [{code: gas_leak, name: 燃气泄漏报警, owner: gas}]
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: cfg, Catalog: other, Submit: (&eventLog{}).submit, Verifier: newKeys(t).verifier})
	if err == nil || !strings.Contains(err.Error(), `testdata/mapping.good.yaml:5:11: mappings[0].type: "waterlogging" is not an event type of the catalog`) {
		t.Fatalf("New: %v", err)
	}
}

func TestValueLookup(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"station": "PS-XH-01", "empty": ""}
	annotations := map[string]string{"depth_cm": "35"}
	for _, tc := range []struct {
		name   string
		v      *Value
		want   string
		wantOK bool
	}{
		{"nil", nil, "", false},
		{"label", &Value{Label: "station"}, "PS-XH-01", true},
		{"absent label", &Value{Label: "nope"}, "", false},
		{"empty label", &Value{Label: "empty"}, "", false},
		{"absent label, default", &Value{Label: "nope", Default: "xuhui"}, "xuhui", true},
		{"annotation", &Value{Annotation: "depth_cm"}, "35", true},
		{"fixed", &Value{Value: "pudong"}, "pudong", true},
		{"mapped", &Value{Label: "station", Map: map[string]string{"PS-XH-01": "xuhui"}}, "xuhui", true},
		{"not in map", &Value{Label: "station", Map: map[string]string{"PS-HP-03": "huangpu"}}, "", false},
		{"not in map, default", &Value{Label: "station", Map: map[string]string{"PS-HP-03": "huangpu"}, Default: "pudong"}, "pudong", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.v.lookup(labels, annotations)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("lookup = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
