// Package roster says who is on duty (值班) for a department at a moment,
// from its roster in notify.yaml: an override covering the moment first,
// then the rotation whose hours cover it, whose turn is counted from its
// start in shifts.
package roster

import (
	"slices"
	"time"

	"github.com/cityhub/cityhub/services/notify/config"
)

// Roster answers who is on duty for one department. It is immutable and
// safe for concurrent use.
type Roster struct {
	r   *config.Roster
	loc *time.Location
	by  map[string]*config.Person
}

// New returns the roster r, whose rotations' hours are read in loc (the
// catalog calendar's zone).
func New(r *config.Roster, loc *time.Location) *Roster {
	ro := &Roster{r: r, loc: loc, by: make(map[string]*config.Person, len(r.People))}
	for i := range r.People {
		ro.by[r.People[i].ID] = &r.People[i]
	}
	return ro
}

// Department returns the department of the roster.
func (ro *Roster) Department() string { return ro.r.Department }

// Person returns the person with id.
func (ro *Roster) Person(id string) (*config.Person, bool) {
	p, ok := ro.by[id]
	return p, ok
}

// Head returns the department's head.
func (ro *Roster) Head() *config.Person { return ro.by[ro.r.Head] }

// OnDuty returns the person on duty at t. Outside every rotation (before
// the first one starts) it is the head, who answers for the department
// when nobody else does.
func (ro *Roster) OnDuty(t time.Time) *config.Person {
	// The override that started last wins where overrides overlap.
	var best *config.Override
	for i := range ro.r.Overrides {
		o := &ro.r.Overrides[i]
		if !t.Before(o.From) && t.Before(o.Until) && (best == nil || o.From.After(best.From)) {
			best = o
		}
	}
	if best != nil {
		return ro.by[best.Person]
	}
	if rot, turn, ok := ro.turn(t); ok {
		return ro.by[rot.Order[turn]]
	}
	return ro.Head()
}

// Next returns who comes after the person with id at t: the next one in
// the order of the rotation on duty at t (whoever's turn it is, when id is
// not in that order), never id again; the head when the rotation has
// nobody else.
func (ro *Roster) Next(id string, t time.Time) *config.Person {
	rot, turn, ok := ro.turn(t)
	if !ok {
		return ro.Head()
	}
	// Start after id's place in the order when id is in it; someone not
	// in it (an override, the head) is followed by whoever's turn it is.
	from := slices.Index(rot.Order, id)
	if from < 0 {
		from = turn - 1 + len(rot.Order)
	}
	for i := 1; i <= len(rot.Order); i++ {
		next := rot.Order[(from+i)%len(rot.Order)]
		if next != id {
			return ro.by[next]
		}
	}
	return ro.Head()
}

// turn returns the rotation covering t and the index in its order of the
// person whose turn it is.
func (ro *Roster) turn(t time.Time) (*config.Rotation, int, bool) {
	local := t.In(ro.loc)
	minute := local.Hour()*60 + local.Minute()
	for i := range ro.r.Rotations {
		rot := &ro.r.Rotations[i]
		if t.Before(rot.Start) || len(rot.Order) == 0 || rot.Shift <= 0 || !rot.Covers(minute) {
			continue
		}
		n := int64(t.Sub(rot.Start) / rot.Shift)
		return rot, int(n % int64(len(rot.Order))), true
	}
	return nil, 0, false
}
