// Package redisclient connects cityhub services to Redis or Redis Cluster.
package redisclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// New returns a client for url:
//
//	redis://[user:password@]host:port[/db]   one server (rediss:// for TLS)
//	unix:///path/to/redis.sock[?db=N]       one server on a Unix socket
//	redis-cluster://host:port,host:port      a Redis Cluster (seed nodes)
//
// Context deadlines bound every command. go-redis retries a command whose
// reply was lost, so every script cityhub runs checks for itself whether it
// already ran.
func New(url string) (redis.UniversalClient, error) {
	if rest, ok := strings.CutPrefix(url, "redis-cluster://"); ok {
		addrs := strings.Split(rest, ",")
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 addrs,
			ContextTimeoutEnabled: true,
			ReadTimeout:           5 * time.Second,
			WriteTimeout:          5 * time.Second,
		}), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", redact(err, url))
	}
	opts.ContextTimeoutEnabled = true
	opts.ReadTimeout = 5 * time.Second
	opts.WriteTimeout = 5 * time.Second
	return redis.NewClient(opts), nil
}

// redact keeps a password in url out of err's message.
func redact(err error, url string) error {
	msg := err.Error()
	if i := strings.Index(url, "@"); i > 0 {
		msg = strings.ReplaceAll(msg, url[:i], "redis://…")
	}
	return fmt.Errorf("%s", msg)
}

// Ping checks that Redis answers; for readiness checks.
func Ping(ctx context.Context, c redis.UniversalClient) error {
	return c.Ping(ctx).Err()
}
