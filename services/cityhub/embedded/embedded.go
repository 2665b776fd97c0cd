// Package embedded runs the infrastructure of the all-in-one hub inside its
// own process: a kfake Kafka cluster whose log persists under the data
// directory, and a miniredis server held in memory. Both listen on real TCP
// ports, so kcat and redis-cli can talk to them.
package embedded

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an embedded single-broker Kafka cluster.
type Kafka struct {
	c *kfake.Cluster
}

// StartKafka listens on addr (host:port; port 0 picks one) and keeps its log
// under dir, so that a restart finds every message again.
func StartKafka(addr, dir string) (*Kafka, error) {
	port, err := portOf(addr)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	c, err := kfake.NewCluster(
		kfake.Ports(port),
		kfake.DataDir(filepath.Clean(dir)),
		kfake.ClusterID("cityhub-embedded"),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on %s: %w", addr, err)
	}
	return &Kafka{c: c}, nil
}

// Brokers returns the address clients bootstrap from.
func (k *Kafka) Brokers() []string { return k.c.ListenAddrs() }

// Close stops the cluster; its log stays on disk.
func (k *Kafka) Close() { k.c.Close() }

// Redis is an embedded, in-memory Redis server.
type Redis struct {
	m *miniredis.Miniredis
}

// StartRedis listens on addr (host:port; port 0 picks one).
func StartRedis(addr string) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded redis on %s: %w", addr, err)
	}
	return &Redis{m: m}, nil
}

// URL returns the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.m.Addr() + "/0" }

// Close stops the server; its data is gone.
func (r *Redis) Close() { r.m.Close() }

func portOf(addr string) (int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("embedded kafka: address %q: %w", addr, err)
	}
	if host != "127.0.0.1" && host != "localhost" {
		// kfake listens on 127.0.0.1 whatever it is told.
		return 0, fmt.Errorf("embedded kafka: address %q: the embedded broker listens on 127.0.0.1 only", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("embedded kafka: address %q: bad port", addr)
	}
	return port, nil
}
