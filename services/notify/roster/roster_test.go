package roster

import (
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

var cst = time.FixedZone("CST", 8*3600)

func load(t *testing.T, doc string) *config.Config {
	t.Helper()
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("t.yaml", []byte(doc), cat)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const water = `
receivers: [{name: inbox, inbox: {}}]
routes: {receivers: [inbox]}
rosters:
  - department: water-affairs
    people:
      - {id: zhao, name: 赵敏, phone: "13900000201"}
      - {id: sun, name: 孙浩, phone: "13900000202"}
      - {id: zhou, name: 周磊, phone: "13900000203"}
      - {id: wu, name: 吴芳, phone: "13900000200"}
    head: wu
    rotations:
      - {name: day, start: 2026-01-05T08:30:00+08:00, shift: 24h, order: [zhao, sun], hours: "08:30-20:30"}
      - {name: night, start: 2026-01-05T20:30:00+08:00, shift: 24h, order: [zhou, zhao, sun], hours: "20:30-08:30"}
    overrides:
      - {person: wu, from: 2026-01-07T08:30:00+08:00, until: 2026-01-08T08:30:00+08:00, reason: 防汛值守}
`

func TestOnDutyAndNext(t *testing.T) {
	ro := New(&load(t, water).Rosters[0], cst)
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 1, day, hour, minute, 0, 0, cst) }
	for _, tc := range []struct {
		name      string
		t         time.Time
		onDuty    string
		nextAfter string
		next      string
	}{
		{"before any rotation starts: the head", at(5, 8, 0), "wu", "wu", "wu"},
		{"first day shift", at(5, 9, 0), "zhao", "zhao", "sun"},
		{"first night shift", at(5, 21, 0), "zhou", "zhou", "zhao"},
		{"the night runs past midnight", at(6, 3, 0), "zhou", "zhou", "zhao"},
		{"second day shift", at(6, 8, 30), "sun", "sun", "zhao"},
		{"second night shift", at(6, 20, 30), "zhao", "zhao", "sun"},
		{"an override, then whoever's turn it is", at(7, 12, 0), "wu", "wu", "zhao"},
		{"the fifth day, the order wraps", at(9, 10, 0), "zhao", "zhao", "sun"},
		{"after someone not in this rotation, whoever's turn it is", at(5, 21, 0), "zhou", "wu", "zhou"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ro.OnDuty(tc.t); got.ID != tc.onDuty {
				t.Errorf("OnDuty = %s, want %s", got.ID, tc.onDuty)
			}
			if got := ro.Next(tc.nextAfter, tc.t); got.ID != tc.next {
				t.Errorf("Next(%s) = %s, want %s", tc.nextAfter, got.ID, tc.next)
			}
		})
	}
}

func TestARotationOfOneHandsOnToTheHead(t *testing.T) {
	cfg := load(t, `
receivers: [{name: inbox, inbox: {}}]
routes: {receivers: [inbox]}
rosters:
  - department: fire
    people: [{id: he, name: 何军, phone: "13900000301"}, {id: ma, name: 马丽, phone: "13900000300"}]
    head: ma
    rotations: [{start: 2026-01-05T08:00:00+08:00, shift: 24h, order: [he]}]
`)
	ro := New(&cfg.Rosters[0], cst)
	now := time.Date(2026, 3, 1, 3, 0, 0, 0, cst)
	if ro.OnDuty(now).ID != "he" || ro.Next("he", now).ID != "ma" || ro.Head().ID != "ma" {
		t.Errorf("on duty %s, next %s", ro.OnDuty(now).ID, ro.Next("he", now).ID)
	}
}
