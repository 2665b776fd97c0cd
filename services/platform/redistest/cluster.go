package redistest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterEnv names the environment variable that makes Start give every
// test a Redis Cluster of that many masters instead of one server, so
// that a suite can be run against a cluster unchanged:
// REDISTEST_CLUSTER=3 go test ./...
const ClusterEnv = "REDISTEST_CLUSTER"

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// StartCluster returns a Redis Cluster of masters redis-server processes
// on loopback ports, the slots split evenly between them, with nothing in
// it; every process stops when the test ends.
func StartCluster(t testing.TB, masters int) *Server {
	t.Helper()
	return StartClusterWithPassword(t, masters, "")
}

// StartClusterWithPassword is StartCluster with every node requiring
// password of the default user (none when empty). The URL carries it,
// percent-encoded.
func StartClusterWithPassword(t testing.TB, masters int, password string) *Server {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: a cluster of %d masters", masters)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found: install it (Debian: apt-get install redis-server)")
	}
	ctx := context.Background()
	addrs := make([]string, masters)
	var bus0 int
	for i := range masters {
		var bus int
		addrs[i], bus = startNode(t, bin, password)
		if i == 0 {
			bus0 = bus
		}
	}
	nodes := make([]*redis.Client, masters)
	for i, a := range addrs {
		nodes[i] = redis.NewClient(&redis.Options{Addr: a, Password: password})
		defer nodes[i].Close()
		first, last := i*clusterSlots/masters, (i+1)*clusterSlots/masters-1
		if err := nodes[i].Do(ctx, "cluster", "addslotsrange", first, last).Err(); err != nil {
			t.Fatalf("redistest: assign slots %d-%d to %s: %v", first, last, a, err)
		}
	}
	for _, n := range nodes[1:] {
		// The bus port is not the default (port + 10000): say it.
		host, port, _ := net.SplitHostPort(addrs[0])
		if err := n.Do(ctx, "cluster", "meet", host, port, bus0).Err(); err != nil {
			t.Fatalf("redistest: cluster meet: %v", err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, n := range nodes {
		for {
			info, err := n.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %d of the cluster is not ok within 20s: %v %s", i, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: password})
	t.Cleanup(func() { c.Close() })
	// Every node must know the whole map before the client may route.
	for {
		if err := c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err == nil {
			if err := c.Set(ctx, "redistest:{probe}", "1", time.Second).Err(); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("redistest: the cluster does not route within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Del(ctx, "redistest:{probe}")
	u := "redis-cluster://" + strings.Join(addrs, ",")
	if password != "" {
		u = "redis-cluster://:" + url.PathEscape(password) + "@" + strings.Join(addrs, ",")
	}
	return &Server{URL: u, Client: c, t: t}
}

// startNode starts one cluster-enabled redis-server and returns its
// address, once it answers, and its cluster bus port.
func startNode(t testing.TB, bin, password string) (string, int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "redistest-cluster")
	if err != nil {
		t.Fatal(err)
	}
	port, bus := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-port", fmt.Sprint(bus), "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if password != "" {
		cmd.Args = append(cmd.Args, "--requirepass", password, "--masterauth", password)
	}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(dir)
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, bus
		}
		select {
		case <-exited:
			t.Fatalf("redistest: redis-server exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: redis-server did not listen within 10s: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freePort returns a TCP port nothing listens on just now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// eachMaster calls fn with rdb when it is one server, or with each master
// of a cluster, concurrently.
func eachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, redis.UniversalClient) error) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	}
	return fn(ctx, rdb)
}

// Flush empties rdb: the one server, or every master of a cluster (a
// cluster client's own FLUSHDB reaches one node).
func Flush(ctx context.Context, rdb redis.UniversalClient) error {
	return eachMaster(ctx, rdb, func(ctx context.Context, n redis.UniversalClient) error { return n.FlushDB(ctx).Err() })
}

// Keys returns the keys of rdb that match pattern, from every master of a
// cluster. For tests: KEYS walks the whole keyspace.
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	err := eachMaster(ctx, rdb, func(ctx context.Context, n redis.UniversalClient) error {
		ks, err := n.Keys(ctx, pattern).Result()
		mu.Lock()
		out = append(out, ks...)
		mu.Unlock()
		return err
	})
	return out, err
}
