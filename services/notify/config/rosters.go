package config

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Roster is who is on duty (值班) for a department: its people, the head
// who is paged last, the rotations that take turns, and overrides.
type Roster struct {
	Department string     `yaml:"department"`
	People     []Person   `yaml:"people"`
	Head       string     `yaml:"head"`
	Rotations  []Rotation `yaml:"rotations"`
	Overrides  []Override `yaml:"overrides"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// Person is someone a notification may reach, and on which channels.
type Person struct {
	ID    string `yaml:"id"`
	Name  string `yaml:"name"`
	Phone string `yaml:"phone"`
	Email string `yaml:"email"`
	// WeCom, DingTalk and Feishu are the person's ids (or the phone
	// number a robot mentions) on those platforms.
	WeCom    string `yaml:"wecom"`
	DingTalk string `yaml:"dingtalk"`
	Feishu   string `yaml:"feishu"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// Rotation hands duty from one person to the next every Shift, from
// Start, in Order, over and over. Hours, when set, is the part of each day
// the rotation covers ("08:30-20:30", or "20:30-08:30" across midnight, in
// the catalog calendar's zone); rotations of one roster together must
// cover every hour of the day.
type Rotation struct {
	Name  string        `yaml:"name"`
	Start time.Time     `yaml:"start"`
	Shift time.Duration `yaml:"shift"`
	Order []string      `yaml:"order"`
	Hours string        `yaml:"hours"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`

	// from and to are Hours as minutes of the day; to < from wraps
	// midnight, and from == to == 0 is the whole day.
	from, to int
}

// Override puts Person on duty from From until Until, in place of whoever
// the rotations name (a swap, a replacement during leave).
type Override struct {
	Person string    `yaml:"person"`
	From   time.Time `yaml:"from"`
	Until  time.Time `yaml:"until"`
	Reason string    `yaml:"reason"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

var (
	phoneRE = regexp.MustCompile(`^\+?[0-9][0-9 -]{4,19}$`)
	hoursRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])$`)
)

const minutesPerDay = 24 * 60

func (v *validator) checkRosters() {
	v.rosters = map[string]*Roster{}
	if len(v.cfg.Rosters) > MaxRosters {
		v.errorf(v.cfg.At["rosters"], "rosters: %d, at most %d", len(v.cfg.Rosters), MaxRosters)
		return
	}
	for i := range v.cfg.Rosters {
		r := &v.cfg.Rosters[i]
		what := fmt.Sprintf("roster of %s", r.Department)
		switch {
		case r.Department == "":
			v.errorf(r.At, "rosters[%d]: department: required", i)
			continue
		case !v.cat.HasDepartment(r.Department):
			v.errorf(r.Where["department"], "rosters[%d]: department %q is not in the catalog", i, clip(r.Department))
			continue
		case v.rosters[r.Department] != nil:
			v.errorf(r.Where["department"], "%s: given twice", what)
			continue
		}
		v.rosters[r.Department] = r
		v.roster(r, what)
	}
}

