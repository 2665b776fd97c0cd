package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var cst = time.FixedZone("CST", 8*3600)

// holidays is the calendar of the decisions: work 09:00–17:00 on weekdays,
// 2026-10-01 a holiday.
type holidays struct{}

func (holidays) IsWorking(t time.Time) bool {
	t = t.In(cst)
	return !(holidays{}).IsRestDay(t) && t.Hour() >= 9 && t.Hour() < 17
}
func (holidays) IsRestDay(t time.Time) bool {
	t = t.In(cst)
	return t.Weekday() == time.Saturday || t.Weekday() == time.Sunday || (holidays{}).IsHoliday(t)
}
func (holidays) IsHoliday(t time.Time) bool {
	y, m, d := t.In(cst).Date()
	return y == 2026 && m == time.October && d == 1
}

func shippedDecider(t *testing.T) *Decider {
	t.Helper()
	cat, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("../../rules/notify.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	link := func(caseID, dept, person, _ string, _ time.Time) string {
		return "https://hub.example/ack/" + caseID + "/" + dept + "/" + person
	}
	return NewDecider(cfg, cat, holidays{}, cst, link, "https://hub.example")
}

// gasLeak is a gas leak case opened and dispatched to the gas company,
// with the fire brigade assisting, at 03:00 on a holiday.
func gasLeak(t *testing.T) (*cityhubv1.Case, *cityhubv1.AuditEntry, time.Time) {
	t.Helper()
	at := time.Date(2026, 10, 1, 3, 0, 0, 0, cst)
	c := &cityhubv1.Case{Id: "xuhui-01k0gas", District: "xuhui", Title: "燃气泄漏 天平路", EventType: "gas_leak", Severity: cityhubv1.Severity_SEVERITY_EXTREME}
	spec := &cityhubv1.DispatchSpec{Lead: "gas", Assist: []string{"fire"}, Sla: &cityhubv1.Sla{Accept: durationpb.New(10 * time.Minute), Handle: durationpb.New(2 * time.Hour)}}
	entry, err := lifecycle.New(c, spec, lifecycle.Actor{Subject: "rule:gas/leak", Role: lifecycle.RoleSystem}, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	entry.Version = 1
	return c, entry, at
}

type sent struct {
	receiver, person string
	after            time.Duration
	stop             bool
}

func summary(ns []*cityhubv1.Notification, from time.Time) []sent {
	var out []sent
	for _, n := range ns {
		var m message.Message
		json.Unmarshal(n.GetMessage(), &m)
		s := sent{receiver: n.GetReceiver(), after: n.GetDue().AsTime().Sub(from), stop: n.GetStopOnAccept()}
		if m.Person != nil {
			s.person = m.Person.ID
		}
		out = append(out, s)
	}
	return out
}

func TestGasLeakAtThreeOnAHoliday(t *testing.T) {
	d := shippedDecider(t)
	c, entry, at := gasLeak(t)
	dec := d.Case(&cityhubv1.CaseChange{Case: c, Change: entry})
	got := summary(dec.Notifications, at)
	// On 2026-10-01 the gas rotation (from 2026-01-05 08:30, 24h shifts,
	// zhang-wei, li-na, wang-qiang) is at turn 268 % 3 = 1: li-na, who is
	// on duty until 08:30.
	for _, want := range []sent{
		{"gas-system", "", 30 * time.Second, false},
		{"gas-wecom", "", 30 * time.Second, false},
		{"sms", "li-na", 0, true},
		{"gas-wecom", "li-na", 0, true},
		{"sms", "wang-qiang", 5 * time.Minute, true},
		{"sms", "chen-jie", 8 * time.Minute, true},
		{"mail", "chen-jie", 8 * time.Minute, true},
		{"gas-system", "", 2 * time.Hour, true}, // repeated while nobody accepts
		{"sms", "he-jun", 0, true},              // the fire brigade's person on duty
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %+v in\n%v", want, got)
		}
	}
	// The repeats of what chases the gas company are one notification each.
	for _, n := range dec.Notifications {
		if n.GetRepeatEvery() == nil {
			continue
		}
		if n.GetRepeatEvery().AsDuration() != 2*time.Hour || n.GetRepeats() != MaxRepeats-1 || !n.GetStopOnAccept() ||
			n.GetDue().AsTime().Sub(at) != 2*time.Hour {
			t.Errorf("repeats of %s: every %v, %d more, due %v after", n.GetReceiver(), n.GetRepeatEvery().AsDuration(), n.GetRepeats(), n.GetDue().AsTime().Sub(at))
		}
	}
	for _, s := range got {
		if s.after > 2*time.Hour {
			t.Errorf("a repeat decided up front: %+v", s)
		}
	}
	ids := map[string]bool{}
	for _, n := range dec.Notifications {
		if n.GetVersion() != entry.GetVersion() {
			t.Errorf("%s carries version %d, not its change's %d", n.GetId(), n.GetVersion(), entry.GetVersion())
		}
		if ids[n.GetId()] {
			t.Errorf("id %s twice", n.GetId())
		}
		ids[n.GetId()] = true
		if n.GetReceiver() == "sms" && n.GetDepartment() == "gas" {
			var m message.Message
			json.Unmarshal(n.GetMessage(), &m)
			if !strings.HasPrefix(m.AckURL, "https://hub.example/ack/xuhui-01k0gas/gas/") || m.Department.Name != "燃气公司" || m.Case.District.Name != "徐汇区" {
				t.Errorf("page message %+v", m)
			}
		}
	}
	// The same change decided again is the same notifications.
	again := d.Case(&cityhubv1.CaseChange{Case: c, Change: entry})
	if len(again.Notifications) != len(dec.Notifications) {
		t.Fatalf("decided %d, then %d", len(dec.Notifications), len(again.Notifications))
	}
	for i := range again.Notifications {
		if again.Notifications[i].GetId() != dec.Notifications[i].GetId() {
			t.Errorf("notification %d has a new id", i)
		}
	}
}

