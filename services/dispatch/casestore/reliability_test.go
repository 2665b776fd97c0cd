package casestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// comment is the cheapest real transition: the case keeps its status, gains
// a version, an audit entry and a new updated_at.
func comment(by string, at time.Time) UpdateFunc {
	return func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		c.UpdatedAt = timestamppb.New(at)
		return &cityhubv1.AuditEntry{
			Action: "comment", Actor: by, Role: "dispatcher", At: timestamppb.New(at),
			Note: "note from " + by, From: c.GetStatus(), To: c.GetStatus(),
		}, nil
	}
}

// checkHistory asserts that the history of id holds exactly the versions
// 1..want, once each, and returns the request id of each version.
func checkHistory(t *testing.T, s *Store, id string, want int64) map[int64]string {
	t.Helper()
	c, hist, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.GetVersion() != want {
		t.Errorf("case %s at version %d, want %d", id, c.GetVersion(), want)
	}
	if int64(len(hist)) != want {
		t.Errorf("case %s has %d audit entries, want %d", id, len(hist), want)
	}
	byVersion := map[int64]string{}
	for i, e := range hist {
		if e.GetVersion() != int64(i+1) {
			t.Errorf("audit entry %d of %s is version %d: versions are not contiguous", i, id, e.GetVersion())
		}
		byVersion[e.GetVersion()] = e.GetRequestId()
	}
	return byVersion
}

// Many writers race for one case, each retrying on conflict until its one
// change is in: every version has exactly one winner, the versions are
// contiguous, and the audit history holds exactly the applied changes.
func TestRacingWritersGetOneWinnerPerVersion(t *testing.T) {
	const writers = 200
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)

	var (
		start     = make(chan struct{})
		wg        sync.WaitGroup
		mu        sync.Mutex
		winner    = map[int64]string{} // version → request id that made it
		conflicts atomic.Int64
		firstWins atomic.Int64 // wins among the first attempts, all at version 1
	)
	for i := range writers {
		wg.Go(func() {
			rid := fmt.Sprintf("w-%03d", i)
			<-start
			expected := int64(1)
			for attempt := 0; ; attempt++ {
				change, err := s.Update(ctx, c.Id, expected, rid, comment(rid, t0))
				if errors.Is(err, ErrConflict) {
					conflicts.Add(1)
					cur, err := s.current(ctx, "xuhui", c.Id)
					if err != nil {
						t.Error(err)
						return
					}
					expected = cur.GetVersion()
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if attempt == 0 {
					firstWins.Add(1)
				}
				v := change.GetCase().GetVersion()
				mu.Lock()
				if prev, dup := winner[v]; dup {
					t.Errorf("version %d won by both %s and %s", v, prev, rid)
				}
				winner[v] = rid
				mu.Unlock()
				return
			}
		})
	}
	close(start)
	wg.Wait()

	if firstWins.Load() != 1 {
		t.Errorf("%d writers won at version 1, want exactly 1", firstWins.Load())
	}
	if len(winner) != writers {
		t.Fatalf("%d versions won, want %d", len(winner), writers)
	}
	hist := checkHistory(t, s, c.Id, writers+1)
	for v := int64(2); v <= writers+1; v++ {
		if hist[v] != winner[v] {
			t.Errorf("version %d: history says %q, the winner was %q", v, hist[v], winner[v])
		}
	}
	t.Logf("%d writers, %d conflicts", writers, conflicts.Load())
}

