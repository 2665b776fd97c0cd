package alertstate

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// TestScriptsUseTheNamedFields holds the scripts to the tables of
// protocol.go and record.go: each reads only the arguments named there for
// its ops, every named argument is read, and every field of a reply is
// one the Go side decodes.
func TestScriptsUseTheNamedFields(t *testing.T) {
	used := func(re, src string) []string {
		var names []string
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(src, -1) {
			if !slices.Contains(names, m[1]) {
				names = append(names, m[1])
			}
		}
		slices.Sort(names)
		return names
	}
	named := func(ops string) []string {
		var names []string
		for _, a := range stepArgs {
			if strings.ContainsAny(a.ops, ops) {
				names = append(names, a.name)
			}
		}
		slices.Sort(names)
		return names
	}
	for _, c := range []struct {
		script, src, ops string
	}{{"apply.lua", applySrc, opFire + opMute}, {"tally.lua", tallySrc, opWindow}} {
		got := slices.DeleteFunc(used(`\bu\.([a-z_]+)`, c.src), func(n string) bool { return n == "op" })
		if want := named(c.ops); !slices.Equal(got, want) {
			t.Errorf("%s reads %v of its updates; protocol.go names %v for ops %q", c.script, got, want, c.ops)
		}
	}
	var header []string
	for _, a := range headerArgs {
		header = append(header, a.name)
	}
	slices.Sort(header)
	if got := used(`\bcall\.([a-z_]+)`, applySrc); !slices.Equal(got, header) {
		t.Errorf("apply.lua reads %v of its call; protocol.go names %v", got, header)
	}
	for _, f := range replyFields {
		if !strings.Contains(applySrc, "reply["+strings.ToUpper(f.name)+"]") {
			t.Errorf("apply.lua never answers %s, which protocol.go decodes", f.name)
		}
	}
	for _, f := range snapshotFields {
		if !strings.Contains(applySrc, "h["+strings.ToUpper(f.name)+"] = ") {
			t.Errorf("apply.lua's snapshots never hold %s, which protocol.go decodes", f.name)
		}
	}
	for _, name := range []string{"ttl", "event_id"} {
		if !strings.Contains(restoreSrc, "'"+name+"'") {
			t.Errorf("restore.lua never reads %q, which Restore sends", name)
		}
	}
}

// TestScriptsReadWhatGoSends sends a call's header and a step of every op,
// every argument set, through the Lua stepsLua makes, and requires each
// argument, read by its name, to be what Go gave it, and the arguments of
// other ops unset.
func TestScriptsReadWhatGoSends(t *testing.T) {
	client := redistest.Start(t).Client
	// KEYS[1] lists the names to read back (a single server takes any key).
	echo := redis.NewScript(stepsLua(true) + `
local out = {call.now, call.max_ids, call.ttl}
for _, u in ipairs(updates) do
  out[#out + 1] = u.op
  for _, name in ipairs(cjson.decode(KEYS[1])) do
    out[#out + 1] = u[name] or 'unset'
  end
end
return out`)
	var names []string
	for _, a := range stepArgs {
		names = append(names, a.name)
	}
	h := header{now: 1751356800000, maxIDs: 50, ttl: 604800000}
	full := step{event: "src/e1", time: 1751356800001, atLeast: 3, within: 60000, distinct: true, value: "alice",
		body: []byte{0, 0xff, ' ', '\n'}, pendingFor: 5, resolveAt: 19, severity: 3, silenced: "works", inhibited: "fp"}
	args := appendHeader(nil, &h)
	want := []string{"1751356800000", "50", "604800000"}
	for _, op := range ops {
		s := full
		s.op = op
		args = appendStep(args, &s)
		want = append(want, op)
		for _, a := range stepArgs {
			if !strings.Contains(a.ops, op) {
				want = append(want, "unset")
				continue
			}
			switch v := a.value(&s).(type) {
			case int64:
				want = append(want, strconv.FormatInt(v, 10))
			case []byte:
				want = append(want, string(v))
			default:
				want = append(want, v.(string))
			}
		}
	}
	keys := []string{`["` + strings.Join(names, `","`) + `"]`}
	got, err := echo.Run(context.Background(), client, keys, args...).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the script read\n %q\nwant\n %q", got, want)
	}
	_, err = echo.Run(context.Background(), client, keys, append(appendHeader(nil, &h), "q")...).Result()
	if err == nil || !strings.Contains(err.Error(), "unknown op q") {
		t.Errorf("an unknown op: %v", err)
	}
}

