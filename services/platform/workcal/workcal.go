// Package workcal does time arithmetic on a working calendar: which hours of
// which days count as work (工作时), which dates are holidays, and which
// weekend dates are make-up working days (调休). Case deadlines given in
// working hours or days are computed and shifted with it, and rule
// conditions ask it whether an event happened in working time.
//
// A Calendar works in one time zone; its work periods are wall-clock times,
// so a zone with daylight saving time gets shorter or longer days where the
// clocks change, as its people do.
package workcal

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Period is one span of work within a day, as offsets from midnight:
// 09:00–12:00 is {9h, 12h}. End may be 24h.
type Period struct {
	Start, End time.Duration
}

// Date is a calendar date, without a time or a zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses "2006-01-02".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// DateOf returns the date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// Config describes a calendar.
type Config struct {
	// Location is the calendar's time zone; UTC when nil.
	Location *time.Location
	// Periods are the work periods of a working day, in order and not
	// overlapping.
	Periods []Period
	// Weekdays are the days of the week that are working days unless they
	// are holidays.
	Weekdays []time.Weekday
	// Holidays are dates off, whatever their weekday.
	Holidays []Date
	// Workdays are make-up working days: dates that are worked although
	// their weekday is not in Weekdays.
	Workdays []Date
}

// Calendar answers working-time questions. It is immutable and safe for
// concurrent use.
type Calendar struct {
	loc      *time.Location
	periods  []Period
	weekdays [7]bool
	holidays map[Date]bool
	workdays map[Date]bool
	day      time.Duration
}

// maxScanDays bounds every walk over the calendar: no deadline lies twenty
// years of days ahead, and a walk that long means the calendar has (almost)
// no working days.
const maxScanDays = 20 * 366

// ErrNoWorkingTime means a calendar has no working time at all.
var ErrNoWorkingTime = errors.New("calendar has no working time")

// New checks cfg and returns its calendar.
func New(cfg Config) (*Calendar, error) {
	c := &Calendar{
		loc:      cfg.Location,
		periods:  slices.Clone(cfg.Periods),
		holidays: map[Date]bool{},
		workdays: map[Date]bool{},
	}
	if c.loc == nil {
		c.loc = time.UTC
	}
	var errs []error
	var prevEnd time.Duration
	for i, p := range c.periods {
		switch {
		case p.Start < 0 || p.End > 24*time.Hour || p.Start >= p.End:
			errs = append(errs, fmt.Errorf("work period %d: %s–%s is not a span within one day", i+1, clock(p.Start), clock(p.End)))
		case i > 0 && p.Start < prevEnd:
			errs = append(errs, fmt.Errorf("work period %d: starts at %s, before the previous one ends", i+1, clock(p.Start)))
		}
		prevEnd = p.End
		c.day += p.End - p.Start
	}
	if len(c.periods) == 0 {
		errs = append(errs, errors.New("no work periods"))
	}
	for _, w := range cfg.Weekdays {
		if w < time.Sunday || w > time.Saturday {
			errs = append(errs, fmt.Errorf("weekday %d out of range", w))
			continue
		}
		c.weekdays[w] = true
	}
	if !slices.Contains(c.weekdays[:], true) {
		errs = append(errs, errors.New("no working weekdays"))
	}
	for _, d := range cfg.Holidays {
		c.holidays[d] = true
	}
	for _, d := range cfg.Workdays {
		if c.holidays[d] {
			errs = append(errs, fmt.Errorf("%s is both a holiday and a make-up working day", d))
		}
		c.workdays[d] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoWorkingTime, err)
	}
	return c, nil
}

func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// Default returns the calendar cityhub uses when the catalog gives none:
// Asia/Shanghai (UTC+8 all year), 09:00–12:00 and 13:30–17:30, Monday to
// Friday, no holidays.
func Default() *Calendar {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		loc = time.FixedZone("CST", 8*3600) // Shanghai has kept UTC+8 since 1991
	}
	c, err := New(Config{
		Location: loc,
		Periods:  []Period{{9 * time.Hour, 12 * time.Hour}, {13*time.Hour + 30*time.Minute, 17*time.Hour + 30*time.Minute}},
		Weekdays: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
	})
	if err != nil {
		panic(err) // a constant configuration: a bug here, not an input error
	}
	return c
}

// Location returns the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// DayLength returns the working time of one working day: a working day
// ("1wd") is this much working time.
func (c *Calendar) DayLength() time.Duration { return c.day }

