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

	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/daemon"
	"github.com/cityhub/cityhub/services/ruler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ruler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	fs := flag.NewFlagSet("ruler", flag.ExitOnError)
	var packs, group string
	config.StringVar(fs, &packs, "packs", "CITYHUB_PACKS", "rules/packs", "directory of rule packs")
	config.StringVar(fs, &group, "group", "CITYHUB_RULER_GROUP", ruler.DefaultGroup, "Kafka consumer group on the events topic")
	b, err := daemon.Setup("ruler", fs, os.Args[1:])
	if err != nil {
		return err
	}
	defer b.Close()
	rdb, err := b.Redis()
	if err != nil {
		return err
	}
	w, err := b.Writer()
	if err != nil {
		return err
	}
	// SIGHUP reloads the packs, as it does Prometheus' configuration.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	r, err := ruler.New(ruler.Options{
		Brokers: b.Config.KafkaBrokers, Topics: b.Topics, Group: group,
		Redis: rdb, Writer: w, PacksDir: packs, Catalog: b.Catalog,
		Logger: b.Logger, Registerer: b.Registry,
		Reload: hup, Verifier: b.Verifier,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	r.Routes(mux)
	return b.Run(ctx, mux, r.Run)
}
