// Command notify runs cityhub's notification service on its own: it
// follows the case and alert changes, decides from notify.yaml who is told
// what, and delivers through the receivers.
//
//	notify [flags]
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

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/workcal"
	"github.com/cityhub/cityhub/services/notify"
	notifyconfig "github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notify", flag.ExitOnError)
	var path, baseURL string
	config.StringVar(fs, &path, "notify-config", "CITYHUB_NOTIFY_CONFIG", "rules/notify.yaml", "the notification routes, receivers and rosters")
	config.StringVar(fs, &baseURL, "base-url", "CITYHUB_BASE_URL", "", "the hub's address as people reach it, for the links in messages")
	b, err := daemon.Setup("notify", fs, args)
	if err != nil {
		return err
	}
	defer b.Close()
	cfg, err := notifyconfig.Load(path, b.Catalog)
	if err != nil {
		return err
	}
	cal, err := workcal.FromCatalog(b.Catalog.WorkCalendar())
	if err != nil {
		return err
	}
	rdb, err := b.Redis()
	if err != nil {
		return err
	}
	w, err := b.Writer()
	if err != nil {
		return err
	}
	// The case service answers who may see a case's notifications; notify
	// changes no case through it, so it publishes nothing.
	cs, err := cases.New(cases.Options{
		Store: casestore.New(rdb, b.Catalog.DistrictCodes()), Catalog: b.Catalog, Calendar: cal,
		Publisher: cases.PublisherFunc(func(context.Context, *cityhubv1.CaseChange) error {
			return errors.New("notify publishes no case changes")
		}),
	})
	if err != nil {
		return err
	}
	svc, err := notify.New(notify.Options{
		Brokers: b.Config.KafkaBrokers, Topics: b.Topics, Redis: rdb, Writer: w,
		Config: cfg, Catalog: b.Catalog, Calendar: cal, Cases: cs, Verifier: b.Verifier, BaseURL: baseURL,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	return b.Run(ctx, mux, svc.Run)
}