// IsRestDay reports whether t falls on a day that is not worked: a weekend
// or a holiday, unless it is a make-up working day.
func (c *Calendar) IsRestDay(t time.Time) bool { return !c.IsWorkday(DateOf(t.In(c.loc))) }

// IsHoliday reports whether t falls on one of the calendar's holidays.
func (c *Calendar) IsHoliday(t time.Time) bool { return c.holidays[DateOf(t.In(c.loc))] }

// IsWorkday reports whether date d is a working day.
func (c *Calendar) IsWorkday(d Date) bool {
	if c.holidays[d] {
		return false
	}
	if c.workdays[d] {
		return true
	}
	return c.weekdays[time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()]
}

// spans returns the work periods of date d as instants; none on a day off.
func (c *Calendar) spans(d Date) [][2]time.Time {
	if !c.IsWorkday(d) {
		return nil
	}
	out := make([][2]time.Time, 0, len(c.periods))
	for _, p := range c.periods {
		out = append(out, [2]time.Time{c.at(d, p.Start), c.at(d, p.End)})
	}
	return out
}

// at returns the instant of wall-clock time off on date d. time.Date
// normalises 24:00 to the next midnight, as wanted for a period ending then.
func (c *Calendar) at(d Date, off time.Duration) time.Time {
	h, m := int(off/time.Hour), int(off%time.Hour/time.Minute)
	sec := int(off % time.Minute / time.Second)
	return time.Date(d.Year, d.Month, d.Day, h, m, sec, 0, c.loc)
}

// IsWorking reports whether t falls in working time. It does not allocate:
// the ruler asks it for every event of a rule restricted to working time.
func (c *Calendar) IsWorking(t time.Time) bool {
	d := DateOf(t.In(c.loc))
	if !c.IsWorkday(d) {
		return false
	}
	for _, p := range c.periods {
		if !t.Before(c.at(d, p.Start)) && t.Before(c.at(d, p.End)) {
			return true
		}
	}
	return false
}

// Add returns the instant at which d of working time has passed since t.
// Time outside working hours does not count, so a deadline that uses up a
// period exactly falls on the period's end (17:30 on Friday, not 09:00 on
// Monday). Add(t, 0) is t; a negative d counts back with Sub.
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	if d < 0 {
		return c.Sub(t, -d)
	}
	if d == 0 {
		return t
	}
	day := DateOf(t.In(c.loc))
	for range maxScanDays {
		for _, s := range c.spans(day) {
			if !t.Before(s[1]) {
				continue
			}
			from := s[0]
			if t.After(from) {
				from = t
			}
			if left := s[1].Sub(from); d <= left {
				return from.Add(d)
			} else {
				d -= left
			}
		}
		day = next(day)
	}
	return t.Add(d) // unreachable for a calendar New accepted
}

// Sub returns the instant d of working time before t: the inverse of Add,
// landing on a period's start when it uses one up exactly.
func (c *Calendar) Sub(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return c.Add(t, -d)
	}
	day := DateOf(t.In(c.loc))
	for range maxScanDays {
		spans := c.spans(day)
		for i := len(spans) - 1; i >= 0; i-- {
			s := spans[i]
			if !t.After(s[0]) {
				continue
			}
			to := s[1]
			if t.Before(to) {
				to = t
			}
			if left := to.Sub(s[0]); d <= left {
				return to.Add(-d)
			} else {
				d -= left
			}
		}
		day = prev(day)
	}
	return t.Add(-d)
}

// Between returns the working time from a to b; negative when b is before a.
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if b.Before(a) {
		return -c.Between(b, a)
	}
	var total time.Duration
	last := DateOf(b.In(c.loc))
	day := DateOf(a.In(c.loc))
	for range maxScanDays {
		for _, s := range c.spans(day) {
			from, to := s[0], s[1]
			if a.After(from) {
				from = a
			}
			if b.Before(to) {
				to = b
			}
			if to.After(from) {
				total += to.Sub(from)
			}
		}
		if day == last {
			break
		}
		day = next(day)
	}
	return total
}

func next(d Date) Date { return DateOf(time.Date(d.Year, d.Month, d.Day+1, 12, 0, 0, 0, time.UTC)) }
func prev(d Date) Date { return DateOf(time.Date(d.Year, d.Month, d.Day-1, 12, 0, 0, 0, time.UTC)) }
