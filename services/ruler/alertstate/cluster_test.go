package alertstate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestScriptsStayInTheAlertsSlot runs random sequences through a Store on
// a one-node Redis Cluster, and holds it to Memory there too. The node
// refuses a script that touches a key outside the slot of the keys it was
// given, as a single server never does, but only a script that declares
// itself with a shebang: Redis spares the old kind for compatibility. The
// scripts run here with "#!lua" added, which changes nothing else; the
// test swaps the package's scripts, so it must not run in parallel.
func TestScriptsStayInTheAlertsSlot(t *testing.T) {
	client := startClusterNode(t)
	ctx := context.Background()
	// The node must refuse what the test is about, or it proves nothing.
	stray := redis.NewScript("#!lua\nredis.call('GET', KEYS[1])\nreturn redis.call('GET', '" + FiringKey + "')")
	if err := stray.Run(ctx, client, keys("fp")[:1]).Err(); err == nil || !strings.Contains(err.Error(), "same slot") {
		t.Fatalf("a script touching a key outside its slot: %v, want it refused", err)
	}
	apply, tally, all := applyScript, tallyScript, scripts
	applyScript, tallyScript, scripts = loadScripts("#!lua\n")
	t.Cleanup(func() { applyScript, tallyScript, scripts = apply, tally, all })
	restore := restoreScript
	restoreScript = redis.NewScript("#!lua\n" + restoreSrc)
	t.Cleanup(func() { restoreScript = restore })
	for seed := range uint64(20) {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 0xc105))
			data := make([]byte, 600)
			for i := range data {
				data[i] = byte(rnd.Uint32())
			}
			if err := client.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
				return c.FlushDB(ctx).Err()
			}); err != nil {
				t.Fatal(err)
			}
			runSequence(t, client, data)
		})
		if !ok {
			return
		}
	}
}

// startClusterNode starts a redis-server in cluster mode that serves every
// slot, stopped when the test ends.
func startClusterNode(t *testing.T) *redis.ClusterClient {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: install it (Debian: apt-get install redis-server)")
	}
	dir := t.TempDir()
	port, bus := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-port", fmt.Sprint(bus), "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	node := redis.NewClient(&redis.Options{Addr: addr})
	defer node.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for node.Ping(ctx).Err() != nil {
		select {
		case <-exited:
			t.Fatalf("redis-server exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not answer within 10s: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := node.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		info, err := node.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not ok within 10s: %s %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { c.Close() })
	return c
}

// freePort returns a TCP port nothing listens on just now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
