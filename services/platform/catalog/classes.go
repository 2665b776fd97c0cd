package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the calendar's zone must load where the OS has no zoneinfo
)

// Clocks a case class's limits run on.
const (
	// InWorking counts working time on the calendar (the default).
	InWorking = "working"
	// InNatural counts every hour of every day.
	InNatural = "natural"
)

// CaseClass is a deadline class of cases (case_classes:): how long a
// department has to sign for a case and to report it handled, both counted
// from dispatch. Limits are written as spans (see ParseSpan).
type CaseClass struct {
	Accept string `yaml:"accept" json:"accept,omitempty"`
	Handle string `yaml:"handle" json:"handle,omitempty"`
	// In is the clock of limits written as plain durations: "working" (the
	// default) or "natural". Limits in wh or wd always count working time
	// and are refused in a natural class.
	In string `yaml:"in" json:"in,omitempty"`

	limits Limits
}

// Limits are a case class resolved against the calendar: zero means no
// limit. Working durations count working time.
type Limits struct {
	Accept, Handle time.Duration
	Working        bool
}

// Calendar is the working calendar of the city (calendar:): when working
// hours and days (工作时/工作日) are.
type Calendar struct {
	// Timezone is an IANA zone name; Asia/Shanghai when empty.
	Timezone string `yaml:"timezone" json:"timezone,omitempty"`
	// WorkHours are the work periods of a working day, "HH:MM-HH:MM", in
	// order; 09:00-12:00 and 13:30-17:30 when empty.
	WorkHours []string `yaml:"work_hours" json:"work_hours,omitempty"`
	// Weekdays are the working days of the week (mon … sun); Monday to
	// Friday when empty.
	Weekdays []string `yaml:"weekdays" json:"weekdays,omitempty"`
	// Holidays are dates off ("2025-10-01"), whatever their weekday.
	Holidays []string `yaml:"holidays" json:"holidays,omitempty"`
	// Workdays are make-up working days (调休): dates worked although their
	// weekday is off.
	Workdays []string `yaml:"workdays" json:"workdays,omitempty"`
	// Years are the years whose holidays the calendar knows (its
	// coverage): those of the year files under calendar/ and of the dates
	// above.
	Years []int `yaml:"-" json:"years"`

	loc      *time.Location
	periods  []WorkPeriod
	weekdays []time.Weekday
}

// WorkPeriod is one work period of a day as offsets from midnight.
type WorkPeriod struct{ Start, End time.Duration }

// defaultCalendar is the calendar of a catalog that has none.
var defaultCalendar = Calendar{
	Timezone:  "Asia/Shanghai",
	WorkHours: []string{"09:00-12:00", "13:30-17:30"},
	Weekdays:  []string{"mon", "tue", "wed", "thu", "fri"},
}

// Location returns the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// Periods returns the work periods of a working day.
func (c *Calendar) Periods() []WorkPeriod { return slices.Clone(c.periods) }

// WorkingWeekdays returns the working days of the week.
func (c *Calendar) WorkingWeekdays() []time.Weekday { return slices.Clone(c.weekdays) }

// DayLength returns the working time of one working day, the length of
// "1wd".
func (c *Calendar) DayLength() time.Duration {
	var d time.Duration
	for _, p := range c.periods {
		d += p.End - p.Start
	}
	return d
}

// WorkCalendar returns the catalog's calendar, or the default one when the
// catalog has no calendar section.
func (c *Catalog) WorkCalendar() *Calendar {
	if c.Calendar == nil { // a Catalog that Parse did not fill
		def := defaultCalendar
		def.check()
		return &def
	}
	return c.Calendar
}

// CaseClassLimits returns the limits of case class name.
func (c *Catalog) CaseClassLimits(name string) (Limits, bool) {
	cc, ok := c.CaseClasses[name]
	if !ok || cc == nil {
		return Limits{}, false
	}
	return cc.limits, true
}

// Span is a time limit as the catalog and the API write it: a Go duration
// ("30m", "4h", "1h30m"), working hours ("2wh", "1.5wh") or working days
// ("3wd", "0.5wd").
type Span struct {
	// N is the duration, or the number of working hours or days times an
	// hour (so 1.5wd is N = 90m with Unit "wd").
	N    time.Duration
	Unit string // "", "wh" or "wd"
}

// Working reports whether the span is written in working units.
func (s Span) Working() bool { return s.Unit != "" }

// Resolve returns the span as a duration, a working day being day long.
func (s Span) Resolve(day time.Duration) time.Duration {
	if s.Unit == "wd" {
		// N is a whole number of hundredths of an hour (ParseSpan keeps two
		// decimals), which keeps the product within int64.
		return time.Duration(int64(day) * int64(s.N/(time.Hour/100)) / 100)
	}
	return s.N
}

// MaxSpan bounds every span: no city deadline is a year away.
const MaxSpan = 366 * 24 * time.Hour

var spanRE = regexp.MustCompile(`^([0-9]{1,4}(?:\.[0-9]{1,2})?)(wh|wd)$`)

// ParseSpan parses a span: a positive Go duration, or a positive number
// with at most two decimals followed by wh (working hours) or wd (working
// days); at most MaxSpan.
func ParseSpan(s string) (Span, error) {
	if m := spanRE.FindStringSubmatch(s); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil || f <= 0 {
			return Span{}, fmt.Errorf("span %q: want a positive number of %s", s, m[2])
		}
		sp := Span{N: time.Duration(f*100+0.5) * time.Hour / 100, Unit: m[2]}
		if sp.N > MaxSpan/24 && sp.Unit == "wd" || sp.N > MaxSpan {
			return Span{}, fmt.Errorf("span %q: longer than a year", s)
		}
		return sp, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Span{}, fmt.Errorf("span %q: want a duration such as 30m or 4h, or working hours or days such as 2wh or 3wd", s)
	}
	if d <= 0 || d > MaxSpan {
		return Span{}, fmt.Errorf("span %q: want more than zero and at most a year", s)
	}
	return Span{N: d}, nil
}

