// Package redistest gives tests a real Redis: the server named by REDIS_URL
// when it is set (it is flushed, every master of a redis-cluster:// one:
// point it at a throwaway database), a Redis Cluster of redis-server
// processes on loopback when REDISTEST_CLUSTER names a number of masters,
// otherwise a redis-server process on a Unix socket in a temporary
// directory, stopped when the test ends. A machine without redis-server fails the test with
// how to install it; it never skips.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/platform/redisclient"
)

// Server is a Redis for one test.
type Server struct {
	// URL is what redisclient.New takes.
	URL string
	// Client is connected to the server.
	Client redis.UniversalClient

	t      testing.TB
	dir    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Options tune a server started by the test.
type Options struct {
	// AppendFsync, when set, turns on the AOF with this appendfsync policy
	// (always, everysec, no).
	AppendFsync string
}

// Start returns a Redis for t with nothing in it.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options; with REDIS_URL set they are ignored.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if url := os.Getenv("REDIS_URL"); url != "" {
		c, err := redisclient.New(url)
		if err != nil {
			t.Fatalf("redistest: REDIS_URL: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		if err := Flush(context.Background(), c); err != nil {
			t.Fatalf("redistest: flush REDIS_URL: %v", err)
		}
		return &Server{URL: url, Client: c, t: t}
	}
	if n := os.Getenv(ClusterEnv); n != "" && opts.AppendFsync == "" {
		masters, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("redistest: %s=%q: want a number of masters", ClusterEnv, n)
		}
		return StartCluster(t, masters)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found: install it (Debian: apt-get install redis-server) or set REDIS_URL")
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "redis.sock")
	s := &Server{URL: "unix://" + sock, t: t, dir: dir}
	s.args = []string{
		"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--save", "", "--daemonize", "no", "--loglevel", "warning",
	}
	if opts.AppendFsync != "" {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", opts.AppendFsync)
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.start(bin)
	c, err := redisclient.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.Client = c
	t.Cleanup(func() {
		c.Close()
		s.stop()
		os.RemoveAll(dir)
	})
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	s.cmd = exec.Command(bin, s.args...)
	out, _ := s.cmd.StdoutPipe()
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	s.exited = make(chan struct{})
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
		}
		s.cmd.Wait()
		close(s.exited)
	}()
	sock := strings.TrimPrefix(s.URL, "unix://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("redistest: redis-server exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatal("redistest: redis-server did not listen within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart kills the server (SIGKILL: no chance to save) and starts it again
// on the same socket and directory; with an AOF it reloads it. Clients
// reconnect by themselves.
func (s *Server) Restart() {
	s.t.Helper()
	if s.dir == "" {
		s.t.Fatal("redistest: cannot restart the server of REDIS_URL")
	}
	bin := s.cmd.Path
	s.stop()
	s.start(bin)
}

func (s *Server) String() string { return fmt.Sprintf("redis at %s", s.URL) }

// CommandCalls reads INFO commandstats through rdb: how many times the
// server has run each command (lower case, "evalsha", "hget", …) since it
// started or its stats were reset. Tests compare two readings to count
// round trips.
//
// On a cluster the counts of every master are added up.
func CommandCalls(tb testing.TB, rdb redis.UniversalClient) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	var mu sync.Mutex
	err := eachMaster(context.Background(), rdb, func(ctx context.Context, n redis.UniversalClient) error {
		info, err := n.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		addCommandStats(out, info)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func addCommandStats(out map[string]int64, info string) {
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_evalsha:calls=3,usec=…
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, stats, _ := strings.Cut(rest, ":")
		var calls int64
		if _, err := fmt.Sscanf(stats, "calls=%d,", &calls); err == nil {
			out[name] += calls
		}
	}
}