func (v *validator) roster(r *Roster, what string) {
	people := map[string]bool{}
	if len(r.People) == 0 || len(r.People) > MaxPeople {
		v.errorf(r.At, "%s: people: want 1 to %d", what, MaxPeople)
	}
	for i := range r.People {
		p := &r.People[i]
		switch {
		case !nameRE.MatchString(p.ID):
			v.errorf(p.At, "%s: people[%d]: id %q: want lower-case letters, digits, - and _", what, i, clip(p.ID))
			continue
		case people[p.ID]:
			v.errorf(p.Where["id"], "%s: person %s given twice", what, p.ID)
		}
		people[p.ID] = true
		if p.Name == "" {
			v.errorf(p.At, "%s: person %s: name: required", what, p.ID)
		}
		if p.Phone != "" && !phoneRE.MatchString(p.Phone) {
			v.errorf(p.Where["phone"], "%s: person %s: phone %q: want digits, optionally with + and spaces", what, p.ID, clip(p.Phone))
		}
		if p.Email != "" {
			if _, err := mail.ParseAddress(p.Email); err != nil {
				v.errorf(p.Where["email"], "%s: person %s: email %q: not an address", what, p.ID, clip(p.Email))
			}
		}
		if p.Phone == "" && p.Email == "" && p.WeCom == "" && p.DingTalk == "" && p.Feishu == "" {
			v.errorf(p.At, "%s: person %s: no way to reach them: give a phone, an email or a chat id", what, p.ID)
		}
	}
	person := func(id string, at yamlfile.Pos, field string) {
		if id != "" && !people[id] {
			v.errorf(at, "%s: %s %q is not among its people", what, field, clip(id))
		}
	}
	if r.Head == "" {
		v.errorf(r.At, "%s: head: required (the last step of a paging ladder)", what)
	}
	person(r.Head, r.Where["head"], "head")
	if len(r.Rotations) == 0 {
		v.errorf(r.At, "%s: rotations: give at least one, or nobody is ever on duty", what)
	}
	var covered [minutesPerDay]bool
	for i := range r.Rotations {
		rot := &r.Rotations[i]
		rwhat := fmt.Sprintf("%s: rotations[%d]", what, i)
		if rot.Start.IsZero() {
			v.errorf(rot.At, "%s: start: required, an RFC 3339 time", rwhat)
		}
		if rot.Shift < time.Minute || rot.Shift > MaxShift {
			v.errorf(rot.Where["shift"], "%s: shift: want a duration from 1m to %s", rwhat, MaxShift)
		}
		if len(rot.Order) == 0 {
			v.errorf(rot.At, "%s: order: name the people who take turns", rwhat)
		}
		for _, id := range rot.Order {
			person(id, rot.Where["order"], "order:")
		}
		if !v.hours(rot, rwhat) {
			continue
		}
		for m := range minutesPerDay {
			if rot.Covers(m) {
				covered[m] = true
			}
		}
	}
	if len(r.Rotations) > 0 {
		if gap := firstGap(covered[:]); gap != "" {
			v.errorf(r.Where["rotations"], "%s: nobody is on duty %s every day: the rotations' hours leave a gap", what, gap)
		}
	}
	for i := range r.Overrides {
		o := &r.Overrides[i]
		person(o.Person, o.Where["person"], "override: person")
		if o.Person == "" {
			v.errorf(o.At, "%s: overrides[%d]: person: required", what, i)
		}
		if o.From.IsZero() || o.Until.IsZero() || !o.Until.After(o.From) {
			v.errorf(o.At, "%s: overrides[%d]: want from and until, until after from", what, i)
		}
	}
}

// hours parses rot.Hours into from and to.
func (v *validator) hours(rot *Rotation, what string) bool {
	if rot.Hours == "" {
		return true
	}
	m := hoursRE.FindStringSubmatch(rot.Hours)
	if m == nil {
		v.errorf(rot.Where["hours"], "%s: hours %q: want HH:MM-HH:MM", what, clip(rot.Hours))
		return false
	}
	rot.from = atoi(m[1])*60 + atoi(m[2])
	rot.to = atoi(m[3])*60 + atoi(m[4])
	if rot.to > minutesPerDay || rot.from == rot.to {
		v.errorf(rot.Where["hours"], "%s: hours %q: an empty or impossible span", what, rot.Hours)
		return false
	}
	if rot.to == minutesPerDay {
		rot.to = 0
	}
	return true
}

// Covers reports whether the rotation covers minute m of the day (0 is
// midnight).
func (r *Rotation) Covers(m int) bool {
	switch {
	case r.from == r.to:
		return true
	case r.from < r.to:
		return m >= r.from && m < r.to
	}
	return m >= r.from || m < r.to
}

// firstGap describes the first span of the day no rotation covers — one
// across midnight told as such — or "" when every minute is covered.
func firstGap(covered []bool) string {
	n := len(covered)
	for m := range covered {
		// A gap starts at an uncovered minute whose minute before (the
		// day wrapping round) is covered; a day covered nowhere starts at 0.
		if covered[m] || (covered[(m+n-1)%n] == false && slices.Contains(covered, true)) {
			continue
		}
		end := m
		for i := 0; i < n && !covered[end%n]; i++ {
			end++
		}
		return fmt.Sprintf("from %s to %s", clock(m), clock(end%n))
	}
	return ""
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

func atoi(s string) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		n = n*10 + int(c-'0')
	}
	return n
}
