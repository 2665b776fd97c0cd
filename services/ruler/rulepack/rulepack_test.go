package rulepack

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
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

func TestGoodPacks(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no good packs in testdata")
	}
	cat := testCatalog(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := LoadFiles(cat, f); err != nil {
				t.Errorf("LoadFiles:\n%v", err)
			}
		})
	}
}

func TestFullPackFields(t *testing.T) {
	packs, err := LoadFiles(testCatalog(t), "testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := packs[0]
	if p.Name != "flood-control" || p.Owner != "water-affairs" || p.Version != "1" || len(p.Rules) != 2 {
		t.Fatalf("pack = %+v", p)
	}
	r := p.Rules[0]
	if r.Name() != "flood-control/deep-waterlogging" || r.Severity != cityhubv1.Severity_SEVERITY_SEVERE {
		t.Errorf("rule = %s, %v", r.Name(), r.Severity)
	}
	if strings.Join(r.GroupBy, ",") != "district,street,attrs.camera_id" {
		t.Errorf("group_by = %v", r.GroupBy)
	}
	if r.Count == nil || r.Count.AtLeast != 3 || r.Count.Within != 30*time.Minute {
		t.Errorf("count = %+v", r.Count)
	}
	if r.ResolveAfter != 2*time.Hour || r.For != 0 {
		t.Errorf("resolve_after = %s, for = %s", r.ResolveAfter, r.For)
	}
	d := r.Dispatch
	if d == nil || d.Lead != "water-affairs" || strings.Join(d.Assist, ",") != "traffic-police" || d.Accept != 10*time.Minute || d.Handle != 2*time.Hour {
		t.Errorf("dispatch = %+v", d)
	}
	if r.Program == nil || r.ClearProgram == nil || r.TitleTemplate == nil {
		t.Error("rule not compiled")
	}
	if strings.Join(r.Types, ",") != "waterlogging" || strings.Join(r.ClearTypes, ",") != "waterlogging_cleared" {
		t.Errorf("types = %v, clear types = %v", r.Types, r.ClearTypes)
	}
	var ops []string
	for _, o := range r.Operands {
		ops = append(ops, fmt.Sprintf("%s leaf=%v", o.Source, o.Leaf))
	}
	if want := []string{
		"event.type leaf=false", `event.type == "waterlogging" leaf=true`,
		"event.attrs.water_depth_cm leaf=false", "event.attrs.water_depth_cm >= 30 leaf=true",
	}; !slices.Equal(ops, want) {
		t.Errorf("operands:\n%s\nwant:\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
	}
	if p.Rules[1].Types != nil {
		t.Errorf("a rule naming no type got types %v", p.Rules[1].Types)
	}
	if got := r.Fields["when"]; got != (Pos{Line: 7, Column: 11}) {
		t.Errorf("when is at %+v", got)
	}
}

// TestBadPacks checks that each bad pack yields exactly the errors its
// "# want:" comments list, in order.
func TestBadPacks(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) == 0 {
		t.Fatal("no bad packs in testdata")
	}
	cat := testCatalog(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := yamlfiletest.Wants(t, f, "testdata/")
			_, err := LoadFiles(cat, f)
			if err == nil {
				t.Fatal("LoadFiles accepted a bad pack")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadDirRefusesDuplicatePackNames(t *testing.T) {
	dir := t.TempDir()
	pack := "pack: same\nowner: water-affairs\nrules:\n  - {id: a, when: 'true', severity: minor}\n"
	for _, name := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pack), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadDir(dir, nil)
	if err == nil || !strings.Contains(err.Error(), `b.yaml: pack "same" is also defined in`) {
		t.Errorf("LoadDir = %v", err)
	}
}

func TestCheckExpr(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		ok   bool
	}{
		{"flat", `event.type == "waterlogging"`, true},
		{"at the limit", strings.Repeat("(", MaxExprDepth) + "true" + strings.Repeat(")", MaxExprDepth), true},
		{"one too deep", strings.Repeat("(", MaxExprDepth+1) + "true" + strings.Repeat(")", MaxExprDepth+1), false},
		{"mixed brackets", strings.Repeat("[{(", 22) + "1", false},
		{"brackets in strings do not count", `event.text == "` + strings.Repeat("(", 100) + `"`, true},
		{"escaped quote inside a string", `event.text == "\"` + strings.Repeat("(", 100) + `"`, true},
		{"raw string", "event.text == `" + strings.Repeat("[", 100) + "`", true},
		{"too long", strings.Repeat("1 + ", MaxExprBytes) + "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckExpr(tc.src)
			if (err == nil) != tc.ok {
				t.Errorf("CheckExpr = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestDeepNestingNeverReachesTheCompiler would crash the test binary with a
// stack overflow if the caps were missing: expr's parser recurses per bracket.
func TestDeepNestingNeverReachesTheCompiler(t *testing.T) {
	deep := strings.Repeat("(", 1_000_000) + "true" + strings.Repeat(")", 1_000_000)
	p := &Pack{File: "deep.yaml", Name: "p", Rules: []*Rule{{Pack: "p", ID: "a", When: deep, Fields: map[string]Pos{"when": {6, 11}}}}}
	if err := Compile(p, nil); err == nil || !strings.Contains(err.Error(), "deep.yaml:6:11: rule a: when: expression of 2000004 bytes exceeds 4096") {
		t.Errorf("Compile = %v", err)
	}
	// Short enough, but too deep.
	nested := strings.Repeat("(", MaxExprDepth+1) + "true" + strings.Repeat(")", MaxExprDepth+1)
	doc := "pack: p\nowner: o\nrules:\n  - id: a\n    severity: minor\n    when: \"" + nested + "\"\n"
	p, err := Parse("deep.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := Compile(p, nil); err == nil || err.Error() != "deep.yaml:6:11: rule a: when: brackets nest deeper than 64" {
		t.Errorf("Compile = %v", err)
	}
	// The parser refuses an over-long expression before compiling.
	_, err = Parse("deep.yaml", []byte(strings.Replace(doc, nested, strings.Repeat("(", 5000), 1)))
	if err == nil || !strings.Contains(err.Error(), "when: longer than 4096 bytes") {
		t.Errorf("Parse = %v", err)
	}
}

func TestTitles(t *testing.T) {
	data := map[string]any{
		"event":  map[string]any{"attrs": map[string]any{"water_depth_cm": 35.0}, "location": map[string]any{"street": "天平路"}},
		"labels": map[string]string{"district": "xuhui"},
	}
	for _, tc := range []struct {
		name, text, want, parseErr string
		execErr                    bool
	}{
		{name: "fields", text: "积水 {{ .event.attrs.water_depth_cm }} cm，{{ .event.location.street }}", want: "积水 35 cm，天平路"},
		{name: "labels and if", text: `{{ if eq .labels.district "xuhui" }}徐汇{{ else }}其他{{ end }}`, want: "徐汇"},
		{name: "missing key", text: "{{ .event.attrs.nothing }}", want: "<no value>"},
		{name: "range", text: "{{ range .labels }}x{{ end }}", parseErr: "range"},
		{name: "printf", text: `{{ printf "%099999999d" 1 }}`, parseErr: "printf"},
		{name: "call", text: `{{ call .x }}`, parseErr: "call"},
		{name: "define", text: `{{ define "x" }}a{{ end }}`, parseErr: "define"},
		{name: "template", text: `{{ template "x" }}`, parseErr: "templates"},
		{name: "nested pipe", text: `{{ if (printf "a") }}{{ end }}`, parseErr: "printf"},
		{name: "syntax", text: `{{ .event `, parseErr: "unclosed"},
		{name: "too long", text: strings.Repeat("{{ .labels.district }}", MaxTitleBytes), execErr: true},
		{name: "run-time error", text: `{{ index .labels 3 }}`, execErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt, err := ParseTitle("t", tc.text)
			if tc.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
					t.Errorf("ParseTitle = %v, want an error about %s", err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.Execute(data)
			if tc.execErr {
				if err == nil {
					t.Errorf("Execute = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Execute = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestEnvReset(t *testing.T) {
	var e Env
	e.Reset(&cityhubv1.Event{Type: "a", Location: &cityhubv1.Location{District: "xuhui"}})
	e.Event.Attrs["stale"] = 1.0
	e.Reset(&cityhubv1.Event{Type: "b"})
	if e.Event.Type != "b" || e.Event.Location.District != "" || len(e.Event.Attrs) != 0 {
		t.Errorf("Reset kept state of the previous event: %+v", e.Event)
	}
	if e.Label("attrs.missing") != "" || e.Label("type") != "b" {
		t.Error("Label")
	}
}

// FuzzParse feeds the pack parser and compiler arbitrary text: they must
// return errors, never panic or hang.
func FuzzParse(f *testing.F) {
	for _, g := range []string{"testdata/full.good.yaml", "testdata/features.good.yaml", "testdata/fields.bad.yaml", "testdata/exprs.bad.yaml", "testdata/features.bad.yaml", "testdata/compile.bad.yaml", "testdata/types.good.yaml", "testdata/types.bad.yaml", "../../../rules/packs/flood.yaml", "../../../rules/packs/manhole.yaml"} {
		if b, err := os.ReadFile(g); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("pack: p\nowner: o\nrules: [{id: a, when: '((((', severity: minor}]"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	cat := testCatalog(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse("fuzz.yaml", b)
		if err != nil {
			return
		}
		_ = Compile(p, cat)
	})
}

func TestFeaturesPack(t *testing.T) {
	packs, err := LoadFiles(testCatalog(t), "testdata/features.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := packs[0]
	w, callers, school := p.Rules[0], p.Rules[1], p.Rules[2]
	if len(w.Escalate) != 2 || w.Escalate[0].Severity != cityhubv1.Severity_SEVERITY_EXTREME || w.Escalate[1].Program == nil {
		t.Errorf("escalate = %+v", w.Escalate)
	}
	if w.For != 10*time.Minute || w.SummaryTemplate == nil {
		t.Errorf("for = %s, summary %v", w.For, w.SummaryTemplate)
	}
	// dispatch: default takes the lead and the class from the event type.
	if d := w.Dispatch; d == nil || d.Lead != "water-affairs" || d.CaseClass != "priority" || len(d.Assist) != 0 {
		t.Errorf("default dispatch = %+v", d)
	}
	if d := callers.Dispatch; d.Lead != "water-affairs" || d.CaseClass != "urgent" || d.Accept != 5*time.Minute || !slices.Equal(d.Assist, []string{"traffic-police"}) {
		t.Errorf("dispatch with overrides = %+v", d)
	}
	if !callers.Shadow || w.Shadow {
		t.Error("shadow")
	}
	if c := callers.Count; c == nil || c.Distinct != "attrs.caller_id" {
		t.Errorf("count = %+v", c)
	}
	if school.Program == nil {
		t.Error("in_area rule not compiled")
	}
	if school.Active != "" || p.Rules[3].Active != ActiveOffHours || p.Rules[4].Program == nil {
		t.Errorf("active = %q, %q; time functions compiled %v", school.Active, p.Rules[3].Active, p.Rules[4].Program != nil)
	}
	if len(p.Silences) != 1 || len(p.Inhibits) != 1 {
		t.Fatalf("silences %d, inhibits %d", len(p.Silences), len(p.Inhibits))
	}
	s := p.Silences[0]
	if s.Name != "tianping-roadworks" || s.Reason == "" || s.CreatedBy != "road-administration" ||
		s.Matchers.String() != "{rule=features/waterlogging|features/callers, street=tianping}" {
		t.Errorf("silence = %+v", s)
	}
	at := time.Date(2025, 7, 15, 9, 59, 0, 0, time.UTC)
	if !s.Active(at) || s.Active(at.Add(time.Minute)) || s.Active(time.Date(2025, 6, 30, 15, 59, 0, 0, time.UTC)) {
		t.Error("silence window: want [2025-06-30T16:00Z, 2025-07-15T10:00Z)")
	}
	in := p.Inhibits[0]
	if !slices.Equal(in.SourceRules(), []string{"features/school-water"}) || !slices.Equal(in.Equal, []string{"district"}) {
		t.Errorf("inhibit = %+v", in)
	}
	alert := map[string]string{"rule": "features/waterlogging", "severity": "moderate", "district": "xuhui"}
	if !in.Target.Matches(func(n string) string { return alert[n] }) {
		t.Error("target matchers do not select the moderate waterlogging alert")
	}
	alert["severity"] = "severe"
	if in.Target.Matches(func(n string) string { return alert[n] }) {
		t.Error("target matchers select a severe alert")
	}
}

func TestMuteRulesNameLoadedRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	silence := "  - {name: works, matchers: {rule: %s}, starts: 2025-07-01T00:00:00Z, ends: 2025-07-02T00:00:00Z, reason: r, created_by: c}\n"
	a := write("a.yaml", "pack: a\nowner: water-affairs\nrules:\n  - {id: r, when: 'true', severity: minor}\nsilences:\n"+fmt.Sprintf(silence, "a/r"))
	b := write("b.yaml", "pack: b\nowner: water-affairs\nsilences:\n"+fmt.Sprintf(silence, "a/typo")+
		"inhibit:\n  - {source: {rule: a/r}, target: {rule: b/none}}\n")
	_, err := LoadFiles(nil, a, b)
	want := []string{
		b + `:4:5: silence works: rule "a/typo" is not in any loaded pack`,
		b + `:4:5: silence "works" is also defined in ` + a,
		b + `:6:5: inhibit.target: rule "b/none" is not in any loaded pack`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("LoadFiles = %v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestGeoFunctions(t *testing.T) {
	doc := `pack: geo
owner: water-affairs
rules:
  - {id: school, when: 'in_area(event.location, "school-zones")', severity: minor}
  - {id: near, when: 'distance_m(event.location, [121.4378, 31.1990]) < 300', severity: minor}
  - {id: far, when: 'distance_m([121.4378, 31.1990], event.location) >= 300', severity: minor}
`
	p, err := Parse("geo.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := Compile(p, testCatalog(t)); err != nil {
		t.Fatal(err)
	}
	run := func(r *Rule, lon, lat float64) bool {
		var e Env
		e.Reset(&cityhubv1.Event{Location: &cityhubv1.Location{District: "xuhui", Lon: lon, Lat: lat}})
		v, err := expr.Run(r.Program, &e)
		if err != nil {
			t.Fatal(err)
		}
		return v.(bool)
	}
	school, near, far := p.Rules[0], p.Rules[1], p.Rules[2]
	for _, tc := range []struct {
		name                    string
		lon, lat                float64
		inSchool, isNear, isFar bool
	}{
		{"at the school gate", 121.4378, 31.1990, true, true, false},
		{"200 m east", 121.4399, 31.1990, false, true, false},
		{"1 km north", 121.4378, 31.2080, false, false, true},
		// No coordinates: nowhere, and at no distance from anything.
		{"no coordinates", 0, 0, false, false, false},
	} {
		if got := [3]bool{run(school, tc.lon, tc.lat), run(near, tc.lon, tc.lat), run(far, tc.lon, tc.lat)}; got != [3]bool{tc.inSchool, tc.isNear, tc.isFar} {
			t.Errorf("%s: in school zone, near, far = %v", tc.name, got)
		}
	}
	// Without a catalog an area cannot be checked, so it is refused.
	p, _ = Parse("geo.yaml", []byte(doc))
	if err := Compile(p, nil); err == nil || !strings.Contains(err.Error(), `geo.yaml:4:49: rule school: when: in_area: no catalog to find area "school-zones" in`) {
		t.Errorf("Compile without catalog = %v", err)
	}
}

// TestAbsentWaitFromCatalog: an absent rule without for waits
// catalog.AbsentReports of its event type's reports_every; one with for
// keeps its own.
func TestAbsentWaitFromCatalog(t *testing.T) {
	dir := t.TempDir()
	pack := `pack: gauges
owner: water-affairs
rules:
  - {id: silent, when: 'event.type == "river_level"', severity: moderate, group_by: [attrs.gauge_id], absent: {}}
  - {id: silent-2h, when: 'event.type == "river_level"', severity: moderate, group_by: [attrs.gauge_id], absent: {for: 2h}}
`
	if err := os.WriteFile(filepath.Join(dir, "gauges.yaml"), []byte(pack), 0o644); err != nil {
		t.Fatal(err)
	}
	packs, err := LoadFiles(testCatalog(t), filepath.Join(dir, "gauges.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{catalog.AbsentReports * 5 * time.Minute, 2 * time.Hour} {
		if r := packs[0].Rules[i]; r.Absent == nil || r.Absent.For != want {
			t.Errorf("%s waits %+v, want %v", r.Name(), r.Absent, want)
		}
	}
}
