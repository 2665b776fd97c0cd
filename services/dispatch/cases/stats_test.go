package cases

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

func at(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

func due(d time.Duration) *cityhubv1.Deadline { return &cityhubv1.Deadline{DueAt: at(d)} }

func entry(action, role, dept string) *cityhubv1.AuditEntry {
	return &cityhubv1.AuditEntry{Action: action, Role: role, Department: dept}
}

const (
	closed     = cityhubv1.CaseStatus_CASE_STATUS_CLOSED
	accepted   = cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED
	dispatched = cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED
)

func TestFactsOf(t *testing.T) {
	water := &cityhubv1.Part{Department: "water", Lead: true}
	gas := &cityhubv1.Part{Department: "gas"}
	dept, disp := string(auth.RoleDepartment), string(auth.RoleDispatcher)
	for _, tc := range []struct {
		name string
		c    *cityhubv1.Case
		hist []*cityhubv1.AuditEntry
		want caseFacts
	}{
		{"parts now", &cityhubv1.Case{Lead: "water", Assist: []string{"gas"}, Parts: []*cityhubv1.Part{water, gas}}, nil,
			caseFacts{depts: map[string]deptFacts{"water": {part: water}, "gas": {part: gas}}}},
		{"returned and dispatched elsewhere", &cityhubv1.Case{Lead: "gas", Parts: []*cityhubv1.Part{gas}},
			[]*cityhubv1.AuditEntry{entry("return", dept, "water"), entry("dispatch", disp, "")},
			caseFacts{depts: map[string]deptFacts{"water": {returned: true}, "gas": {part: gas}}, returned: true}},
		{"a department that acted but holds no part", &cityhubv1.Case{}, []*cityhubv1.AuditEntry{entry("comment", dept, "fire")},
			caseFacts{depts: map[string]deptFacts{"fire": {}}}},
		{"a dispatcher's entry names no receiver", &cityhubv1.Case{}, []*cityhubv1.AuditEntry{entry("comment", disp, "fire")},
			caseFacts{depts: map[string]deptFacts{}}},
		{"a return by the commander for a department", &cityhubv1.Case{}, []*cityhubv1.AuditEntry{entry("return", string(auth.RoleCommander), "water")},
			caseFacts{depts: map[string]deptFacts{"water": {returned: true}}, returned: true}},
		{"rework and escalation in the history", &cityhubv1.Case{}, []*cityhubv1.AuditEntry{entry("verify:fail", disp, ""), entry("escalate", "system", "")},
			caseFacts{depts: map[string]deptFacts{}, reworked: true, escalated: true}},
		{"rework and escalation on the case", &cityhubv1.Case{ReworkCount: 1, EscalationLevel: 2}, nil,
			caseFacts{depts: map[string]deptFacts{}, reworked: true, escalated: true}},
		{"the first part of a department is its part", &cityhubv1.Case{Lead: "water", Parts: []*cityhubv1.Part{water, {Department: "water"}}}, nil,
			caseFacts{depts: map[string]deptFacts{"water": {part: water}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := factsOf(tc.c, tc.hist); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("factsOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	now := 5 * time.Hour
	for _, tc := range []struct {
		name  string
		parts []*cityhubv1.Part
		open  bool
		want  caseSummary
	}{
		{"no parts: nothing handled", nil, true, caseSummary{allOnTime: true}},
		{"the lead signed on time", []*cityhubv1.Part{{Lead: true, AcceptedAt: at(time.Minute), AcceptDeadline: due(10 * time.Minute), HandleDeadline: due(10 * time.Hour)}}, true,
			caseSummary{leadsAccepted: 1, leadsOnTime: 1, allOnTime: true}},
		{"an assist's signature is not the case's", []*cityhubv1.Part{{AcceptedAt: at(time.Minute)}}, true,
			caseSummary{allOnTime: true}},
		{"every part handled, one late", []*cityhubv1.Part{
			{Lead: true, AcceptedAt: at(time.Minute), HandledAt: at(time.Hour), HandleDeadline: due(2 * time.Hour)},
			{AcceptedAt: at(time.Minute), HandledAt: at(3 * time.Hour), HandleDeadline: due(2 * time.Hour)},
		}, true, caseSummary{leadsAccepted: 1, leadsOnTime: 1, allHandled: true, lastHandled: t0.Add(3 * time.Hour)}},
		{"one part unsigned past its accept deadline", []*cityhubv1.Part{{AcceptDeadline: due(10 * time.Minute)}}, true,
			caseSummary{allOnTime: true, anyOverdue: true}},
		{"nothing is overdue on a closed case", []*cityhubv1.Part{{AcceptDeadline: due(10 * time.Minute)}}, false,
			caseSummary{allOnTime: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cityhubv1.Case{Status: accepted, Parts: tc.parts}
			if !tc.open {
				c.Status = closed
			}
			if got := summarize(c, t0.Add(now)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOverdue(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *cityhubv1.Case
		part *cityhubv1.Part
		want bool
	}{
		{"unsigned past its accept deadline", &cityhubv1.Case{Status: dispatched}, &cityhubv1.Part{AcceptDeadline: due(time.Hour)}, true},
		{"unsigned before it", &cityhubv1.Case{Status: dispatched}, &cityhubv1.Part{AcceptDeadline: due(3 * time.Hour)}, false},
		{"the case's deadline stands in", &cityhubv1.Case{Status: dispatched, AcceptDueAt: at(time.Hour)}, &cityhubv1.Part{}, true},
		{"no deadline at all", &cityhubv1.Case{Status: dispatched}, &cityhubv1.Part{}, false},
		{"signed: the handle deadline runs", &cityhubv1.Case{Status: accepted}, &cityhubv1.Part{AcceptedAt: at(0), AcceptDeadline: due(time.Hour), HandleDeadline: due(3 * time.Hour)}, false},
		{"signed and late", &cityhubv1.Case{Status: accepted}, &cityhubv1.Part{AcceptedAt: at(0), HandleDeadline: due(time.Hour)}, true},
		{"suspended", &cityhubv1.Case{Status: accepted}, &cityhubv1.Part{AcceptedAt: at(0), SuspendedAt: at(0), HandleDeadline: due(time.Hour)}, false},
		{"handled", &cityhubv1.Case{Status: accepted}, &cityhubv1.Part{AcceptedAt: at(0), HandledAt: at(3 * time.Hour), HandleDeadline: due(time.Hour)}, false},
		{"closed", &cityhubv1.Case{Status: closed}, &cityhubv1.Part{HandleDeadline: due(time.Hour)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := overdue(tc.c, tc.part, t0.Add(2*time.Hour)); got != tc.want {
				t.Errorf("overdue = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAddCase(t *testing.T) {
	c := &cityhubv1.Case{Status: closed, DispatchedAt: at(0), ClosedAt: at(4 * time.Hour)}
	var got Figures
	got.addCase(c, caseFacts{returned: true, reworked: true}, caseSummary{
		leadsAccepted: 1, leadsOnTime: 1, allHandled: true, allOnTime: true, lastHandled: t0.Add(3 * time.Hour),
	})
	open := &cityhubv1.Case{Status: accepted}
	got.addCase(open, caseFacts{escalated: true}, caseSummary{leadsAccepted: 1, allOnTime: true, anyOverdue: true})
	want := Figures{
		Received: 2, Accepted: 2, AcceptedOnTime: 1, Handled: 1, HandledOnTime: 1, Closed: 1, ClosedOnTime: 1,
		Returned: 1, Reworked: 1, Escalated: 1, OverdueNow: 1,
		handleSum: 3 * time.Hour, handleCount: 1, closeSum: 4 * time.Hour, closeCount: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("total %+v, want %+v", got, want)
	}
	// A closed case whose parts were late, or not all handled, is closed
	// but not on time; one never dispatched adds to no mean.
	var late Figures
	late.addCase(&cityhubv1.Case{Status: closed}, caseFacts{}, caseSummary{allHandled: true})
	late.addCase(&cityhubv1.Case{Status: closed}, caseFacts{}, caseSummary{allOnTime: true})
	if want := (Figures{Received: 2, Handled: 1, Closed: 2}); !reflect.DeepEqual(late, want) {
		t.Errorf("late %+v, want %+v", late, want)
	}
}

func TestAddDepartment(t *testing.T) {
	c := &cityhubv1.Case{Status: closed, DispatchedAt: at(0), ClosedAt: at(4 * time.Hour)}
	onTimePart := &cityhubv1.Part{AcceptedAt: at(5 * time.Minute), AcceptDeadline: due(10 * time.Minute), HandledAt: at(time.Hour), HandleDeadline: due(2 * time.Hour)}
	latePart := &cityhubv1.Part{AcceptedAt: at(15 * time.Minute), AcceptDeadline: due(10 * time.Minute), HandledAt: at(3 * time.Hour), HandleDeadline: due(2 * time.Hour)}
	now := t0.Add(5 * time.Hour)
	for _, tc := range []struct {
		name string
		c    *cityhubv1.Case
		f    caseFacts
		d    deptFacts
		want Figures
	}{
		{"returned, no part now: received and returned only", c, caseFacts{reworked: true, escalated: true}, deptFacts{returned: true},
			Figures{Received: 1, Returned: 1}},
		{"on time throughout", c, caseFacts{}, deptFacts{part: onTimePart},
			Figures{Received: 1, Accepted: 1, AcceptedOnTime: 1, Handled: 1, HandledOnTime: 1, Closed: 1, ClosedOnTime: 1,
				handleSum: time.Hour, handleCount: 1, closeSum: 4 * time.Hour, closeCount: 1}},
		{"late throughout, reworked and escalated", c, caseFacts{reworked: true, escalated: true}, deptFacts{part: latePart},
			Figures{Received: 1, Accepted: 1, Handled: 1, Closed: 1, Reworked: 1, Escalated: 1,
				handleSum: 3 * time.Hour, handleCount: 1, closeSum: 4 * time.Hour, closeCount: 1}},
		{"open and overdue", &cityhubv1.Case{Status: dispatched}, caseFacts{}, deptFacts{part: &cityhubv1.Part{AcceptDeadline: due(time.Hour)}},
			Figures{Received: 1, OverdueNow: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Figures
			got.addDepartment(tc.c, tc.f, tc.d, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("row %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFinish(t *testing.T) {
	f := Figures{handleSum: 3 * time.Hour, handleCount: 2}
	f.finish()
	if f.AvgHandleSeconds == nil || *f.AvgHandleSeconds != 5400 || f.AvgCloseSeconds != nil {
		t.Errorf("means %v %v, want 5400 and none", f.AvgHandleSeconds, f.AvgCloseSeconds)
	}
}

func TestAccumulatorForOneDepartment(t *testing.T) {
	gas := &cityhubv1.Case{Status: dispatched, Lead: "gas", Parts: []*cityhubv1.Part{{Department: "gas", Lead: true}}}
	water := &cityhubv1.Case{Status: dispatched, Lead: "water", Assist: []string{"gas"},
		Parts: []*cityhubv1.Part{{Department: "water", Lead: true}, {Department: "gas"}}}
	returned := &cityhubv1.Case{Status: cityhubv1.CaseStatus_CASE_STATUS_NEW}
	hist := []*cityhubv1.AuditEntry{entry("return", string(auth.RoleDepartment), "gas")}
	a := newStatsAccumulator("gas", t0)
	for _, c := range []struct {
		c *cityhubv1.Case
		h []*cityhubv1.AuditEntry
	}{{gas, nil}, {water, nil}, {returned, hist}, {&cityhubv1.Case{Lead: "fire", Parts: []*cityhubv1.Part{{Department: "fire"}}}, nil}} {
		if err := a.add(c.c, c.h); err != nil {
			t.Fatal(err)
		}
	}
	got := a.result()
	if len(got.Departments) != 1 || got.Departments[0].Department != "gas" {
		t.Fatalf("rows %+v, want gas's only", got.Departments)
	}
	if r := got.Departments[0]; r.Received != 3 || r.Returned != 1 {
		t.Errorf("gas received %d and returned %d, want 3 and 1", r.Received, r.Returned)
	}
	if got.Total.Received != 3 || got.Total.Returned != 1 {
		t.Errorf("total received %d and returned %d, want gas's 3 and 1", got.Total.Received, got.Total.Returned)
	}
}

// TestStatsMatchReference holds the figures, computed as facts and folds,
// to the single function they were computed by before (stats_ref_test.go),
// on a few hundred generated cases and histories, for every case and for
// each department alone.
func TestStatsMatchReference(t *testing.T) {
	depts := []string{"water", "gas", "fire", "traffic"}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0xc17))
			type generated struct {
				c    *cityhubv1.Case
				hist []*cityhubv1.AuditEntry
			}
			var all []generated
			for range 400 {
				c, hist := generateCase(rng, depts)
				all = append(all, generated{c, hist})
			}
			now := t0.Add(5 * time.Hour)
			for _, only := range append([]string{"", "nobody", "parks"}, depts...) {
				got, want := newStatsAccumulator(only, now), newRefAccumulator(only, now)
				for _, g := range all {
					_ = got.add(g.c, g.hist)
					_ = want.add(g.c, g.hist)
				}
				if g, w := got.result(), want.response(); !reflect.DeepEqual(g, w) {
					t.Errorf("department %q:\n got %+v\nwant %+v", only, g, w)
				}
			}
		})
	}
}

// generateCase makes a case whose parts, deadlines and times are drawn at
// random around t0 (lead and assists are the departments of its parts, as
// lifecycle keeps them), with a history of department, dispatcher and
// system entries, some by departments holding no part.
func generateCase(rng *rand.Rand, depts []string) (*cityhubv1.Case, []*cityhubv1.AuditEntry) {
	maybe := func(p float64) bool { return rng.Float64() < p }
	ts := func(p float64) *timestamppb.Timestamp {
		if !maybe(p) {
			return nil
		}
		return at(time.Duration(rng.IntN(6*60)) * time.Minute)
	}
	dl := func(p float64) *cityhubv1.Deadline {
		if !maybe(p) {
			return nil
		}
		return &cityhubv1.Deadline{DueAt: ts(1)}
	}
	statuses := []cityhubv1.CaseStatus{
		cityhubv1.CaseStatus_CASE_STATUS_NEW, dispatched, accepted,
		cityhubv1.CaseStatus_CASE_STATUS_HANDLED, closed, cityhubv1.CaseStatus_CASE_STATUS_CANCELLED,
	}
	c := &cityhubv1.Case{
		Status:          statuses[rng.IntN(len(statuses))],
		DispatchedAt:    ts(0.8),
		ClosedAt:        ts(0.4),
		AcceptDueAt:     ts(0.3),
		HandleDueAt:     ts(0.3),
		ReworkCount:     int32(rng.IntN(3) / 2),
		EscalationLevel: int32(rng.IntN(4) / 2),
	}
	for i, d := range rng.Perm(len(depts))[:rng.IntN(len(depts))] {
		p := &cityhubv1.Part{
			Department:     depts[d],
			Lead:           i == 0,
			AcceptedAt:     ts(0.6),
			HandledAt:      ts(0.4),
			SuspendedAt:    ts(0.1),
			AcceptDeadline: dl(0.7),
			HandleDeadline: dl(0.7),
		}
		if p.Lead {
			c.Lead = p.Department
		} else {
			c.Assist = append(c.Assist, p.Department)
		}
		c.Parts = append(c.Parts, p)
	}
	actions := []string{"create", "dispatch", "accept", "return", "handle", "verify:pass", "verify:fail", "escalate", "comment", "warn"}
	roles := []string{string(auth.RoleDepartment), string(auth.RoleDispatcher), string(auth.RoleCommander), "system"}
	who := append([]string{"", "parks"}, depts...)
	var hist []*cityhubv1.AuditEntry
	for range rng.IntN(7) {
		hist = append(hist, entry(actions[rng.IntN(len(actions))], roles[rng.IntN(len(roles))], who[rng.IntN(len(who))]))
	}
	return c, hist
}