func TestAcceptCancelsAndClosingCancelsEveryPart(t *testing.T) {
	d := shippedDecider(t)
	c, _, at := gasLeak(t)
	gas := lifecycle.Actor{Subject: "li-na", Role: auth.RoleDepartment, Dept: "gas"}
	e, err := lifecycle.Apply(c, lifecycle.Request{Action: lifecycle.Accept}, gas, at.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e.Version = 2
	dec := d.Case(&cityhubv1.CaseChange{Case: c, Change: e})
	// The accept at version 2 cancels what changes before it decided.
	if !slices.Equal(dec.Cancels, []Cancel{{"xuhui-01k0gas", "gas", 2}}) {
		t.Errorf("cancels %v", dec.Cancels)
	}
	e, err = lifecycle.Apply(c, lifecycle.Request{Action: lifecycle.Cancel, Note: "false alarm"}, lifecycle.Actor{Subject: "d", Role: auth.RoleCommander}, at.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e.Version = 3
	dec = d.Case(&cityhubv1.CaseChange{Case: c, Change: e})
	if fmt.Sprint(dec.Cancels) != "[{xuhui-01k0gas gas 3} {xuhui-01k0gas fire 3}]" {
		t.Errorf("cancels %v", dec.Cancels)
	}
}

func TestAlerts(t *testing.T) {
	d := shippedDecider(t)
	at := time.Date(2026, 7, 1, 10, 0, 0, 0, cst)
	a := &cityhubv1.Alert{Id: "a1", Rule: "gas/leak", Version: 1, State: cityhubv1.AlertState_ALERT_STATE_FIRING, Severity: cityhubv1.Severity_SEVERITY_EXTREME, District: "xuhui"}
	a.UpdatedAt = timestamppb.New(at)
	got := summary(d.Alert(a).Notifications, at)
	if len(got) != 2 || got[0].receiver != "city-centre-dingtalk" || got[1].receiver != "emergency-feishu" {
		t.Errorf("firing: %v", got)
	}
	a.SilencedBy = []string{"maintenance"}
	if n := d.Alert(a).Notifications; len(n) != 0 {
		t.Errorf("a silenced alert told %d", len(n))
	}
}
