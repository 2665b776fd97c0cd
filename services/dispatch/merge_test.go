package dispatch_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// redisState returns every key in Redis but the refusal logs, each with its
// value: cases, histories, request logs, indexes, timers. A refused request
// must leave all of it as it was. Values are read by type rather than with
// DUMP, whose bytes for a hash may change with a mere read (rehashing).
func (h *harness) redisState() map[string]string {
	h.t.Helper()
	ctx := context.Background()
	rdb := h.redis.Client
	keys, err := redistest.Keys(ctx, rdb, "*")
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if strings.Contains(k, ":denied") {
			continue // refusals are recorded there, by design
		}
		var v any
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		default:
			h.t.Fatalf("key %s of type %s", k, typ)
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out[k] = fmt.Sprint(v) // fmt sorts maps
	}
	return out
}

// changedKeys lists the keys whose value differs between two states.
func changedKeys(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if w, ok := before[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// published returns the (case, version) pairs on the cases topic.
func (h *harness) published() map[string]int {
	out := map[string]int{}
	for _, ch := range h.changes() {
		out[fmt.Sprint(ch.GetCase().GetId(), "@", ch.GetCase().GetVersion())]++
	}
	return out
}

// closeCase takes a case opened with lead through the loop to closed.
func closeCase(h *harness, id, lead string) {
	h.t.Helper()
	chief := h.as(auth.RoleCommander, "")
	dept := h.as(auth.RoleDepartment, lead)
	dept.act(id, 200, map[string]any{"action": "accept", "expected_version": 1, "request_id": "close-1"})
	dept.act(id, 200, map[string]any{"action": "handle", "note": "done", "expected_version": 2, "request_id": "close-2"})
	chief.act(id, 200, map[string]any{"action": "verify", "pass": true, "expected_version": 3, "request_id": "close-3"})
}

// TestMergeRefusalsChangeNothing checks every way a merge is refused: no
// version, history, request log, index or timer moves, on either case or
// anywhere else, and nothing is published.
func TestMergeRefusalsChangeNothing(t *testing.T) {
	h := start(t)
	chief := h.as(auth.RoleCommander, "")
	dup := chief.open("xuhui", "call-1", map[string]any{"lead": "water-affairs"})
	chief.act(dup.ID, 200, map[string]any{"action": "comment", "note": "same puddle as huangpu's?", "expected_version": 1, "request_id": "c1"})
	target := chief.open("huangpu", "call-2", map[string]any{"lead": "gas"})
	cancelledTarget := chief.open("huangpu", "call-3", nil)
	chief.act(cancelledTarget.ID, 200, map[string]any{"action": "cancel", "note": "false alarm", "expected_version": 1, "request_id": "x"})
	closedTarget := chief.open("huangpu", "call-4", map[string]any{"lead": "gas"})
	closeCase(h, closedTarget.ID, "gas")
	cancelledDup := chief.open("xuhui", "call-5", map[string]any{"lead": "water-affairs"})
	chief.act(cancelledDup.ID, 200, map[string]any{"action": "cancel", "note": "false alarm", "expected_version": 1, "request_id": "x"})
	closedDup := chief.open("xuhui", "call-6", map[string]any{"lead": "water-affairs"})
	closeCase(h, closedDup.ID, "water-affairs")

	merge := func(into string, version int, rid string) map[string]any {
		return map[string]any{"action": "merge", "into": into, "expected_version": version, "request_id": rid}
	}
	// Replaying the topic is slow: it is read once before the refusals and
	// once after.
	onTopic := len(h.changes())
	for _, tc := range []struct {
		name   string
		by     *client
		dup    string
		body   map[string]any
		status int
	}{
		{"stale version", chief, dup.ID, merge(target.ID, 1, "m1"), 409},
		{"version from the future", chief, dup.ID, merge(target.ID, 7, "m1"), 409},
		{"target not found", chief, dup.ID, merge(casestore.NewID("huangpu", t0), 2, "m1"), 400},
		{"target not found, stale version", chief, dup.ID, merge(casestore.NewID("huangpu", t0), 1, "m1"), 400},
		{"target outside the caller's scope", h.as(auth.RoleDispatcher, "", "xuhui"), dup.ID, merge(target.ID, 2, "m1"), 400},
		{"target outside the caller's scope, stale version", h.as(auth.RoleDispatcher, "", "xuhui"), dup.ID, merge(target.ID, 1, "m1"), 400},
		{"target cancelled", chief, dup.ID, merge(cancelledTarget.ID, 2, "m1"), 409},
		{"target cancelled, stale version", chief, dup.ID, merge(cancelledTarget.ID, 1, "m1"), 409},
		{"target closed", chief, dup.ID, merge(closedTarget.ID, 2, "m1"), 409},
		{"target closed, stale version", chief, dup.ID, merge(closedTarget.ID, 1, "m1"), 409},
		{"into itself", chief, dup.ID, merge(dup.ID, 2, "m1"), 400},
		{"into itself, stale version", chief, dup.ID, merge(dup.ID, 1, "m1"), 400},
		{"a department", h.as(auth.RoleDepartment, "water-affairs"), dup.ID, merge(target.ID, 2, "m1"), 403},
		{"a department, stale version", h.as(auth.RoleDepartment, "water-affairs"), dup.ID, merge(target.ID, 1, "m1"), 403},
		{"a viewer", h.as(auth.RoleViewer, ""), dup.ID, merge(target.ID, 2, "m1"), 403},
		{"duplicate outside the caller's scope", h.as(auth.RoleDispatcher, "", "huangpu"), dup.ID, merge(target.ID, 2, "m1"), 404},
		{"duplicate cancelled", chief, cancelledDup.ID, merge(target.ID, 2, "m1"), 409},
		{"duplicate cancelled, stale version", chief, cancelledDup.ID, merge(target.ID, 1, "m1"), 409},
		{"duplicate closed", chief, closedDup.ID, merge(target.ID, 4, "m1"), 409},
		{"duplicate closed, stale version", chief, closedDup.ID, merge(target.ID, 3, "m1"), 409},
	} {
		before := h.redisState()
		if status, b := tc.by.do("POST", "/v1/cases/"+tc.dup+"/actions", tc.body); status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, status, b, tc.status)
		}
		if changed := changedKeys(before, h.redisState()); len(changed) > 0 {
			t.Errorf("%s: the refused merge changed %q", tc.name, changed)
		}
	}
	if n := len(h.changes()); n != onTopic {
		t.Errorf("the refused merges published %d changes", n-onTopic)
	}

	// A request id that did something else on the duplicate answers with
	// what it did then, and merges nothing.
	before, published := h.redisState(), h.published()
	if v := chief.act(dup.ID, 200, merge(target.ID, 2, "c1")); v.Version != 2 || v.Status != "dispatched" || v.MergedInto != "" {
		t.Errorf("a merge under the comment's request id answered v%d %s merged into %q, want the comment's answer", v.Version, v.Status, v.MergedInto)
	}
	if changed := changedKeys(before, h.redisState()); len(changed) > 0 {
		t.Errorf("a merge under a used request id changed %q", changed)
	}
	if got := h.published(); !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(published))) {
		t.Errorf("a merge under a used request id published a new change: %v, before %v", got, published)
	}
	if tv := chief.get(target.ID); tv.Version != 1 || len(tv.Merged) != 0 {
		t.Errorf("the target moved: v%d, merged %v", tv.Version, tv.Merged)
	}
	// The index keys were in what was compared.
	if _, ok := before["cityhub:cases:{huangpu}:open"]; !ok {
		t.Errorf("no index in the compared state: %q", slices.Sorted(maps.Keys(before)))
	}
}

