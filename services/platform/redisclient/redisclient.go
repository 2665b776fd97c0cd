// Package redisclient connects cityhub services to Redis or Redis Cluster.
package redisclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// New returns a client for url:
//
//	redis://[user:password@]host:port[/db]          one server (rediss:// for TLS)
//	unix:///path/to/redis.sock[?db=N]              one server on a Unix socket
//	redis-cluster://[user:password@]host:port,…    a Redis Cluster, by seed nodes
//	                                               (rediss-cluster:// for TLS)
//
// A user or password with reserved characters is percent-encoded, as in
// any URL. Context deadlines bound every command. go-redis retries a
// command whose reply was lost, so every script cityhub runs checks for
// itself whether it already ran. No error names the password.
func New(url string) (redis.UniversalClient, error) {
	if strings.HasPrefix(url, "redis-cluster://") || strings.HasPrefix(url, "rediss-cluster://") {
		opts, err := ClusterOptions(url)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(opts), nil
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

// ClusterOptions reads a redis-cluster:// or rediss-cluster:// URL (see
// New). TLS checks each node's certificate against the name the node is
// reached by.
func ClusterOptions(raw string) (*redis.ClusterOptions, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	opts := &redis.ClusterOptions{
		ContextTimeoutEnabled: true,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
	}
	switch scheme {
	case "redis-cluster":
	case "rediss-cluster":
		// No ServerName: the dialer takes each node's from its address.
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("redis url: scheme %q, want redis-cluster or rediss-cluster", scheme)
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, password, hasPassword := strings.Cut(rest[:at], ":")
		var err error
		if opts.Username, err = neturl.PathUnescape(user); err != nil {
			return nil, errors.New("redis url: the user is not percent-encoded properly")
		}
		if opts.Password, err = neturl.PathUnescape(password); err != nil {
			return nil, errors.New("redis url: the password is not percent-encoded properly")
		}
		if !hasPassword {
			return nil, errors.New("redis url: a user without a password (write user:password@, or :password@ for the default user)")
		}
		rest = rest[at+1:]
	}
	if strings.ContainsAny(rest, "/?#") {
		return nil, errors.New("redis url: a cluster URL names seed nodes only, with no path or options")
	}
	for _, addr := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("redis url: seed node %q: want host:port", addr)
		}
		opts.Addrs = append(opts.Addrs, addr)
	}
	return opts, nil
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
