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

	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/adapters"
	"github.com/cityhub/cityhub/services/platform/config"
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
	fs := flag.NewFlagSet("intake", flag.ExitOnError)
	var dir string
	config.StringVar(fs, &dir, "adapters", "CITYHUB_ADAPTERS_DIR", "rules/adapters", "the adapters' mappings (alertmanager.yaml, cap.yaml); Open311 needs none")
	b, err := daemon.Setup("intake", fs, os.Args[1:])
	if err != nil {
		return err
	}
	defer b.Close()
	w, err := b.Writer()
	if err != nil {
		return err
	}
	// Redis keeps what each source sends (GET /v1/sources), Open311's
	// requests and the CAP feed, and says what became of a report.
	rdb, err := b.Redis()
	if err != nil {
		return err
	}
	svc, err := intake.New(intake.Options{
		Writer: w, Topics: b.Topics, Catalog: b.Catalog, Verifier: b.Verifier, Redis: rdb,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	ad, err := adapters.New(adapters.Options{
		Dir: dir, Catalog: b.Catalog, Intake: svc, Verifier: b.Verifier,
		Redis: rdb, Cases: casestore.New(rdb, b.Catalog.DistrictCodes()),
		Brokers: b.Config.KafkaBrokers, Topics: b.Topics, Writer: w, Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	ad.Routes(mux)
	return b.Run(ctx, mux, ad.Run)
}