var (
	hoursRE  = regexp.MustCompile(`^([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])$`)
	weekdays = map[string]time.Weekday{
		"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
		"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	}
)

// indexClasses checks the calendar, the case classes and the classes the
// event types name, filling the defaults.
func (c *Catalog) indexClasses() []error {
	var errs []error
	if c.Calendar == nil {
		def := defaultCalendar
		c.Calendar = &def
	}
	errs = append(errs, c.Calendar.check()...)
	c.Calendar.coverYears()
	day := c.Calendar.DayLength()
	for name, cc := range c.CaseClasses {
		if !codeRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("case class %q: want lower-case letters, digits, - and _", name))
		}
		if cc == nil {
			errs = append(errs, fmt.Errorf("case class %q: no limits", name))
			continue
		}
		errs = append(errs, cc.check(name, day)...)
	}
	for _, t := range c.EventTypes {
		if t.Class == "" {
			continue
		}
		if _, ok := c.CaseClasses[t.Class]; !ok {
			errs = append(errs, fmt.Errorf("event type %q: class %q is not in case_classes", t.Code, t.Class))
		}
	}
	return errs
}

func (cc *CaseClass) check(name string, day time.Duration) []error {
	var errs []error
	switch cc.In {
	case "", InWorking:
		cc.limits.Working = true
	case InNatural:
	default:
		errs = append(errs, fmt.Errorf("case class %q: in %q: want working or natural", name, cc.In))
	}
	for _, f := range []struct {
		field, v string
		dst      *time.Duration
	}{{"accept", cc.Accept, &cc.limits.Accept}, {"handle", cc.Handle, &cc.limits.Handle}} {
		if f.v == "" {
			continue
		}
		sp, err := ParseSpan(f.v)
		if err != nil {
			errs = append(errs, fmt.Errorf("case class %q: %s: %w", name, f.field, err))
			continue
		}
		if sp.Working() && !cc.limits.Working {
			errs = append(errs, fmt.Errorf("case class %q: %s: %s counts working time in a natural-time class", name, f.field, f.v))
		}
		*f.dst = sp.Resolve(day)
	}
	l := cc.limits
	if l.Accept == 0 && l.Handle == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("case class %q: give accept, handle or both", name))
	}
	if l.Accept > 0 && l.Handle > 0 && l.Accept > l.Handle {
		errs = append(errs, fmt.Errorf("case class %q: accept (%s) is longer than handle (%s); both count from dispatch", name, cc.Accept, cc.Handle))
	}
	return errs
}

func (cal *Calendar) check() []error {
	var errs []error
	zone := cal.Timezone
	if zone == "" {
		zone = defaultCalendar.Timezone
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		errs = append(errs, fmt.Errorf("calendar: timezone %q: %w", cal.Timezone, err))
		loc = time.UTC
	}
	cal.loc = loc
	hours := cal.WorkHours
	if len(hours) == 0 {
		hours = defaultCalendar.WorkHours
	}
	cal.periods = nil
	for _, h := range hours {
		m := hoursRE.FindStringSubmatch(h)
		if m == nil {
			errs = append(errs, fmt.Errorf("calendar: work_hours %q: want HH:MM-HH:MM", h))
			continue
		}
		n := func(i int) time.Duration { v, _ := strconv.Atoi(m[i]); return time.Duration(v) }
		p := WorkPeriod{n(1)*time.Hour + n(2)*time.Minute, n(3)*time.Hour + n(4)*time.Minute}
		switch {
		case p.End > 24*time.Hour || p.Start >= p.End:
			errs = append(errs, fmt.Errorf("calendar: work_hours %q: want a start before its end, within one day", h))
			continue
		case len(cal.periods) > 0 && p.Start < cal.periods[len(cal.periods)-1].End:
			errs = append(errs, fmt.Errorf("calendar: work_hours %q: overlaps or precedes the period before it", h))
			continue
		}
		cal.periods = append(cal.periods, p)
	}
	days := cal.Weekdays
	if len(days) == 0 {
		days = defaultCalendar.Weekdays
	}
	cal.weekdays = nil
	for _, d := range days {
		w, ok := weekdays[strings.ToLower(d)]
		if !ok {
			errs = append(errs, fmt.Errorf("calendar: weekday %q: want one of mon, tue, wed, thu, fri, sat, sun", d))
			continue
		}
		if !slices.Contains(cal.weekdays, w) {
			cal.weekdays = append(cal.weekdays, w)
		}
	}
	sort.Slice(cal.weekdays, func(i, j int) bool { return cal.weekdays[i] < cal.weekdays[j] })
	seen := map[string]string{}
	for _, list := range []struct {
		name  string
		dates []string
	}{{"holidays", cal.Holidays}, {"workdays", cal.Workdays}} {
		for _, d := range list.dates {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				errs = append(errs, fmt.Errorf("calendar: %s: %q: want YYYY-MM-DD", list.name, d))
				continue
			}
			if prev, dup := seen[d]; dup {
				errs = append(errs, fmt.Errorf("calendar: %s: %s is also listed in %s", list.name, d, prev))
			}
			seen[d] = list.name
		}
	}
	if len(cal.periods) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("calendar: no work hours"))
	}
	return errs
}
