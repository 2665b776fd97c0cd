package ruletest

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// TestRuleFiles runs every rule test of the repository against its packs:
// this is how CI knows every pack in rules/packs does what its tests say.
func TestRuleFiles(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../../rules/tests/*.yaml")
	if len(files) == 0 {
		t.Fatal("no rule tests in rules/tests")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			results, err := RunFile(context.Background(), f, Options{Catalog: cat})
			if err != nil {
				t.Fatal(err)
			}
			if len(results) == 0 {
				t.Fatal("no tests in the file")
			}
			for _, r := range results {
				t.Run(r.Name, func(t *testing.T) {
					if !r.Passed() {
						t.Error("\n" + r.Details())
					}
				})
			}
		})
	}
}

// TestFailuresAreReported proves the runner can fail: a missing
// resolution, an alert that does not exist, a wrong severity, and an alert
// that fires unnamed; and that the diff shows what was expected and what
// there was.
func TestFailuresAreReported(t *testing.T) {
	results, err := RunFile(context.Background(), "testdata/wrong.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"at 0s: flood-control/deep-waterlogging {district=xuhui, street=tianping} is firing with severity severe, want extreme",
		"at 0s: unexpected firing alert flood-control/waterlogging {district=xuhui, street=hengshan}",
		"at 10m0s: flood-control/deep-waterlogging {district=xuhui, street=tianping} is firing, want resolved",
		"at 10m0s: unexpected firing alert flood-control/waterlogging {district=xuhui, street=hengshan}",
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	r := results[0]
	if strings.Join(r.Failures, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.Failures, "\n"), strings.Join(want, "\n"))
	}
	wantDetails := `at 0s:
  - at 0s: flood-control/deep-waterlogging {district=xuhui, street=tianping} is firing with severity severe, want extreme
  - at 0s: unexpected firing alert flood-control/waterlogging {district=xuhui, street=hengshan}
  expected:
    firing   extreme  flood-control/deep-waterlogging {district=xuhui, street=tianping}
  got:
    firing   severe   flood-control/deep-waterlogging {district=xuhui, street=tianping}
    firing   moderate flood-control/waterlogging {district=xuhui, street=hengshan}
at 10m0s:
  - at 10m0s: flood-control/deep-waterlogging {district=xuhui, street=tianping} is firing, want resolved
  - at 10m0s: unexpected firing alert flood-control/waterlogging {district=xuhui, street=hengshan}
  expected:
    resolved -        flood-control/deep-waterlogging {district=xuhui, street=tianping}
  got:
    firing   severe   flood-control/deep-waterlogging {district=xuhui, street=tianping}
    firing   moderate flood-control/waterlogging {district=xuhui, street=hengshan}
`
	if got := r.Details(); got != wantDetails {
		t.Errorf("details:\n%s\nwant:\n%s", got, wantDetails)
	}
	if !results[1].Passed() {
		t.Errorf("the passing test failed:\n%s", results[1].Details())
	}
}

func TestRunSelectsTestsByName(t *testing.T) {
	results, err := RunFile(context.Background(), "testdata/wrong.yaml", Options{Run: regexp.MustCompile("^nothing")})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Name != "nothing fires in a dry street" {
		t.Errorf("results = %+v", results)
	}
}

func TestExpectationsMustFitThePacks(t *testing.T) {
	_, err := RunFile(context.Background(), "testdata/misnamed.yaml", Options{})
	for _, want := range []string{
		`test "typo": expectation at 0s: no pack under test defines rule "flood-control/deep-waterloging"`,
		`test "typo": expectation at 0s for flood-control/deep-waterlogging: labels {district=xuhui}, but the rule groups by [district, street]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("RunFile = %v\nwant an error containing %s", err, want)
		}
	}
}

func TestParseRefusesUnknownFieldsAndStates(t *testing.T) {
	for _, doc := range []string{
		"packs: [a.yaml]\ntests: [{name: x, colour: red}]\n",
		"packs: [a.yaml]\ntests: [{name: x, expect: [{at: 0m, rule: a/b, state: burning}]}]\n",
		"packs: [a.yaml]\ntests: [{name: x, expect: [{at: 0m, rule: a/b, state: firing, severity: awful}]}]\n",
		"packs: [a.yaml]\ntests: [{name: x, events: [{at: 0m, event: {source: iot}}]}]\n",
		"packs: [a.yaml]\ntests: [{name: x}, {name: x}]\n",
		"packs: [a.yaml]\ntests: [{name: x, events: [{at: 800h, event: {type: a}}]}]\n",
		"tests: []\n",
		"",
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("Parse accepted %q", doc)
		}
	}
}
