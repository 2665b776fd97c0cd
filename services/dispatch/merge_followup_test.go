package dispatch_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redisclient"
)

// failScriptsOn fails every script that touches a key with the given
// prefix, as a dispatcher that dies before it reaches that case would.
type failScriptsOn struct{ prefix string }

func (f failScriptsOn) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f failScriptsOn) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			for _, a := range cmd.Args() {
				if s, ok := a.(string); ok && strings.HasPrefix(s, f.prefix) {
					err := errors.New("injected: the process died here")
					cmd.SetErr(err)
					return err
				}
			}
		}
		return next(ctx, cmd)
	}
}

func (f failScriptsOn) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// cutShort merges dup into target through a replica that cannot write the
// target: the merge stops between its two steps.
func cutShort(h *harness, dup, target, requestID string) {
	h.t.Helper()
	rdb, err := redisclient.New(h.redis.URL)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(failScriptsOn{prefix: "cityhub:case:{huangpu}:" + target})
	h.replica(rdb).as(auth.RoleCommander, "").act(dup, 500, map[string]any{"action": "merge", "into": target, "expected_version": 1, "request_id": requestID})
}

func absorbs(v caseBody) int {
	n := 0
	for _, e := range v.History {
		if e.Action == "absorb" {
			n++
		}
	}
	return n
}

// TestRepeatFinishesAMergeCutShort checks that a merge that stopped after
// the duplicate's change is finished by the same request again: the first
// answer for the duplicate, and the target's side done once.
func TestRepeatFinishesAMergeCutShort(t *testing.T) {
	h := start(t)
	chief := h.as(auth.RoleCommander, "")
	dup := chief.open("xuhui", "call-1", map[string]any{"lead": "water-affairs"})
	target := chief.open("huangpu", "call-2", map[string]any{"lead": "gas"})
	cutShort(h, dup.ID, target.ID, "m1")
	if d := chief.get(dup.ID); d.Status != "cancelled" || d.Version != 2 {
		t.Fatalf("the duplicate after the cut: %s v%d, want cancelled v2", d.Status, d.Version)
	}
	if tv := chief.get(target.ID); tv.Version != 1 {
		t.Fatalf("the target moved although its script failed: v%d", tv.Version)
	}

	v := chief.act(dup.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if v.Version != 2 || v.MergedInto != target.ID {
		t.Errorf("repeat answered v%d merged into %q, want the first answer", v.Version, v.MergedInto)
	}
	tv := chief.get(target.ID)
	if tv.Version != 2 || !slices.Equal(tv.Merged, []string{dup.ID}) || absorbs(tv) != 1 {
		t.Errorf("target after the repeat: v%d, merged %v, %d absorb entries", tv.Version, tv.Merged, absorbs(tv))
	}
	chief.act(dup.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if again := chief.get(target.ID); again.Version != 2 {
		t.Errorf("a second repeat moved the target to v%d", again.Version)
	}
	pub := h.published()
	if pub[dup.ID+"@2"] == 0 || pub[target.ID+"@2"] == 0 {
		t.Errorf("published %v, want the merge and the absorb", pub)
	}
}

// TestSweeperFinishesAMergeCutShort checks that a merge cut short is
// finished by the sweeper MergeFollowUp later, for a caller who never
// repeats it, and that a whole merge is left alone.
func TestSweeperFinishesAMergeCutShort(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	chief := h.as(auth.RoleCommander, "")
	dup := chief.open("xuhui", "call-1", map[string]any{"lead": "water-affairs"})
	whole := chief.open("xuhui", "call-2", nil)
	target := chief.open("huangpu", "call-3", map[string]any{"lead": "gas"})
	cutShort(h, dup.ID, target.ID, "m1")
	chief.act(whole.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if tv := chief.get(target.ID); tv.Version != 2 || !slices.Equal(tv.Merged, []string{whole.ID}) {
		t.Fatalf("target: v%d, merged %v", tv.Version, tv.Merged)
	}
	onTopic := len(h.changes())

	// Not before its time.
	if _, err := h.svc.Sweep(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if tv := chief.get(target.ID); tv.Version != 2 {
		t.Fatalf("swept before the follow-up: target v%d", tv.Version)
	}
	now := t0.Add(casestore.MergeFollowUp)
	h.setNow(now)
	if _, err := h.svc.Sweep(ctx, now); err != nil {
		t.Fatal(err)
	}
	tv := chief.get(target.ID)
	if tv.Version != 3 || !slices.Equal(tv.Merged, []string{whole.ID, dup.ID}) || absorbs(tv) != 2 {
		t.Errorf("target after the follow-up: v%d, merged %v, %d absorb entries", tv.Version, tv.Merged, absorbs(tv))
	}
	if e := tv.History[len(tv.History)-1]; e.Action != "absorb" || e.Actor != "commander-" || !strings.Contains(e.Effect, dup.ID) {
		t.Errorf("absorb entry %+v, want one by who merged", e)
	}
	// The duplicate's change, which the cut request never published, and
	// the target's are published; the whole merge published nothing more.
	pub := h.published()
	if pub[dup.ID+"@2"] != 1 || pub[target.ID+"@3"] != 1 || len(h.changes()) != onTopic+2 {
		t.Errorf("published %v, %d new", pub, len(h.changes())-onTopic)
	}
	for _, id := range []string{dup.ID, whole.ID} {
		if at, armed, err := h.svc.Store().Timer(ctx, id); err != nil || armed {
			t.Errorf("timer of %s still armed at %v (%v)", id, at, err)
		}
	}

	// The repeat after the sweeper changes nothing more.
	chief.act(dup.ID, 200, map[string]any{"action": "merge", "into": target.ID, "expected_version": 1, "request_id": "m1"})
	if again := chief.get(target.ID); again.Version != 3 {
		t.Errorf("the repeat moved the target to v%d", again.Version)
	}
}
