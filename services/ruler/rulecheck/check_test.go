package rulecheck

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

func testCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load("testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wants returns the "# want: " lines of a file, prefixed with its
// directory as diagnostics name files.
func wants(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			out = append(out, filepath.Join(filepath.Dir(file), w))
		}
	}
	return out
}

// TestCheck checks everything under testdata at once, as `rulecheck check
// testdata` does, and compares each file's diagnostics with the "# want:"
// lines it carries: a *.good.yaml pack has no errors (but may have
// warnings), a *.bad.yaml pack has errors, and every file gets exactly
// what it lists, in order.
func TestCheck(t *testing.T) {
	// testdata/backtest holds two versions of one pack, which cannot be
	// checked together.
	paths, _ := filepath.Glob("testdata/*.*.yaml")
	files, err := Expand(append(paths, "testdata/tests"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files.Packs) < 5 || len(files.Tests) < 3 {
		t.Fatalf("Expand found %+v", files)
	}
	res := Check(files, testCatalog(t))
	got := map[string][]string{}
	for _, d := range res.Diagnostics {
		got[d.File] = append(got[d.File], d.String())
	}
	for _, f := range append(files.Packs, files.Tests...) {
		t.Run(f, func(t *testing.T) {
			want := wants(t, f)
			if strings.HasSuffix(f, ".bad.yaml") && len(want) == 0 {
				t.Fatal("a bad pack without # want: lines")
			}
			if g := strings.Join(got[f], "\n"); g != strings.Join(want, "\n") {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", g, strings.Join(want, "\n"))
			}
			for _, d := range res.Diagnostics {
				if d.File == f && d.Level == Error && strings.HasSuffix(f, ".good.yaml") {
					t.Errorf("an error in a good pack: %s", d)
				}
			}
		})
	}
	if res.Errors() == 0 || res.Warnings() == 0 {
		t.Errorf("%d errors, %d warnings", res.Errors(), res.Warnings())
	}
}

// TestCheckRepositoryRules checks the packs and tests of the repository
// against its catalog: they must have no errors and no warnings.
func TestCheckRepositoryRules(t *testing.T) {
	files, err := Expand([]string{rulesDir})
	if err != nil {
		t.Fatal(err)
	}
	cat, _, err := LoadCatalog("", []string{rulesDir + "/packs"})
	if err != nil {
		t.Fatal(err)
	}
	res := Check(files, cat)
	for _, d := range res.Diagnostics {
		t.Error(d)
	}
	if res.Packs < 7 || res.Tests < 7 {
		t.Errorf("checked %d packs and %d test files; want every pack and test of rules/", res.Packs, res.Tests)
	}
}

func TestFindCatalog(t *testing.T) {
	got, err := FindCatalog("testdata/tests/water.yaml")
	if err != nil || got != filepath.Join("testdata", "catalog.yaml") {
		t.Errorf("FindCatalog = %q, %v", got, err)
	}
	if _, err := FindCatalog(t.TempDir()); err == nil || !strings.Contains(err.Error(), "give --catalog FILE") {
		t.Errorf("FindCatalog in an empty tree = %v", err)
	}
}

func TestClassify(t *testing.T) {
	for doc, want := range map[string]Kind{
		"pack: p\nowner: o\n":        PackFile,
		"packs: [a.yaml]\ntests: []": TestFile,
		"districts: []\n":            Other,
		"[unclosed":                  Other,
	} {
		if got := classify([]byte(doc)); got != want {
			t.Errorf("classify(%q) = %v, want %v", doc, got, want)
		}
	}
}

func TestExpandSkipsTheCatalog(t *testing.T) {
	files, err := Expand([]string{"testdata"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files.Packs {
		if filepath.Base(f) == "catalog.yaml" {
			t.Error("Expand took the catalog for a pack")
		}
	}
	if len(files.Tests) != 3 || len(files.Packs) != 7 {
		t.Errorf("Expand = %+v", files)
	}
}

// notify.yaml is found among the rules and checked as the notify service
// loads it, every problem at its place.
func TestCheckNotify(t *testing.T) {
	dir := "../../notify/config/testdata"
	cat, err := catalog.Load(filepath.Join(dir, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Expand([]string{filepath.Join(dir, "minimal.good.yaml"), filepath.Join(dir, "routes.bad.yaml")})
	if err != nil || len(files.Notify) != 2 || len(files.Packs) != 0 {
		t.Fatalf("Expand = %+v, %v; want two notify files", files, err)
	}
	res := Check(files, cat)
	if res.Notify != 1 || res.Errors() == 0 {
		t.Fatalf("Check: %d notify configs loaded, %d errors; want 1 and some", res.Notify, res.Errors())
	}
	for _, d := range res.Diagnostics {
		if !strings.HasSuffix(d.File, "routes.bad.yaml") || d.Pos.Line == 0 || d.Pos.Column == 0 {
			t.Errorf("diagnostic without its place in routes.bad.yaml: %v", d)
		}
	}
	// The shipped rules directory holds one, and it is clean.
	shipped, err := Expand([]string{"../../../rules"})
	if err != nil || len(shipped.Notify) != 1 {
		t.Fatalf("rules/: %+v, %v", shipped.Notify, err)
	}
}

// The calendar must know this year's holidays, and from November next
// year's.
func TestCheckCalendar(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cal := cat.WorkCalendar()
	cst := cal.Location()
	for _, tc := range []struct {
		today          time.Time
		errors, warned int
	}{
		{time.Date(2026, 7, 1, 9, 0, 0, 0, cst), 0, 0},
		{time.Date(2026, 10, 31, 23, 0, 0, 0, cst), 0, 0},
		{time.Date(2026, 11, 1, 0, 0, 0, 0, cst), 0, 1},         // the notice for 2027 is due
		{time.Date(2027, 1, 1, 0, 0, 0, 0, cst), 1, 0},          // 2027 without its holidays
		{time.Date(2025, 12, 31, 16, 30, 0, 0, time.UTC), 0, 0}, // already 2026 in Shanghai
	} {
		var errs, warns int
		for _, d := range CheckCalendar("rules/catalog.yaml", cal, tc.today) {
			if d.Level == Warning {
				warns++
			} else {
				errs++
			}
			if d.File != filepath.Join("rules", "calendar") {
				t.Errorf("%v: diagnostic at %s, want rules/calendar", tc.today, d.File)
			}
		}
		if errs != tc.errors || warns != tc.warned {
			t.Errorf("%v: %d errors, %d warnings; want %d and %d", tc.today, errs, warns, tc.errors, tc.warned)
		}
	}
	if d := CheckCalendar("x/catalog.yaml", (&catalog.Catalog{}).WorkCalendar(), time.Date(2030, 12, 1, 0, 0, 0, 0, time.UTC)); d != nil {
		t.Errorf("a calendar without holidays: %v", d)
	}
}
