package catalog

import (
	"strings"
	"testing"
	"time"
)

const withClasses = good + `
case_classes:
  urgent:   {accept: 30m, handle: 4h, in: natural}
  standard: {accept: 2wh, handle: 3wd}
  slow:     {handle: 1.5wd}
calendar:
  timezone: Asia/Shanghai
  work_hours: ["08:30-12:00", "13:00-17:00"]
  weekdays: [mon, tue, wed, thu, fri]
  holidays: [2025-10-01, 2025-10-02]
  workdays: [2025-09-28]
`

func TestClassesAndCalendar(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(withClasses, "owner: water-affairs", "owner: water-affairs\n    class: urgent", 1)))
	if err != nil {
		t.Fatal(err)
	}
	cal := c.WorkCalendar()
	if cal.Location().String() != "Asia/Shanghai" || cal.DayLength() != 7*time.Hour+30*time.Minute {
		t.Errorf("calendar %s with %v days", cal.Location(), cal.DayLength())
	}
	if got := cal.WorkingWeekdays(); len(got) != 5 || got[0] != time.Monday {
		t.Errorf("weekdays %v", got)
	}
	for name, want := range map[string]Limits{
		"urgent":   {Accept: 30 * time.Minute, Handle: 4 * time.Hour},
		"standard": {Accept: 2 * time.Hour, Handle: 3 * (7*time.Hour + 30*time.Minute), Working: true},
		"slow":     {Handle: 11*time.Hour + 15*time.Minute, Working: true},
	} {
		if got, ok := c.CaseClassLimits(name); !ok || got != want {
			t.Errorf("class %s = %+v, %v; want %+v", name, got, ok, want)
		}
	}
	if _, ok := c.CaseClassLimits("nope"); ok {
		t.Error("unknown class found")
	}
	if et, _ := c.EventType("waterlogging"); et.Class != "urgent" {
		t.Errorf("event type class %q", et.Class)
	}

	// No calendar section: the default calendar.
	d, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cal := d.WorkCalendar(); cal.Location().String() != "Asia/Shanghai" || cal.DayLength() != 7*time.Hour || len(cal.Periods()) != 2 {
		t.Errorf("default calendar %s, %v", cal.Location(), cal.Periods())
	}
	if cal := (&Catalog{}).WorkCalendar(); cal.DayLength() != 7*time.Hour {
		t.Errorf("zero catalog's calendar: %v", cal.DayLength())
	}
}

func TestClassesBad(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown unit", "accept: 2wh", "accept: 2wk", `span "2wk"`},
		{"negative", "accept: 30m", "accept: -30m", "more than zero"},
		{"working unit in natural class", "handle: 4h, in: natural", "handle: 1wd, in: natural", "natural-time class"},
		{"unknown clock", "in: natural", "in: lunar", `in "lunar"`},
		{"accept after handle", "accept: 2wh, handle: 3wd", "accept: 4wd, handle: 3wd", "longer than handle"},
		{"empty class", "slow:     {handle: 1.5wd}", "slow: {}", "give accept, handle or both"},
		{"three decimals", "1.5wd", "1.555wd", `span "1.555wd"`},
		{"too long", "3wd", "400wd", "longer than a year"},
		{"bad class name", "slow:", "Slow:", `case class "Slow"`},
		{"bad zone", "Asia/Shanghai", "Mars/Olympus", `timezone "Mars/Olympus"`},
		{"bad hours", `"08:30-12:00"`, `"8:30-12:00"`, `work_hours "8:30-12:00"`},
		{"backwards hours", `"13:00-17:00"`, `"17:00-13:00"`, "start before its end"},
		{"overlapping hours", `"13:00-17:00"`, `"11:00-17:00"`, "overlaps"},
		{"past midnight", `"13:00-17:00"`, `"13:00-25:00"`, "within one day"},
		{"bad weekday", "thu, fri]", "thu, fry]", `weekday "fry"`},
		{"bad date", "2025-10-02]", "2025-10-32]", `"2025-10-32"`},
		{"holiday and workday", "workdays: [2025-09-28]", "workdays: [2025-10-01]", "also listed in holidays"},
		{"unknown event class", "owner: water-affairs", "owner: water-affairs\n    class: glacial", `class "glacial" is not in case_classes`},
		{"unknown field", "in: natural}", "in: natural, within: 1h}", "field within not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(withClasses, tc.from, tc.to, 1)
			if doc == withClasses {
				t.Fatalf("%q is not in the document", tc.from)
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]Span{
		"30m": {N: 30 * time.Minute}, "1h30m": {N: 90 * time.Minute},
		"2wh": {N: 2 * time.Hour, Unit: "wh"}, "0.5wd": {N: 30 * time.Minute, Unit: "wd"}, "1.25wh": {N: 75 * time.Minute, Unit: "wh"},
	} {
		if got, err := ParseSpan(in); err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0m", "0wd", "wd", "1.wd", "2 wd", "1e3wh", "9999wh", "367d", "8785h"} {
		if _, err := ParseSpan(in); err == nil {
			t.Errorf("ParseSpan(%q) accepted", in)
		}
	}
	if got := (Span{N: 3 * time.Hour, Unit: "wd"}).Resolve(7*time.Hour + 30*time.Minute); got != 22*time.Hour+30*time.Minute {
		t.Errorf("3wd of 7h30m days = %v", got)
	}
}

// TestRepositoryCatalogClasses checks the city's own catalog: every event
// type that opens cases has a class, and the calendar is the city's.
func TestRepositoryCatalogClasses(t *testing.T) {
	c, err := Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := c.CaseClassLimits("standard"); !ok || !l.Working || l.Handle != 3*7*time.Hour {
		t.Errorf("standard = %+v, %v", l, ok)
	}
	if et, _ := c.EventType("gas_leak"); et.Class != "urgent" {
		t.Errorf("gas_leak has class %q", et.Class)
	}
	if loc := c.WorkCalendar().Location().String(); loc != "Asia/Shanghai" {
		t.Errorf("calendar zone %s", loc)
	}
}
