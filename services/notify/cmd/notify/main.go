// Command notify runs cityhub's notification service on its own: it
// follows the case and alert changes, decides from notify.yaml who is told
// what, delivers through the receivers, and serves the acknowledgement
// links, whose actions it stores and publishes like dispatch.
//
//	notify [flags]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/notify"
	notifyconfig "github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/daemon"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/workcal"
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
	var path, baseURL, ackKeyFile string
	config.StringVar(fs, &path, "notify-config", "CITYHUB_NOTIFY_CONFIG", "rules/notify.yaml", "the notification routes, receivers and rosters")
	config.StringVar(fs, &baseURL, "base-url", "CITYHUB_BASE_URL", "", "the hub's address as people reach it, for the links in messages")
	config.StringVar(fs, &ackKeyFile, "ack-key-file", "CITYHUB_ACK_KEY_FILE", "", "a file of at least 32 secret bytes that signs the acknowledgement links (none: messages carry no links)")
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
	// The case service answers who may see a case's notifications, and
	// takes the actions of acknowledgement links, publishing them as
	// dispatch does.
	cs, err := cases.New(cases.Options{
		Store: casestore.New(rdb, b.Catalog.DistrictCodes()), Catalog: b.Catalog, Calendar: cal,
		Publisher: cases.PublisherFunc(func(ctx context.Context, change *cityhubv1.CaseChange) error {
			m, err := stream.Marshal(b.Topics.Cases, change.GetCase().GetDistrict(), change)
			if err != nil {
				return err
			}
			return w.Write(ctx, m)
		}),
	})
	if err != nil {
		return err
	}
	var ackKey []byte
	if ackKeyFile != "" {
		if ackKey, err = os.ReadFile(ackKeyFile); err != nil {
			return err
		}
	} else {
		b.Logger.Warn("no --ack-key-file: messages to people carry no acknowledgement link")
	}
	svc, err := notify.New(notify.Options{
		Brokers: b.Config.KafkaBrokers, Topics: b.Topics, Redis: rdb, Writer: w,
		Config: cfg, ConfigPath: path, Catalog: b.Catalog, Calendar: cal, Cases: cs, Verifier: b.Verifier, BaseURL: baseURL, AckKey: ackKey,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	svc.Routes(mux)
	return b.Run(ctx, mux, svc.Run)
}