func TestAPIMerge(t *testing.T) {
	h := start(t)
	chief := h.as(auth.RoleCommander, "")
	dup := chief.open("xuhui", "call-1", map[string]any{"lead": "water-affairs"})
	target := chief.open("huangpu", "call-2", map[string]any{"lead": "gas"})
	chief.act(dup.ID, 400, map[string]any{"action": "merge", "expected_version": 1, "request_id": "m0"})

	v := chief.act(dup.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if v.Status != "cancelled" || v.MergedInto != target.ID || v.Version != 2 {
		t.Errorf("duplicate %+v", v.Case)
	}
	again := chief.act(dup.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if again.Version != v.Version {
		t.Errorf("repeated merge moved the duplicate to v%d", again.Version)
	}
	tv := chief.get(target.ID)
	absorbed := 0
	for _, e := range tv.History {
		if e.Action == "absorb" {
			absorbed++
			if !strings.Contains(e.Effect, dup.ID) || e.Actor != "commander-" {
				t.Errorf("absorb entry %+v", e)
			}
		}
	}
	if absorbed != 1 || tv.Version != 2 || !slices.Equal(tv.Merged, []string{dup.ID}) || tv.Status != "dispatched" {
		t.Errorf("target: v%d, merged %v, %d absorb entries", tv.Version, tv.Merged, absorbed)
	}
	// Both changes are on the topic, each keyed by its own district.
	var onTopic []string
	for _, ch := range h.changes() {
		onTopic = append(onTopic, ch.GetCase().GetDistrict()+":"+ch.GetChange().GetAction())
	}
	if !slices.Contains(onTopic, "huangpu:absorb") || !slices.Contains(onTopic, "xuhui:merge") {
		t.Errorf("published %v", onTopic)
	}

	// Request ids are per case: another duplicate merged into the same
	// target by a request of the same id is recorded too.
	dup2 := chief.open("xuhui", "call-3", nil)
	chief.act(dup2.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if tv := chief.get(target.ID); tv.Version != 3 || !slices.Equal(tv.Merged, []string{dup.ID, dup2.ID}) {
		t.Errorf("target after a second duplicate: v%d, merged %v", tv.Version, tv.Merged)
	}

	// The target closing since does not turn a repeat into a refusal: it
	// gets the first answer, and nothing moves.
	chief.act(target.ID, 200, map[string]any{"action": "cancel", "note": "done elsewhere", "expected_version": 3, "request_id": "c1"})
	before := h.redisState()
	if again := chief.act(dup.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"}); again.Version != v.Version || again.MergedInto != target.ID {
		t.Errorf("repeat after the target closed: v%d merged into %q", again.Version, again.MergedInto)
	}
	if changed := changedKeys(before, h.redisState()); len(changed) > 0 {
		t.Errorf("a repeated merge changed %q", changed)
	}
}
