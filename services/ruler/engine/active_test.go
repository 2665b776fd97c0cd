package engine

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

const activePack = `
pack: shifts
owner: water-affairs
rules:
  - id: day
    when: event.type == "waterlogging"
    severity: minor
    group_by: [district]
    clear_when: event.type == "waterlogging_cleared"
    active: working_hours
  - id: night
    when: event.type == "waterlogging"
    severity: minor
    group_by: [district]
    clear_when: event.type == "waterlogging_cleared"
    active: off_hours
  - id: gauge
    when: event.type == "rainfall"
    severity: minor
    group_by: [district]
    absent: {for: 30m}
    active: working_hours
  - id: always
    when: event.type == "waterlogging" && local_hour() >= 0
    severity: minor
`

// TestActiveRulesSeeOnlyTheirTime checks that a rule with active is blind
// to the events of the other part of time: they neither fire it, nor clear
// it, nor count as a sign of life.
func TestActiveRulesSeeOnlyTheirTime(t *testing.T) {
	p, err := rulepack.Parse("shifts.yaml", []byte(activePack))
	if err != nil {
		t.Fatal(err)
	}
	if err := rulepack.Compile(p, loadCatalog(t)); err != nil {
		t.Fatal(err)
	}
	e, err := New([]*rulepack.Pack{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := e.NewWorker()
	cst := time.FixedZone("CST", 8*3600)
	working := time.Date(2026, 7, 1, 10, 0, 0, 0, cst)  // a Wednesday morning
	evening := time.Date(2026, 7, 1, 22, 0, 0, 0, cst)  // the same day's night
	holiday := time.Date(2026, 10, 1, 10, 0, 0, 0, cst) // National Day
	makeUp := time.Date(2026, 10, 10, 10, 0, 0, 0, cst) // a Saturday worked
	for _, tc := range []struct {
		name string
		typ  string
		at   time.Time
		want []string // kind rule, in Eval's order
	}{
		{"working time fires the day rule", "waterlogging", working, []string{"fire day", "fire always"}},
		{"the evening fires the night rule", "waterlogging", evening, []string{"fire night", "fire always"}},
		{"a holiday morning is off hours", "waterlogging", holiday, []string{"fire night", "fire always"}},
		{"a make-up Saturday is working time", "waterlogging", makeUp, []string{"fire day", "fire always"}},
		{"a clear in working time clears the day rule only", "waterlogging_cleared", working, []string{"clear day"}},
		{"a clear at night clears the night rule only", "waterlogging_cleared", evening, []string{"clear night"}},
		{"a sign of life in working time", "rainfall", working, []string{"signal gauge"}},
		{"no sign of life at night", "rainfall", evening, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tc.typ, "xuhui", "tianping", nil)
			ev.OccurredAt = timestamppb.New(tc.at)
			var got []string
			for _, r := range w.Eval(ev, nil) {
				got = append(got, r.Kind.String()+" "+r.Rule.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Eval at %s = %q, want %q", tc.at.Format(time.DateTime), got, tc.want)
			}
		})
	}
	// The fast path gives expr's verdicts on the time functions.
	var events []*cityhubv1.Event
	for _, at := range []time.Time{working, evening, holiday, makeUp} {
		for _, typ := range []string{"waterlogging", "waterlogging_cleared", "rainfall"} {
			ev := event(typ, "xuhui", "", nil)
			ev.OccurredAt = timestamppb.New(at)
			events = append(events, ev)
		}
	}
	checkSame(t, e, events)

	// Deciding that an active rule does not see an event allocates nothing.
	ev := event("rainfall", "xuhui", "", nil)
	ev.OccurredAt = timestamppb.New(evening)
	out := make([]Result, 0, 4)
	if n := testing.AllocsPerRun(200, func() { out = w.Eval(ev, out[:0]) }); n != 0 {
		t.Errorf("Eval of an event outside the rule's time: %v allocations, want 0", n)
	}
}