// A request id answers with its first answer and changes nothing, however
// the case moved since. A conflict is not an answer kept: it changed
// nothing, so the same request is judged again when retried — and since
// versions only go up, a stale expected version conflicts again.
func TestRepeatedRequestIDChangesNothing(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs")
	mustCreate(t, s, c, e)

	first, err := s.Update(ctx, c.Id, 1, "req-a", comment("a", t0.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, c.Id, 1, "req-b", comment("b", t0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale request = %v, want a conflict", err)
	}
	if _, err := s.Update(ctx, c.Id, 2, "req-c", comment("c", t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	before, hist, _ := s.Get(ctx, c.Id)

	tests := []struct {
		name    string
		rid     string
		version int64
		want    error
	}{
		{"the first request again", "req-a", 1, nil},
		{"the first request with another expected version", "req-a", 7, nil},
		{"the conflicting request again", "req-b", 1, ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again, err := s.Update(ctx, c.Id, tt.version, tt.rid, func(*cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
				if tt.want == nil {
					t.Error("a repeated request ran its change again")
				}
				return comment("again", t0.Add(time.Hour))(c)
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && !proto.Equal(again, first) {
				t.Errorf("answer %v, want the first answer %v", again, first)
			}
			after, hist2, _ := s.Get(ctx, c.Id)
			if !proto.Equal(after, before) || len(hist2) != len(hist) {
				t.Errorf("the repeat changed the case: version %d → %d", before.Version, after.Version)
			}
		})
	}
}

// With appendfsync always, Redis writes a change to disk before it answers,
// so killing it mid-run and starting it again loses no change that a
// writer saw acknowledged. Writers retry every error with the same request
// id and expected version, as the API's clients do; a retry whose first
// attempt did land gets the first answer from the request log.
func TestRestartLosesNoAcknowledgedTransition(t *testing.T) {
	const (
		cases     = 16
		perCase   = 60
		restartAt = cases * perCase / 3
	)
	srv := redistest.StartWith(t, redistest.Options{AppendFsync: "always"})
	s := New(srv.Client, []string{"xuhui"})
	ctx := context.Background()
	ids := make([]string, cases)
	for i := range ids {
		c, e := alertCase("xuhui", fmt.Sprint("a", i), t0.Add(time.Duration(i)*time.Millisecond), "water-affairs")
		mustCreate(t, s, c, e)
		ids[i] = c.Id
	}

	var (
		acked      atomic.Int64
		reachedMid = make(chan struct{})
		once       sync.Once
		retries    atomic.Int64
		wg         sync.WaitGroup
		ackedBy    = make([][]string, cases) // per case: request id of version v+2 at index v
	)
	for i, id := range ids {
		wg.Go(func() {
			deadline := time.Now().Add(time.Minute)
			for n := range perCase {
				expected := int64(n + 1)
				rid := fmt.Sprintf("c%d-v%d", i, expected+1)
				for {
					change, err := s.Update(ctx, id, expected, rid, comment(rid, t0))
					if err == nil {
						if change.GetCase().GetVersion() != expected+1 {
							t.Errorf("%s answered version %d, want %d", rid, change.GetCase().GetVersion(), expected+1)
						}
						break
					}
					if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
						t.Errorf("%s: %v", rid, err) // a lost write shows up here
						return
					}
					retries.Add(1)
					time.Sleep(2 * time.Millisecond) // Redis is restarting: back off a little
				}
				ackedBy[i] = append(ackedBy[i], rid)
				if acked.Add(1) == restartAt {
					once.Do(func() { close(reachedMid) })
				}
			}
		})
	}
	<-reachedMid
	runID := serverRunID(t, srv.Client)
	srv.Restart()
	ackedAtRestart := acked.Load()
	wg.Wait()
	if serverRunID(t, srv.Client) == runID {
		t.Fatal("the server did not restart")
	}
	// Start once more so that what is checked is what the AOF holds.
	srv.Restart()

	for i, id := range ids {
		hist := checkHistory(t, s, id, int64(1+len(ackedBy[i])))
		for n, rid := range ackedBy[i] {
			if hist[int64(n+2)] != rid {
				t.Errorf("case %d version %d: history holds %q, acknowledged %q", i, n+2, hist[int64(n+2)], rid)
			}
		}
	}
	if got := acked.Load(); got != cases*perCase {
		t.Errorf("%d changes acknowledged, want %d", got, cases*perCase)
	}
	if ackedAtRestart >= cases*perCase {
		t.Errorf("every change was acknowledged before the restart; it did not happen mid-run")
	}
	t.Logf("%d changes acknowledged, %d of them before the restart; %d attempts retried by the test (go-redis retries some itself)",
		acked.Load(), ackedAtRestart, retries.Load())
}

func serverRunID(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return id
		}
	}
	t.Fatal("INFO server has no run_id")
	return ""
}

// roundTrips counts what a client sends to Redis: one per command, one per
// pipeline, leaving out the handshake of a new connection; once off, it
// counts nothing (a client's hooks cannot be removed).
type roundTrips struct {
	cmds, pipelines atomic.Int64
	off             atomic.Bool
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); !r.off.Load() && n != "hello" && n != "client" { // a new connection's handshake
			r.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !r.off.Load() && len(cmds) > 0 && cmds[0].Name() != "client" {
			r.pipelines.Add(1)
		}
		return next(ctx, cmds)
	}
}

// TestRoundTripsPerTransition pins down what one Update costs on the wire.
// On a case the store holds at the expected version (it read or wrote it
// last) it is one EVALSHA and nothing else: the script checks the version
// and the request id and writes everything, and its own commands run inside
// Redis. A store that does not hold the case first reads it and the request
// log in one pipeline.
func TestRoundTripsPerTransition(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := redisclient.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	s := New(rdb, []string{"xuhui"})
	ctx := context.Background()
	c, e := alertCase("xuhui", "a1", t0, "water-affairs", "traffic-police")
	mustCreate(t, s, c, e)
	// Warm the script cache: the first EVALSHA of a fresh server costs an
	// extra EVAL.
	if _, err := s.Update(ctx, c.Id, 1, "warm", comment("warm", t0)); err != nil {
		t.Fatal(err)
	}

	const n = 50
	tests := []struct {
		name string
		// store returns the store that makes the transition from version v.
		store               func() *Store
		perTransition, read int64
	}{
		{"held by the store", func() *Store { return s }, 1, 0},
		{"new to the store", func() *Store { return New(rdb, []string{"xuhui"}) }, 2, 1},
	}
	v := int64(2)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &roundTrips{}
			rdb.AddHook(rt)
			defer func() { rt.off.Store(true) }()
			before := redistest.CommandCalls(t, srv.Client)
			for range n {
				if _, err := tt.store().Update(ctx, c.Id, v, fmt.Sprint("r", v), comment("x", t0)); err != nil {
					t.Fatal(err)
				}
				v++
			}
			after := redistest.CommandCalls(t, srv.Client)
			if got := rt.cmds.Load() + rt.pipelines.Load(); got != tt.perTransition*n {
				t.Errorf("%d round trips for %d transitions, want %d each", got, n, tt.perTransition)
			}
			if got := rt.pipelines.Load(); got != tt.read*n {
				t.Errorf("%d pipelined reads for %d transitions, want %d each", got, n, tt.read)
			}
			if d := after["evalsha"] - before["evalsha"]; d != n {
				t.Errorf("redis ran EVALSHA %d times for %d transitions, want once each", d, n)
			}
			if d := after["eval"] - before["eval"]; d != 0 {
				t.Errorf("redis ran EVAL %d times: the script should be cached", d)
			}
			// The script's own look at the request log is an HGET too; what
			// is left is the reads (the case and the request log).
			if d := after["hget"] - before["hget"] - n; d != tt.read*2*n {
				t.Errorf("redis ran %d HGETs outside the script for %d transitions, want %d", d, n, tt.read*2*n)
			}
		})
	}
}
