// Command intake runs cityhub's event intake as its own process.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/platform/daemon"
	"github.com/cityhub/cityhub/services/platform/stream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "intake:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := daemon.Setup("intake", flag.NewFlagSet("intake", flag.ExitOnError), os.Args[1:])
	if err != nil {
		return err
	}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: b.Config.KafkaBrokers, Logger: b.Logger})
	if err != nil {
		return err
	}
	defer w.Close()
	svc, err := intake.New(intake.Options{
		Writer: w, Topics: b.Topics, Catalog: b.Catalog, Verifier: b.Verifier,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	return b.Serve(ctx, mux, nil)
}
