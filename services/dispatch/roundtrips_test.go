package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/view"
)

// roundTrips counts what a client sends to Redis: one per command, one per
// pipeline, leaving out the handshake of a new connection.
type roundTrips struct{ cmds, pipelines atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n != "hello" && n != "client" { // a new connection's handshake
			r.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() != "client" {
			r.pipelines.Add(1)
		}
		return next(ctx, cmds)
	}
}

func (r *roundTrips) take() (cmds, pipelines int64) { return r.cmds.Swap(0), r.pipelines.Swap(0) }

// An action on a case the service holds at the version the caller expects
// is one round trip to Redis: the update script, which checks the version
// and the request id and writes everything. On a case it does not hold it
// is two: the case is read first.
func TestActionRoundTrips(t *testing.T) {
	h := start(t)
	xuhui, _ := h.seed(1)
	id := xuhui[0].Id
	path := "/v1/cases/" + id + "/actions"
	// An action through h loads the update script into Redis, so that
	// what is counted below is never the EVAL of a cold script cache.
	if status, b := h.as(auth.RoleDepartment, "water-affairs").do("POST", path, action{Action: "accept", ExpectedVersion: 1, RequestID: "warm"}); status != 200 {
		t.Fatalf("warm-up: %d %s", status, b)
	}

	rdb, err := redisclient.New(h.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	rt := &roundTrips{}
	rdb.AddHook(rt)
	r := h.replica(rdb) // it has never seen the case
	disp := r.as(auth.RoleDispatcher, "", "xuhui")

	before := redistest.CommandCalls(t, h.redis.Client)
	if status, b := disp.do("POST", path, action{Action: "comment", Note: "first look", ExpectedVersion: 2, RequestID: "c2"}); status != 200 {
		t.Fatalf("comment: %d %s", status, b)
	}
	after := redistest.CommandCalls(t, h.redis.Client)
	if cmds, pipes := rt.take(); cmds != 2 || pipes != 0 {
		t.Errorf("an action on a case new to the service: %d commands and %d pipelines, want 2 (a read, the script) and 0", cmds, pipes)
	}
	if d := after["evalsha"] - before["evalsha"]; d != 1 {
		t.Errorf("EVALSHA ran %d times, want 1", d)
	}

	const n = 20
	before = redistest.CommandCalls(t, h.redis.Client)
	for v := int64(3); v < 3+n; v++ {
		if status, b := disp.do("POST", path, action{Action: "comment", Note: "again", ExpectedVersion: v, RequestID: fmt.Sprint("c", v)}); status != 200 {
			t.Fatalf("comment at v%d: %d %s", v, status, b)
		}
	}
	after = redistest.CommandCalls(t, h.redis.Client)
	if cmds, pipes := rt.take(); cmds != n || pipes != 0 {
		t.Errorf("%d actions on a case the service holds: %d commands and %d pipelines, want %d and 0", n, cmds, pipes, n)
	}
	if d := after["evalsha"] - before["evalsha"]; d != n {
		t.Errorf("EVALSHA ran %d times for %d actions, want once each", d, n)
	}
	if d := after["eval"] - before["eval"]; d != 0 {
		t.Errorf("EVAL ran %d times: the script should be cached", d)
	}
	// Inside the script the request log is one HGET and the version one
	// HMGET; nothing else reads.
	if d := after["hget"] - before["hget"]; d != n {
		t.Errorf("HGET ran %d times for %d actions, want %d (the script's look at the request log)", d, n, n)
	}
	if d := after["zrange"] - before["zrange"]; d != 0 {
		t.Errorf("ZRANGE ran %d times: an action read the history", d)
	}
}

// Two replicas of the service serve the same cases: an action through the
// one whose copy went stale is judged on the case as it is (409 for a stale
// expected version, the first answer for a repeated request id) and never
// undoes what the other wrote.
func TestActionsThroughAStaleReplica(t *testing.T) {
	h := start(t)
	xuhui, _ := h.seed(1)
	id := xuhui[0].Id
	path := "/v1/cases/" + id + "/actions"
	r := h.replica(nil)
	// r reads the case at version 1 and keeps it.
	if status, b := r.as(auth.RoleCommander, "").do("GET", "/v1/cases/"+id, nil); status != 200 {
		t.Fatalf("get through r: %d %s", status, b)
	}
	accept := action{Action: "accept", ExpectedVersion: 1, RequestID: "w1"}
	status, first := h.as(auth.RoleDepartment, "water-affairs").do("POST", path, accept)
	if status != 200 {
		t.Fatalf("water accepts through h: %d %s", status, first)
	}

	steps := []struct {
		name string
		c    *client
		body action
		want int
	}{
		{"stale expected version", r.as(auth.RoleDepartment, "traffic-police"), action{Action: "accept", ExpectedVersion: 1, RequestID: "t1"}, 409},
		{"the accept repeated through r", r.as(auth.RoleDepartment, "water-affairs"), accept, 200},
		{"traffic accepts at the current version", r.as(auth.RoleDepartment, "traffic-police"), action{Action: "accept", ExpectedVersion: 2, RequestID: "t1"}, 200},
	}
	for _, st := range steps {
		status, b := st.c.do("POST", path, st.body)
		if status != st.want {
			t.Fatalf("%s: %d %s, want %d", st.name, status, b, st.want)
		}
		if st.body.RequestID == accept.RequestID && !bytes.Equal(b, first) {
			t.Errorf("%s answered %s, want the first answer %s", st.name, b, first)
		}
	}

	for _, via := range []*harness{h, r} {
		status, b := via.as(auth.RoleCommander, "").do("GET", "/v1/cases/"+id, nil)
		var v view.Case
		if status != 200 || json.Unmarshal(b, &v) != nil {
			t.Fatalf("get: %d %s", status, b)
		}
		if v.Version != 3 || len(v.History) != 3 || v.Status != "accepted" {
			t.Errorf("case is %s v%d with %d entries, want accepted v3 with 3", v.Status, v.Version, len(v.History))
		}
		for _, p := range v.Parts {
			if p.Status != "accepted" {
				t.Errorf("part of %s is %s: a change was lost", p.Department, p.Status)
			}
		}
	}
}
