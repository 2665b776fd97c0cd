// Package catalog loads rules/catalog.yaml: the city's districts, its
// departments and the event types sources may send, with the attributes and
// the owning department of each type, and — for the types citizens may
// report through Open311 — the questions their reports ask. Intake
// validates events against it, the ruler type-checks rules against it, and
// the screens draw its districts.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxBytes bounds the size of a catalog file.
const MaxBytes = 4 << 20

// AttrType is the type of an event attribute.
type AttrType string

const (
	AttrNumber AttrType = "number"
	AttrString AttrType = "string"
	AttrBool   AttrType = "bool"
)

// Catalog is the parsed catalog. It is read-only once loaded.
type Catalog struct {
	Districts   []District            `yaml:"districts" json:"districts"`
	Departments []Department          `yaml:"departments" json:"departments"`
	EventTypes  []EventType           `yaml:"event_types" json:"event_types"`
	Areas       []Area                `yaml:"areas" json:"areas,omitempty"`
	CaseClasses map[string]*CaseClass `yaml:"case_classes" json:"case_classes,omitempty"`
	Calendar    *Calendar             `yaml:"calendar" json:"calendar,omitempty"`

	districts   map[string]*District
	departments map[string]*Department
	types       map[string]*EventType
	areas       map[string]*Area
}

// Point is a WGS84 coordinate.
type Point struct {
	Lon float64 `yaml:"lon" json:"lon"`
	Lat float64 `yaml:"lat" json:"lat"`
}

// District is an administrative district (区).
type District struct {
	Code   string `yaml:"code" json:"code"`
	Name   string `yaml:"name" json:"name"`
	Centre Point  `yaml:"centre" json:"centre"`
}

// Department is a bureau or service that handles cases.
type Department struct {
	Code string `yaml:"code" json:"code"`
	Name string `yaml:"name" json:"name"`
}

// EventType is a kind of event and the attributes it carries.
type EventType struct {
	Code  string              `yaml:"code" json:"code"`
	Name  string              `yaml:"name" json:"name"`
	Owner string              `yaml:"owner" json:"owner"`
	Class string              `yaml:"class" json:"class,omitempty"`
	Attrs map[string]AttrType `yaml:"attrs" json:"attrs,omitempty"`
	// Report, when set, lets citizens report events of this type through
	// Open311, and says how they are asked.
	Report *Report `yaml:"report" json:"report,omitempty"`
	// ReportsEvery, for a type that sources send on a schedule, is how
	// often each of them reports when all is well (a rain gauge: "10m"):
	// an absent rule on the type waits AbsentReports of them by default.
	ReportsEvery string `yaml:"reports_every" json:"reports_every,omitempty"`

	reportsEvery time.Duration
}

// AbsentReports is how many of its scheduled reports a source may miss
// before an absent rule without its own wait counts it as silent.
const AbsentReports = 3

// Bounds of an event type's reports_every.
const (
	MinReportsEvery = 10 * time.Second
	MaxReportsEvery = 24 * time.Hour
)

// ReportInterval returns how often a source of t reports when all is
// well, or zero when t names no schedule.
func (t *EventType) ReportInterval() time.Duration { return t.reportsEvery }

var codeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

var errTooLarge = fmt.Errorf("larger than %d bytes", MaxBytes)

