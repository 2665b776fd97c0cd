// Command dispatch runs cityhub's case service on its own: it consumes
// alerts, keeps cases in Redis and serves the dispatcher API.
//
//	dispatch [flags]           run the service
//	dispatch rebuild [flags]   restore the cases in Redis from city.cases.v1, then exit
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/daemon"
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
	fs := flag.NewFlagSet("dispatch", flag.ExitOnError)
	var group string
	config.StringVar(fs, &group, "group", "CITYHUB_DISPATCH_GROUP", dispatch.DefaultGroup, "Kafka consumer group on the alerts topic")
	b, err := daemon.Setup("dispatch", fs, args)
	if err != nil {
		return err
	}
	defer b.Close()
	rdb, err := b.Redis()
	if err != nil {
		return err
	}
	if rebuild {
		n, err := dispatch.Rebuild(ctx, b.Config.KafkaBrokers, b.Topics.Cases, casestore.New(rdb, b.Catalog.DistrictCodes()))
		if err != nil {
			return err
		}
		b.Logger.Info("rebuilt cases from Kafka", "changes", n)
		return nil
	}
	w, err := b.Writer()
	if err != nil {
		return err
	}
	svc, err := dispatch.New(dispatch.Options{
		Brokers: b.Config.KafkaBrokers, Topics: b.Topics, Group: group,
		Redis: rdb, Writer: w, Catalog: b.Catalog, Verifier: b.Verifier,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	return b.Run(ctx, mux, svc.Run)
}
