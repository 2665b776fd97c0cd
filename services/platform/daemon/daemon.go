// Package daemon is the scaffolding shared by the mains of cityhub's
// separate service processes: common flags, the logger, the metrics
// registry, the catalog, the token verifier, and the HTTP server with
// /metrics, /healthz and /readyz. The service packages never touch it, so
// the all-in-one binary composes them without it.
package daemon

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/health"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/serve"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Base is what every service main builds before its service.
type Base struct {
	Config   config.Common
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Catalog  *catalog.Catalog
	Verifier *auth.Verifier
	Health   *health.Checker
	Topics   stream.Topics

	closers []func()
}

// Setup parses args with fs, on which the common flags are registered too,
// and builds the Base. The caller registers its own flags on fs first.
func Setup(name string, fs *flag.FlagSet, args []string) (*Base, error) {
	b := &Base{Registry: prometheus.NewRegistry(), Health: health.New()}
	b.Config.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := b.Config.Validate(); err != nil {
		return nil, err
	}
	log, err := logging.New(os.Stderr, b.Config.LogLevel, b.Config.LogFormat)
	if err != nil {
		return nil, err
	}
	b.Logger = log.With("service", name)
	b.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if b.Catalog, err = catalog.Load(b.Config.Catalog); err != nil {
		return nil, err
	}
	if b.Config.JWTPublicKey == "" {
		return nil, fmt.Errorf("no token verification key: set --jwt-public-key or CITYHUB_JWT_PUBLIC_KEY")
	}
	key, err := auth.LoadPublicKey(b.Config.JWTPublicKey)
	if err != nil {
		return nil, err
	}
	if b.Verifier, err = auth.NewVerifier(key); err != nil {
		return nil, err
	}
	b.Verifier.SetDirectory(b.Catalog)
	b.Topics = stream.DefaultTopics(b.Config.TopicPrefix)
	return b, nil
}

// Redis connects to the configured Redis, adds it to the readiness checks,
// and closes it on Close.
func (b *Base) Redis() (redis.UniversalClient, error) {
	rdb, err := redisclient.New(b.Config.RedisURL)
	if err != nil {
		return nil, err
	}
	b.Health.Add("redis", func(ctx context.Context) error { return redisclient.Ping(ctx, rdb) })
	b.closers = append(b.closers, func() { rdb.Close() })
	return rdb, nil
}

// Writer returns a Kafka writer for the configured brokers, closed (and
// flushed) on Close.
func (b *Base) Writer() (*stream.Writer, error) {
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: b.Config.KafkaBrokers, Logger: b.Logger})
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, func() { w.Close() })
	return w, nil
}

// Close closes what Redis and Writer opened, the last opened first.
func (b *Base) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// Run serves mux, plus /metrics and the health endpoints, and runs each of
// loops, until ctx ends or one of them fails; then it stops the others and
// returns the first error.
func (b *Base) Run(ctx context.Context, mux *http.ServeMux, loops ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	// Tokens follow the catalog: a department or district removed from it
	// loses access within a watch interval.
	g.Go(func() error {
		return catalog.Watch(gctx, b.Config.Catalog, 0, b.Logger, func(c *catalog.Catalog) { b.Verifier.SetDirectory(c) })
	})
	for _, loop := range loops {
		g.Go(func() error { return loop(gctx) })
	}
	g.Go(func() error { return b.serve(gctx, mux) })
	return g.Wait()
}

// serve serves mux, plus /metrics (for commander and viewer tokens: a
// scraper is given a long-lived viewer token) and the health endpoints, on
// the configured address until ctx ends.
func (b *Base) serve(ctx context.Context, mux *http.ServeMux) error {
	b.Health.Routes(mux, func(r *http.Request) bool { return b.Verifier.Allows(r, auth.RoleCommander, auth.RoleViewer) })
	mux.Handle("GET /metrics", b.Verifier.Require(auth.RoleCommander, auth.RoleViewer)(promhttp.HandlerFor(b.Registry, promhttp.HandlerOpts{})))
	b.Logger.Info("serving HTTP", "addr", b.Config.HTTPAddr)
	return serve.ListenAndRun(ctx, b.Config.HTTPAddr, mux, serve.Options{Logger: b.Logger})
}
