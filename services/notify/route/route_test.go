package route

import (
	"slices"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// week is a calendar of work from 09:00 to 17:00 on weekdays in UTC+8, with
// 2026-10-01 a holiday.
type week struct{}

var cst = time.FixedZone("CST", 8*3600)

func (week) IsWorking(t time.Time) bool {
	t = t.In(cst)
	return !(week{}).IsRestDay(t) && t.Hour() >= 9 && t.Hour() < 17
}

func (week) IsRestDay(t time.Time) bool {
	t = t.In(cst)
	return t.Weekday() == time.Saturday || t.Weekday() == time.Sunday || (week{}).IsHoliday(t)
}

func (week) IsHoliday(t time.Time) bool {
	y, m, d := t.In(cst).Date()
	return y == 2026 && m == time.October && d == 1
}

func shipped(t *testing.T) *Tree {
	t.Helper()
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("../../../rules/notify.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, week{})
}

func TestShippedRoutes(t *testing.T) {
	tree := shipped(t)
	night := time.Date(2026, 10, 1, 3, 0, 0, 0, cst) // a holiday, 03:00
	workday := time.Date(2026, 7, 1, 10, 0, 0, 0, cst)
	for _, tc := range []struct {
		name string
		c    Change
		at   time.Time
		want []string
	}{
		{"gas leak dispatched at night", Change{Stream: "cases", Kind: "dispatched", Department: "gas", Departments: []string{"gas", "fire"}}, night, []string{"routes.routes[0]"}},
		{"fire assisting", Change{Stream: "cases", Kind: "dispatched", Department: "fire", Departments: []string{"gas", "fire"}}, night, []string{"routes.routes[1]"}},
		{"water at night: paged, and its system", Change{Stream: "cases", Kind: "dispatched", Department: "water-affairs"}, night, []string{"routes.routes[2].routes[0]", "routes.routes[2].routes[2]"}},
		{"water by day: its system only", Change{Stream: "cases", Kind: "dispatched", Department: "water-affairs"}, workday, []string{"routes.routes[2].routes[2]"}},
		{"water overdue: duty room and system", Change{Stream: "cases", Kind: "overdue", Department: "water-affairs"}, workday, []string{"routes.routes[2].routes[1]", "routes.routes[2].routes[2]"}},
		{"escalated to the city centre", Change{Stream: "cases", Kind: "escalated", Department: "city-centre"}, workday, []string{"routes.routes[3]"}},
		{"an extreme alert", Change{Stream: "alerts", Kind: "firing", Severity: "extreme"}, workday, []string{"routes.routes[4]"}},
		{"a minor alert: the root", Change{Stream: "alerts", Kind: "firing", Severity: "minor"}, workday, []string{"routes"}},
		{"a case closed: the root", Change{Stream: "cases", Kind: "closed", Departments: []string{"gas"}}, workday, []string{"routes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, tg := range tree.Route(tc.c, tc.at) {
				got = append(got, tg.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("routes %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTimingInheritsAndDepartmentsMatchCaseWideChanges(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("t.yaml", []byte(`
defaults: {group_wait: 10s, repeat_interval: 1h}
receivers:
  - {name: inbox, inbox: {}}
  - {name: other, inbox: {}}
routes:
  receivers: [inbox]
  routes:
    - match: {department: gas}
      group_wait: 1m
      routes:
        - match: {change: closed}
          receivers: [other]
`), cat)
	if err != nil {
		t.Fatal(err)
	}
	tree := New(cfg, week{})
	got := tree.Route(Change{Stream: "cases", Kind: "closed", Departments: []string{"fire", "gas"}}, time.Now())
	if len(got) != 1 || got[0].Receivers[0] != "other" {
		t.Fatalf("targets %+v", got)
	}
	if tm := got[0].Timing; tm.GroupWait != time.Minute || tm.RepeatInterval != time.Hour || tm.GroupInterval != config.DefaultGroupInterval {
		t.Errorf("timing %+v", tm)
	}
	// A change for the gas company that no child takes stops at the gas
	// route, which has no receivers of its own: it tells the root's.
	if got := tree.Route(Change{Stream: "cases", Kind: "opened", Departments: []string{"gas"}}, time.Now()); len(got) != 1 || got[0].Path != "routes.routes[0]" || got[0].Receivers[0] != "inbox" || got[0].Timing.GroupWait != time.Minute {
		t.Errorf("targets %+v", got)
	}
	if got := tree.Route(Change{Stream: "cases", Kind: "opened", Departments: []string{"fire"}}, time.Now()); len(got) != 1 || got[0].Path != "routes" {
		t.Errorf("targets %+v", got)
	}
}
