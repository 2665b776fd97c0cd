// Command live runs cityhub's websocket gateway as its own process. It reads
// the snapshots from the Redis that the ruler and dispatch write, and
// follows city.alerts.v1 and city.cases.v1 itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	frontendstub "github.com/cityhub/cityhub/frontend-stub"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/live"
	"github.com/cityhub/cityhub/services/live/snapshot"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/daemon"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	fs := flag.NewFlagSet("live", flag.ExitOnError)
	var origins []string
	var pages bool
	config.ListVar(fs, &origins, "origins", "CITYHUB_ALLOWED_ORIGINS", "", "origins allowed to open the websocket, e.g. https://screen.city.example")
	fs.BoolVar(&pages, "pages", true, "serve the wall screen")
	b, err := daemon.Setup("live", fs, os.Args[1:])
	if err != nil {
		return err
	}
	defer b.Close()
	rdb, err := b.Redis()
	if err != nil {
		return err
	}
	alerts, err := alertstate.New(alertstate.Options{Client: rdb})
	if err != nil {
		return err
	}
	opts := live.Options{
		Brokers: b.Config.KafkaBrokers, Topics: b.Topics, Verifier: b.Verifier,
		AllowedOrigins: origins,
		Snapshot:       snapshot.Stores{Alerts: alerts, Cases: casestore.New(rdb, b.Catalog.DistrictCodes())},
		Catalog:        b.Catalog, Logger: b.Logger, Registerer: b.Registry,
	}
	if pages {
		opts.Frontend = frontendstub.FS
	}
	gw, err := live.New(opts)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	gw.Routes(mux)
	return b.Run(ctx, mux, gw.Run)
}