// TestRepliesSayWhatTheScriptsMean answers, through the Lua replyLua
// makes, with a hash of every field set and with one that does not exist,
// and requires decodeReply to read each field where the script put it by
// name.
func TestRepliesSayWhatTheScriptsMean(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client
	want := record{state: stateFiring, version: 7, eventCount: 9, startsAt: 1, updatedAt: 2, endsAt: 3, resolveAt: 4,
		severity: 3, prevSeverity: 2, severityAt: 5, fireAt: 6, silenced: "works", inhibited: "fp", body: "\x00\xff body"}
	var pairs []any
	for i := range columns {
		pairs = append(pairs, columns[i].name, want.field(&columns[i]))
	}
	if err := client.HSet(ctx, "{t}h", pairs...).Err(); err != nil {
		t.Fatal(err)
	}
	answer := redis.NewScript(replyLua() + `
local s, gone = read_hash(KEYS[1]), read_hash(KEYS[2])
s[BODY_FROM], s[EVENT_IDS] = 2, 'e1 e2'
gone[BODY_FROM], gone[EVENT_IDS] = 0, ''
local reply = {}
reply[WAS], reply[WAS_SEVERITY], reply[CHANGED], reply[REDELIVERED] = 'pending', '2', '1', '0'
reply[#reply + 1] = s
reply[#reply + 1] = gone
return reply`)
	v, err := answer.Run(ctx, client, []string{"{t}h", "{t}nothing"}).Slice()
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeReply(v)
	if err != nil {
		t.Fatal(err)
	}
	if r.was != statePending || r.wasSeverity != 2 || !r.changed || r.redelivered || len(r.snapshots) != 2 {
		t.Fatalf("reply %+v", r)
	}
	if s := r.snapshots[0]; s.rec != want || s.bodyFrom != 2 || !slices.Equal(s.events, []string{"e1", "e2"}) {
		t.Errorf("snapshot %+v\nwant %+v", s, want)
	}
	if s := r.snapshots[1]; s.rec != (record{}) || s.bodyFrom != 0 || s.events != nil {
		t.Errorf("snapshot of no hash %+v", s)
	}
}

// TestReplyLeavesOutTheBodyItWasGiven checks the reply of a batch that
// fires an alert: the Go side holds the body it sent, so the last snapshot
// names the update instead of carrying the body back, while an earlier
// snapshot carries its own.
func TestReplyLeavesOutTheBodyItWasGiven(t *testing.T) {
	ctx := context.Background()
	client := redistest.Start(t).Client
	now := time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)
	fire := func(event string) step {
		u := Update{Op: Fire, Alert: &cityhubv1.Alert{Id: "fp", Rule: "p/r", Title: "积水"}, EventID: event, EventTime: now}
		s, err := applyStep(now, &u, 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h := header{now: now.UnixMilli(), maxIDs: 50, ttl: time.Hour.Milliseconds()}
	args := appendHeader(nil, &h)
	for _, s := range []step{fire("e1"), {op: opClear}, fire("e2")} {
		args = appendStep(args, &s)
	}
	v, err := applyScript.Run(ctx, client, keys("fp"), args...).Slice()
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeReply(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.snapshots) != 3 {
		t.Fatalf("%d snapshots, want firing, resolved and firing again", len(r.snapshots))
	}
	for i, s := range r.snapshots {
		last := i == len(r.snapshots)-1
		if last && (s.bodyFrom != 3 || s.rec.body != "") {
			t.Errorf("last snapshot: body_from %d, %d bytes of body; want update 3 named and no body", s.bodyFrom, len(s.rec.body))
		}
		if !last && (s.bodyFrom != 0 || s.rec.body == "") {
			t.Errorf("snapshot %d: body_from %d, %d bytes of body; want its own body", i, s.bodyFrom, len(s.rec.body))
		}
	}
}
