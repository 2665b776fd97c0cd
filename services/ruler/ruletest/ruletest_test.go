package ruletest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// TestRuleFiles runs every rule test of the repository against its packs.
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
			results, err := RunFile(context.Background(), f, cat)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				t.Run(r.Name, func(t *testing.T) {
					for _, msg := range r.Failures {
						t.Error(msg)
					}
				})
			}
		})
	}
}

// TestFailuresAreReported proves the runner can fail: a missing
// resolution, an alert that does not exist, and an alert that fires
// unnamed.
func TestFailuresAreReported(t *testing.T) {
	results, err := RunFile(context.Background(), "testdata/wrong.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"at 0s: unexpected firing alert flood-control/waterlogging {district=xuhui, street=hengshan}",
		"at 10m0s: flood-control/deep-waterlogging {district=xuhui, street=tianping} is firing, want resolved",
		"at 10m0s: flood-control/deep-waterlogging {district=xuhui} is absent, want firing",
		"at 10m0s: unexpected firing alert flood-control/waterlogging {district=xuhui, street=hengshan}",
	}
	if len(results) != 1 || strings.Join(results[0].Failures, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(results[0].Failures, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseRefusesUnknownFieldsAndStates(t *testing.T) {
	for _, doc := range []string{
		"packs: [a.yaml]\ntests: [{name: x, colour: red}]\n",
		"packs: [a.yaml]\ntests: [{name: x, expect: [{at: 0m, rule: a/b, state: burning}]}]\n",
		"tests: []\n",
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("Parse accepted %q", doc)
		}
	}
}
