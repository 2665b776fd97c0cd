// Command ruler runs the ruler service alone: events in from Kafka, rules
// from a directory of packs, alert state in Redis, alerts out to Kafka.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ruler:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("ruler", flag.ContinueOnError)
	var common config.Common
	common.Register(fs)
	var packs string
	config.StringVar(fs, &packs, "packs", "CITYHUB_PACKS", "rules/packs", "directory of rule packs")
	if err := fs.Parse(os.Args[1:]); err != nil {
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
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: common.KafkaBrokers, Logger: log})
	if err != nil {
		return err
	}
	defer w.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r, err := ruler.New(ruler.Options{
		Brokers:    common.KafkaBrokers,
		Topics:     stream.DefaultTopics(common.TopicPrefix),
		Redis:      rdb,
		Writer:     w,
		PacksDir:   packs,
		Catalog:    cat,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: common.HTTPAddr, Handler: mux}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Error("metrics listener", "err", err)
		}
	}()
	defer srv.Close()
	return r.Run(ctx)
}
