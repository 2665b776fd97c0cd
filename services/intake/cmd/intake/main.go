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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "intake:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	b, err := daemon.Setup("intake", flag.NewFlagSet("intake", flag.ExitOnError), os.Args[1:])
	if err != nil {
		return err
	}
	defer b.Close()
	w, err := b.Writer()
	if err != nil {
		return err
	}
	svc, err := intake.New(intake.Options{
		Writer: w, Topics: b.Topics, Catalog: b.Catalog, Verifier: b.Verifier,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	return b.Run(ctx, mux)
}
