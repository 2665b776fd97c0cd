package workcal

import (
	"errors"
	"testing"
	"time"
	_ "time/tzdata" // the zones below must load on a machine without zoneinfo

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// shanghai is the default calendar plus the 2025 National Day holiday
// (1–8 October) and its make-up working days (Sunday 28 September and
// Saturday 11 October).
func shanghai(t *testing.T) *Calendar {
	t.Helper()
	var hol []Date
	for d := 1; d <= 8; d++ {
		hol = append(hol, Date{2025, time.October, d})
	}
	def := Default()
	c, err := New(Config{
		Location: def.Location(),
		Periods:  def.periods,
		Weekdays: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
		Holidays: hol,
		Workdays: []Date{{2025, time.September, 28}, {2025, time.October, 11}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func at(t *testing.T, c *Calendar, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, c.Location())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAdd(t *testing.T) {
	c := shanghai(t)
	tests := []struct {
		name, from string
		d          time.Duration
		want       string
	}{
		{"inside a period", "2025-07-01 09:30", 2 * time.Hour, "2025-07-01 11:30"},
		{"ends exactly at lunch", "2025-07-01 09:00", 3 * time.Hour, "2025-07-01 12:00"},
		{"crosses lunch", "2025-07-01 11:00", 2 * time.Hour, "2025-07-01 14:30"},
		{"starts during lunch", "2025-07-01 12:40", 30 * time.Minute, "2025-07-01 14:00"},
		{"starts before work", "2025-07-01 06:00", time.Hour, "2025-07-01 10:00"},
		{"crosses the night", "2025-07-01 17:00", time.Hour, "2025-07-02 09:30"},
		{"starts at night", "2025-07-01 23:00", 10 * time.Minute, "2025-07-02 09:10"},
		{"ends Friday evening", "2025-07-04 16:30", time.Hour, "2025-07-04 17:30"},
		{"crosses a weekend", "2025-07-04 17:00", time.Hour, "2025-07-07 09:30"},
		{"starts on Saturday", "2025-07-05 10:00", time.Hour, "2025-07-07 10:00"},
		{"one working day", "2025-07-01 10:00", 7 * time.Hour, "2025-07-02 10:00"},
		{"three working days over a weekend", "2025-07-03 15:00", 21 * time.Hour, "2025-07-08 15:00"},
		{"make-up Sunday counts", "2025-09-27 10:00", time.Hour, "2025-09-28 10:00"},
		{"holiday week is skipped", "2025-09-30 17:00", time.Hour, "2025-10-09 09:30"},
		{"make-up Saturday after the holiday", "2025-10-10 17:00", time.Hour, "2025-10-11 09:30"},
		{"zero is now, even at night", "2025-07-01 23:00", 0, "2025-07-01 23:00"},
		{"negative counts back", "2025-07-02 09:30", -time.Hour, "2025-07-01 17:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Add(at(t, c, tt.from), tt.d)
			if want := at(t, c, tt.want); !got.Equal(want) {
				t.Errorf("Add(%s, %v) = %s, want %s", tt.from, tt.d, got.In(c.Location()).Format("Mon 2006-01-02 15:04"), tt.want)
			}
		})
	}
}

func TestIsWorking(t *testing.T) {
	c := shanghai(t)
	tests := []struct {
		name, at string
		want     bool
	}{
		{"a period's first minute", "2025-07-01 09:00", true},
		{"before work", "2025-07-01 08:59", false},
		{"a period's end is out", "2025-07-01 12:00", false},
		{"lunch", "2025-07-01 13:00", false},
		{"afternoon", "2025-07-01 17:29", true},
		{"evening", "2025-07-01 22:00", false},
		{"Saturday morning", "2025-07-05 10:00", false},
		{"a holiday's morning", "2025-10-02 10:00", false},
		{"a make-up Sunday", "2025-09-28 10:00", true},
		{"the make-up Sunday's evening", "2025-09-28 20:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := at(t, c, tt.at)
			if got := c.IsWorking(tm); got != tt.want {
				t.Errorf("IsWorking(%s) = %v, want %v", tt.at, got, tt.want)
			}
			// The same instant in another zone gets the same answer.
			if got := c.IsWorking(tm.UTC()); got != tt.want {
				t.Errorf("IsWorking(%s in UTC) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
	tm := at(t, c, "2025-07-01 10:00")
	if n := testing.AllocsPerRun(100, func() { c.IsWorking(tm) }); n != 0 {
		t.Errorf("IsWorking: %v allocations, want 0", n)
	}
}

func TestBetween(t *testing.T) {
	c := shanghai(t)
	tests := []struct {
		name, a, b string
		want       time.Duration
	}{
		{"same instant", "2025-07-01 10:00", "2025-07-01 10:00", 0},
		{"over lunch", "2025-07-01 11:00", "2025-07-01 14:00", 90 * time.Minute},
		{"all of lunch", "2025-07-01 12:00", "2025-07-01 13:30", 0},
		{"overnight", "2025-07-01 17:00", "2025-07-02 09:30", time.Hour},
		{"a weekend", "2025-07-05 00:00", "2025-07-07 00:00", 0},
		{"a week", "2025-07-07 00:00", "2025-07-14 00:00", 35 * time.Hour},
		{"holiday week with its make-up days", "2025-09-27 00:00", "2025-10-12 00:00", 6 * 7 * time.Hour},
		{"backwards is negative", "2025-07-01 14:00", "2025-07-01 11:00", -90 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Between(at(t, c, tt.a), at(t, c, tt.b)); got != tt.want {
				t.Errorf("Between(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestAddBetweenInverse checks Add and Between against each other from
// many starting points, in working time and out of it.
func TestAddBetweenInverse(t *testing.T) {
	c := shanghai(t)
	start := at(t, c, "2025-09-25 00:00")
	for step := range 24 * 4 * 21 { // every quarter hour for three weeks
		from := start.Add(time.Duration(step) * 15 * time.Minute)
		for _, d := range []time.Duration{time.Minute, 90 * time.Minute, 7 * time.Hour, 23 * time.Hour} {
			to := c.Add(from, d)
			if got := c.Between(from, to); got != d {
				t.Fatalf("Between(%s, Add(%s, %v) = %s) = %v", from, from, d, to, got)
			}
			if back := c.Sub(to, d); c.Between(back, to) != d || (c.IsWorking(from) && !back.Equal(from)) {
				t.Fatalf("Sub(Add(%s, %v), %v) = %s", from, d, d, back)
			}
		}
	}
}

// TestShiftComposes checks what pausing relies on: moving a deadline by
// working time w gives the deadline computed with w more from the start.
func TestShiftComposes(t *testing.T) {
	c := shanghai(t)
	from := at(t, c, "2025-09-26 16:00")
	for _, x := range []time.Duration{time.Hour, 90 * time.Minute, 7 * time.Hour} {
		for _, w := range []time.Duration{30 * time.Minute, 2 * time.Hour, 14 * time.Hour} {
			if a, b := c.Add(c.Add(from, x), w), c.Add(from, x+w); !a.Equal(b) {
				t.Errorf("Add(Add(t, %v), %v) = %s, Add(t, %v) = %s", x, w, a, x+w, b)
			}
		}
	}
}

func TestOtherZones(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{
		Location: ny,
		Periods:  []Period{{8 * time.Hour, 16 * time.Hour}},
		Weekdays: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Clocks go forward on Sunday 9 March 2025: Friday 15:00 EST plus two
	// working hours is Monday 09:00 EDT, 65 elapsed hours later.
	from := time.Date(2025, 3, 7, 15, 0, 0, 0, ny)
	got := c.Add(from, 2*time.Hour)
	if want := time.Date(2025, 3, 10, 9, 0, 0, 0, ny); !got.Equal(want) || got.Sub(from) != 65*time.Hour {
		t.Errorf("Add across the DST change = %s (%v later), want %s", got, got.Sub(from), want)
	}
	// The same instant seen from UTC lands on the same answer.
	if got2 := c.Add(from.UTC(), 2*time.Hour); !got2.Equal(got) {
		t.Errorf("Add from UTC = %s, want %s", got2, got)
	}
	if d := c.DayLength(); d != 8*time.Hour {
		t.Errorf("DayLength = %v", d)
	}
	utc, err := New(Config{Periods: []Period{{0, 24 * time.Hour}}, Weekdays: []time.Weekday{time.Saturday}})
	if err != nil {
		t.Fatal(err)
	}
	if got := utc.Add(time.Date(2025, 7, 4, 12, 0, 0, 0, time.UTC), 30*time.Hour); !got.Equal(time.Date(2025, 7, 12, 6, 0, 0, 0, time.UTC)) {
		t.Errorf("round-the-clock Saturdays: %s", got)
	}
}

func TestNewRefusesBadConfigs(t *testing.T) {
	week := []time.Weekday{time.Monday}
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"no periods", Config{Weekdays: week}},
		{"empty period", Config{Periods: []Period{{9 * time.Hour, 9 * time.Hour}}, Weekdays: week}},
		{"past midnight", Config{Periods: []Period{{22 * time.Hour, 26 * time.Hour}}, Weekdays: week}},
		{"overlap", Config{Periods: []Period{{9 * time.Hour, 12 * time.Hour}, {11 * time.Hour, 13 * time.Hour}}, Weekdays: week}},
		{"no weekdays", Config{Periods: []Period{{9 * time.Hour, 12 * time.Hour}}}},
		{"holiday and workday", Config{Periods: []Period{{9 * time.Hour, 12 * time.Hour}}, Weekdays: week,
			Holidays: []Date{{2025, 1, 1}}, Workdays: []Date{{2025, 1, 1}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrNoWorkingTime) {
				t.Errorf("New = %v, want ErrNoWorkingTime", err)
			}
		})
	}
	if _, err := ParseDate("2025-13-01"); err == nil {
		t.Error("ParseDate accepted month 13")
	}
	if d, err := ParseDate("2025-10-01"); err != nil || d != (Date{2025, 10, 1}) || d.String() != "2025-10-01" {
		t.Errorf("ParseDate = %v, %v", d, err)
	}
}

func TestRestDaysAndHolidaysOfTheCatalog(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromCatalog(cat.WorkCalendar())
	if err != nil {
		t.Fatal(err)
	}
	cst := c.Location()
	for _, tc := range []struct {
		day           time.Time
		rest, holiday bool
	}{
		{time.Date(2026, 10, 1, 3, 0, 0, 0, cst), true, true},     // National Day
		{time.Date(2026, 10, 10, 10, 0, 0, 0, cst), false, false}, // a Saturday worked in exchange
		{time.Date(2026, 10, 11, 10, 0, 0, 0, cst), true, false},  // a Sunday
		{time.Date(2026, 10, 12, 10, 0, 0, 0, cst), false, false}, // a Monday
	} {
		if c.IsRestDay(tc.day) != tc.rest || c.IsHoliday(tc.day) != tc.holiday {
			t.Errorf("%s: rest %v holiday %v", tc.day.Format(time.DateOnly), c.IsRestDay(tc.day), c.IsHoliday(tc.day))
		}
	}
}
