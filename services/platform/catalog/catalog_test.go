package catalog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const good = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
departments:
  - {code: water-affairs, name: 水务局}
event_types:
  - code: waterlogging
    name: 道路积水
    owner: water-affairs
    attrs: {water_depth_cm: number, camera_id: string}
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	et, ok := c.EventType("waterlogging")
	if !ok || et.Attrs["water_depth_cm"] != AttrNumber {
		t.Errorf("waterlogging = %+v, %v", et, ok)
	}
	if _, ok := c.District("xuhui"); !ok {
		t.Error("xuhui missing")
	}
	if et.ReportInterval() != 0 {
		t.Errorf("waterlogging reports every %v, and says nothing of it", et.ReportInterval())
	}
	c, err = Parse([]byte(strings.Replace(good, "attrs: {water_depth_cm", "reports_every: 10m\n    attrs: {water_depth_cm", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if et, _ := c.EventType("waterlogging"); et.ReportInterval() != 10*time.Minute {
		t.Errorf("reports_every 10m read as %v", et.ReportInterval())
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", good + "colour: red\n", "field colour not found"},
		{"unknown owner", strings.Replace(good, "owner: water-affairs", "owner: nobody", 1), `owner "nobody"`},
		{"bad attr type", strings.Replace(good, "water_depth_cm: number", "water_depth_cm: float", 1), `type "float"`},
		{"bad code", strings.Replace(good, "code: xuhui", "code: Xu Hui", 1), `code "Xu Hui"`},
		{"empty", "{}", "no districts"},
		{"reports_every not a duration", strings.Replace(good, "attrs: {water_depth_cm", "reports_every: often\n    attrs: {water_depth_cm", 1), `reports_every "often"`},
		{"reports_every too short", strings.Replace(good, "attrs: {water_depth_cm", "reports_every: 1s\n    attrs: {water_depth_cm", 1), "from 10s to 24h0m0s"},
		{"reports_every too long", strings.Replace(good, "attrs: {water_depth_cm", "reports_every: 48h\n    attrs: {water_depth_cm", 1), "from 10s to 24h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// The calendar's holidays come a year to a file, beside catalog.yaml; the
// years it knows are its coverage.
func TestCalendarYears(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("catalog.yaml", `
districts: [{code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}]
departments: [{code: water-affairs, name: 水务局}]
event_types: [{code: waterlogging, name: 道路积水, owner: water-affairs}]
calendar: {holidays: [2025-10-01]}
`)
	write("calendar/2026.yaml", "year: 2026\nholidays: [2026-10-01]\nworkdays: [2026-10-10]\n")
	c, err := Load(filepath.Join(dir, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cal := c.WorkCalendar()
	if !slices.Equal(cal.Years, []int{2025, 2026}) || !cal.Covers(2026) || cal.Covers(2027) {
		t.Errorf("years %v", cal.Years)
	}
	if !slices.Contains(cal.Holidays, "2026-10-01") || !slices.Contains(cal.Workdays, "2026-10-10") {
		t.Errorf("the year file's dates are missing: %v %v", cal.Holidays, cal.Workdays)
	}
	for name, text := range map[string]string{
		"calendar/2027.yaml": "year: 2028\nholidays: []\n",                     // named for another year
		"calendar/2029.yaml": "year: 2029\nholidays: [2030-01-01]\n",           // a date of another year
		"calendar/2031.yaml": "year: 2031\nholidays: [2031-01-01]\nextra: 1\n", // unknown field
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			b, _ := os.ReadFile(filepath.Join(dir, "catalog.yaml"))
			os.WriteFile(filepath.Join(d, "catalog.yaml"), b, 0o644)
			os.MkdirAll(filepath.Join(d, "calendar"), 0o755)
			os.WriteFile(filepath.Join(d, name), []byte(text), 0o644)
			if _, err := Load(filepath.Join(d, "catalog.yaml")); err == nil || !strings.Contains(err.Error(), filepath.Base(name)) {
				t.Errorf("Load = %v, want an error naming %s", err, name)
			}
		})
	}
	// The shipped rules keep their years under rules/calendar.
	shipped, err := Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !shipped.WorkCalendar().Covers(2026) {
		t.Errorf("the shipped calendar covers %v", shipped.WorkCalendar().Years)
	}
}
