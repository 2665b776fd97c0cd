// Command dispatch runs cityhub's case service on its own: it consumes
// alerts, keeps cases in Redis and serves the dispatcher API.
//
//	dispatch [flags]           run the service
//	dispatch rebuild [flags]   restore the cases in Redis from city.cases.v1, then exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/health"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/serve"
	"github.com/cityhub/cityhub/services/platform/stream"
)

func main() {
	args := os.Args[1:]
	rebuild := len(args) > 0 && args[0] == "rebuild"
	if rebuild {
		args = args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, args, rebuild)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dispatch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, rebuild bool) error {
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	var common config.Common
	common.Register(fs)
	var group string
	config.StringVar(fs, &group, "group", "CITYHUB_DISPATCH_GROUP", dispatch.DefaultGroup, "Kafka consumer group on the alerts topic")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := common.Validate(); err != nil {
		return err
	}
	log, err := logging.New(os.Stderr, common.LogLevel, common.LogFormat)
	if err != nil {
		return err
	}
	cat, err := catalog.Load(common.Catalog)
	if err != nil {
		return err
	}
	rdb, err := redisclient.New(common.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	topics := stream.DefaultTopics(common.TopicPrefix)

	if rebuild {
		n, err := dispatch.Rebuild(ctx, common.KafkaBrokers, topics.Cases, casestore.New(rdb, cat.DistrictCodes()))
		if err != nil {
			return err
		}
		log.Info("rebuilt cases from Kafka", "changes", n)
		return nil
	}

	if common.JWTPublicKey == "" {
		return errors.New("no JWT public key: set --jwt-public-key or CITYHUB_JWT_PUBLIC_KEY")
	}
	key, err := auth.LoadPublicKey(common.JWTPublicKey)
	if err != nil {
		return err
	}
	verifier, err := auth.NewVerifier(key)
	if err != nil {
		return err
	}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: common.KafkaBrokers, Logger: log})
	if err != nil {
		return err
	}
	defer w.Close()
	svc, err := dispatch.New(dispatch.Options{
		Brokers:    common.KafkaBrokers,
		Topics:     topics,
		Group:      group,
		Redis:      rdb,
		Writer:     w,
		Catalog:    cat,
		Verifier:   verifier,
		Logger:     log,
		Registerer: prometheus.DefaultRegisterer,
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	svc.Routes(mux)
	checks := health.New()
	checks.Add("redis", func(ctx context.Context) error { return redisclient.Ping(ctx, rdb) })
	checks.Routes(mux)
	mux.Handle("GET /metrics", promhttp.Handler())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- svc.Run(ctx) }()
	go func() { errc <- serve.ListenAndRun(ctx, common.HTTPAddr, mux, serve.Options{Logger: log}) }()
	log.Info("dispatch started", "http", common.HTTPAddr)
	first := <-errc
	cancel() // one ended: stop the other
	second := <-errc
	return errors.Join(first, second)
}