// Load reads and validates the catalog at path, with the year files of
// its calendar in the calendar directory beside it (CalendarDir).
func Load(path string) (*Catalog, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	years, err := yearsOf(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: calendar: %w", err)
	}
	c, err := parse(b, years)
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates a catalog document, reporting every problem.
func Parse(b []byte) (*Catalog, error) { return parse(b, nil) }

func parse(b []byte, years []Year) (*Catalog, error) {
	var c Catalog
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if len(years) > 0 {
		if c.Calendar == nil {
			def := defaultCalendar
			c.Calendar = &def
		}
		c.Calendar.addYears(years)
	}
	if err := c.index(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalog) index() error {
	var errs []error
	c.districts = make(map[string]*District)
	c.departments = make(map[string]*Department)
	c.types = make(map[string]*EventType)
	for i := range c.Districts {
		d := &c.Districts[i]
		if !codeRE.MatchString(d.Code) {
			errs = append(errs, fmt.Errorf("district %d: code %q: want lower-case letters, digits, - and _", i, d.Code))
		}
		if _, dup := c.districts[d.Code]; dup {
			errs = append(errs, fmt.Errorf("district %q listed twice", d.Code))
		}
		c.districts[d.Code] = d
	}
	for i := range c.Departments {
		d := &c.Departments[i]
		if !codeRE.MatchString(d.Code) {
			errs = append(errs, fmt.Errorf("department %d: code %q: want lower-case letters, digits, - and _", i, d.Code))
		}
		if _, dup := c.departments[d.Code]; dup {
			errs = append(errs, fmt.Errorf("department %q listed twice", d.Code))
		}
		c.departments[d.Code] = d
	}
	for i := range c.EventTypes {
		t := &c.EventTypes[i]
		if !codeRE.MatchString(t.Code) {
			errs = append(errs, fmt.Errorf("event type %d: code %q: want lower-case letters, digits, - and _", i, t.Code))
		}
		if _, dup := c.types[t.Code]; dup {
			errs = append(errs, fmt.Errorf("event type %q listed twice", t.Code))
		}
		if _, ok := c.departments[t.Owner]; !ok {
			errs = append(errs, fmt.Errorf("event type %q: owner %q is not a department of the catalog", t.Code, t.Owner))
		}
		if t.ReportsEvery != "" {
			d, err := time.ParseDuration(t.ReportsEvery)
			if err != nil || d < MinReportsEvery || d > MaxReportsEvery {
				errs = append(errs, fmt.Errorf("event type %q: reports_every %q: want a duration from %v to %v, such as 10m", t.Code, t.ReportsEvery, MinReportsEvery, MaxReportsEvery))
			}
			t.reportsEvery = d
		}
		for name, typ := range t.Attrs {
			if !codeRE.MatchString(name) {
				errs = append(errs, fmt.Errorf("event type %q: attribute name %q: want lower-case letters, digits, - and _", t.Code, name))
			}
			if !slices.Contains([]AttrType{AttrNumber, AttrString, AttrBool}, typ) {
				errs = append(errs, fmt.Errorf("event type %q: attribute %q: type %q: want number, string or bool", t.Code, name, typ))
			}
		}
		c.types[t.Code] = t
	}
	errs = append(errs, c.indexReports()...)
	errs = append(errs, c.indexAreas()...)
	errs = append(errs, c.indexClasses()...)
	if len(c.Districts) == 0 {
		errs = append(errs, errors.New("no districts"))
	}
	if len(c.EventTypes) == 0 {
		errs = append(errs, errors.New("no event types"))
	}
	return errors.Join(errs...)
}

// District returns the district with the given code.
func (c *Catalog) District(code string) (*District, bool) {
	d, ok := c.districts[code]
	return d, ok
}

// Department returns the department with the given code.
func (c *Catalog) Department(code string) (*Department, bool) {
	d, ok := c.departments[code]
	return d, ok
}

// HasDistrict reports whether the catalog has a district with the given code.
func (c *Catalog) HasDistrict(code string) bool { _, ok := c.districts[code]; return ok }

// HasDepartment reports whether the catalog has a department with the given code.
func (c *Catalog) HasDepartment(code string) bool { _, ok := c.departments[code]; return ok }

// EventType returns the event type with the given code.
func (c *Catalog) EventType(code string) (*EventType, bool) {
	t, ok := c.types[code]
	return t, ok
}

// DistrictCodes returns the codes of every district, in catalog order.
func (c *Catalog) DistrictCodes() []string {
	out := make([]string, len(c.Districts))
	for i, d := range c.Districts {
		out[i] = d.Code
	}
	return out
}
