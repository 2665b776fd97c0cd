package rulepack

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// cityCatalog is the city's own catalog, whose calendar knows the holidays
// and make-up working days of 2026.
func cityCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const timePack = `pack: hours
owner: water-affairs
rules:
  - {id: night, when: 'local_hour() >= 22 || local_hour() < 6', severity: minor}
  - {id: at-work, when: 'working_time()', severity: minor}
  - {id: day-shift, when: 'true', severity: minor, active: working_hours}
  - {id: off-shift, when: 'true', severity: minor, active: off_hours}
`

// TestTimeFunctions checks local_hour, working_time and active on the
// city's calendar (Asia/Shanghai, 09:00–12:00 and 13:30–17:30 on working
// days), for events stamped in UTC as intake stamps them.
func TestTimeFunctions(t *testing.T) {
	p, err := Parse("hours.yaml", []byte(timePack))
	if err != nil {
		t.Fatal(err)
	}
	if err := Compile(p, cityCatalog(t)); err != nil {
		t.Fatal(err)
	}
	night, atWork, dayShift, offShift := p.Rules[0], p.Rules[1], p.Rules[2], p.Rules[3]
	hour, err := expr.Compile("local_hour()", exprOptions(night.helpers, Env{})...)
	if err != nil {
		t.Fatal(err)
	}
	cst := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		name    string
		at      time.Time
		hour    int
		working bool
	}{
		{"a Wednesday morning", time.Date(2026, 7, 1, 10, 0, 0, 0, cst), 10, true},
		{"the first minute of work", time.Date(2026, 7, 1, 9, 0, 0, 0, cst), 9, true},
		{"lunch", time.Date(2026, 7, 1, 12, 30, 0, 0, cst), 12, false},
		{"the end of the day", time.Date(2026, 7, 1, 17, 30, 0, 0, cst), 17, false},
		{"a working day's night", time.Date(2026, 7, 1, 22, 0, 0, 0, cst), 22, false},
		{"past midnight, still the day before in UTC", time.Date(2026, 6, 30, 16, 30, 0, 0, time.UTC), 0, false},
		{"a Saturday morning", time.Date(2026, 7, 4, 10, 0, 0, 0, cst), 10, false},
		{"National Day, a Thursday", time.Date(2026, 10, 1, 10, 0, 0, 0, cst), 10, false},
		{"a make-up working Saturday", time.Date(2026, 10, 10, 10, 0, 0, 0, cst), 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &cityhubv1.Event{Type: "noise_complaint", OccurredAt: timestamppb.New(tc.at.UTC())}
			var env Env
			env.Reset(ev)
			got, err := expr.Run(hour, &env)
			if err != nil || got != tc.hour {
				t.Errorf("local_hour() = %v, %v; want %d", got, err, tc.hour)
			}
			isNight := tc.hour >= 22 || tc.hour < 6
			for _, c := range []struct {
				r    *Rule
				want bool
			}{{night, isNight}, {atWork, tc.working}} {
				if got, err := expr.Run(c.r.Program, &env); err != nil || got != c.want {
					t.Errorf("%s: %s = %v, %v; want %v", c.r.ID, c.r.When, got, err, c.want)
				}
			}
			if got := dayShift.Sees(ev); got != tc.working {
				t.Errorf("active: working_hours sees the event: %v, want %v", got, tc.working)
			}
			if got := offShift.Sees(ev); got == tc.working {
				t.Errorf("active: off_hours sees the event: %v, want %v", got, !tc.working)
			}
			if !night.Sees(ev) {
				t.Error("a rule without active does not see the event")
			}
		})
	}
	ev := &cityhubv1.Event{OccurredAt: timestamppb.New(time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC))}
	if n := testing.AllocsPerRun(100, func() { dayShift.Sees(ev) }); n != 0 {
		t.Errorf("Sees: %v allocations, want 0", n)
	}
	// The hour explains a match.
	var ops []string
	for _, o := range night.Operands {
		ops = append(ops, fmt.Sprintf("%s leaf=%v", o.Source, o.Leaf))
	}
	if want := []string{"local_hour() leaf=false", "local_hour() >= 22 leaf=true", "local_hour() < 6 leaf=true"}; !slices.Equal(ops, want) {
		t.Errorf("operands = %v, want %v", ops, want)
	}
}

// TestTimeFunctionsNeedACatalog checks that, without a catalog, what reads
// its calendar is refused where it is written rather than guessed.
func TestTimeFunctionsNeedACatalog(t *testing.T) {
	p, err := Parse("hours.yaml", []byte(timePack))
	if err != nil {
		t.Fatal(err)
	}
	err = Compile(p, nil)
	want := []string{
		"hours.yaml:4:24: rule night: when: local_hour: no catalog to take the working calendar from",
		"hours.yaml:4:46: rule night: when: local_hour: no catalog to take the working calendar from",
		"hours.yaml:5:26: rule at-work: when: working_time: no catalog to take the working calendar from",
		"hours.yaml:6:60: rule day-shift: active: no catalog to take the working calendar from",
		"hours.yaml:7:60: rule off-shift: active: no catalog to take the working calendar from",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Compile without a catalog = %v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
