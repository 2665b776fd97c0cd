// Command cityhub runs the whole hub in one process, mints tokens for it,
// simulates a city's events against it, and drives it at stepped rates to
// measure it end to end.
//
//	cityhub [run] [--http :8080] [--rules rules] [--data .cityhub] [--no-dev-signin] [--notify-live]
//	cityhub token [--data .cityhub] [--rules rules] --role ROLE [--dept D] [--districts a,b] [--sources s,t] [--ttl 8h]
//	cityhub simulate [--url http://localhost:8080] [--rate 5] [--duration 1m]
//	cityhub load [--url http://localhost:8080] [--mix city|storm|day] [--rates 5000,10000,20000,40000] [--step 20s] [--json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/cityhub/load"
	"github.com/cityhub/cityhub/services/cityhub/simulate"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "cityhub:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runHub(ctx, args, stdout, stderr)
	case "token":
		return token(args, stdout, stderr)
	case "simulate":
		return runSimulate(ctx, args, stdout, stderr)
	case "load":
		return runLoad(ctx, args, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want run, token, simulate or load)", cmd)
}

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cityhub run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o hub.Options
	var logLevel, logFormat string
	fs.StringVar(&o.HTTPAddr, "http", ":8080", "HTTP listen address of every service")
	fs.StringVar(&o.RulesDir, "rules", "rules", "directory with catalog.yaml and packs/")
	fs.StringVar(&o.DataDir, "data", ".cityhub", "directory for the embedded Kafka log and the token signing key")
	config.ListVar(fs, &o.KafkaBrokers, "kafka-brokers", "CITYHUB_KAFKA_BROKERS", "", "use these Kafka brokers instead of the embedded one")
	config.StringVar(fs, &o.RedisURL, "redis-url", "CITYHUB_REDIS_URL", "", "use this Redis instead of the embedded one")
	config.ListVar(fs, &o.AllowedOrigins, "origins", "CITYHUB_ALLOWED_ORIGINS", "", "more origins allowed to open the live websocket")
	fs.BoolVar(&o.NoDevSignIn, "no-dev-signin", false, "do not offer the console's dev sign-in (otherwise on with an embedded Kafka or Redis, for loopback clients only)")
	config.StringVar(fs, &o.KafkaAddr, "kafka-addr", "CITYHUB_KAFKA_ADDR", "127.0.0.1:9092", "listen address of the embedded Kafka (:0 picks a free port, so that two hubs can share a machine)")
	config.StringVar(fs, &o.RedisAddr, "redis-addr", "CITYHUB_REDIS_ADDR", "127.0.0.1:6379", "listen address of the embedded Redis (:0 picks a free port)")
	fs.StringVar(&o.MQTTAddr, "mqtt", "127.0.0.1:1883", "listen address of the embedded MQTT broker for the devices of rules/adapters/devices.yaml (:0 picks a free port)")
	config.StringVar(fs, &o.MQTTBroker, "mqtt-broker", "CITYHUB_MQTT_BROKER", "", "bridge this MQTT broker (host:port) instead of running one")
	config.StringVar(fs, &o.MQTTUsername, "mqtt-username", "CITYHUB_MQTT_USERNAME", "", "the bridge's user name on --mqtt-broker")
	o.MQTTPassword = os.Getenv("CITYHUB_MQTT_PASSWORD") // never a flag: it would show in the process list
	fs.BoolVar(&o.NotifyLive, "notify-live", false, "send notifications through their receivers even on embedded servers (otherwise they wait in the dev inbox, /dev/inbox)")
	config.StringVar(fs, &logLevel, "log-level", "CITYHUB_LOG_LEVEL", "info", "log level")
	config.StringVar(fs, &logFormat, "log-format", "CITYHUB_LOG_FORMAT", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := logging.New(stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	o.Logger = log
	o.OnReady = func(info hub.Info) { banner(stdout, info) }
	// SIGHUP reloads the rule packs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	o.ReloadRules = hup
	if err := hub.Run(ctx, o); err != nil {
		return err
	}
	log.Info("cityhub stopped")
	return nil
}

// banner tells the person who started the hub where everything is. The
// wall-screen link carries a viewer token in its fragment, which browsers
// never send to a server; it goes to the terminal, never to the log.
func banner(w io.Writer, info hub.Info) {
	fmt.Fprintf(w, "\ncityhub is running at %s\n", info.URL)
	if info.EmbeddedKafka {
		fmt.Fprintf(w, "  Kafka  embedded at %s, its log kept in %s/kafka\n", info.KafkaBrokers[0], info.DataDir)
	} else {
		fmt.Fprintf(w, "  Kafka  %v\n", info.KafkaBrokers)
	}
	if info.EmbeddedRedis {
		fmt.Fprintf(w, "  Redis  embedded at %s, in memory only: %d cases and %d alerts rebuilt from the Kafka log\n", info.RedisURL, info.Rebuilt, info.RebuiltAlerts)
	} else {
		fmt.Fprintf(w, "  Redis  %s\n", info.RedisURL)
	}
	if viewer, err := mint(info.DataDir, nil, auth.Principal{Subject: "wall-screen", Role: auth.RoleViewer}, 12*time.Hour); err == nil {
		fmt.Fprintf(w, "\n  Wall screen (大屏):  %s/#token=%s\n", info.URL, viewer)
	}
	if info.DevSignIn {
		fmt.Fprintf(w, "  Console (派遣台):    %s/console (dev sign-in from this machine, or paste a token)\n", info.URL)
	} else {
		fmt.Fprintf(w, "  Console (派遣台):    %s/console (sign in with a token)\n", info.URL)
	}
	fmt.Fprintf(w, "  Metrics:            %s/metrics (with a viewer or commander token)\n", info.URL)
	if info.DevInbox {
		fmt.Fprintf(w, "  Dev inbox:          %s/dev/inbox (the notifications this hub would have sent)\n", info.URL)
	}
	if info.MQTTAddr != "" {
		host, port, _ := net.SplitHostPort(info.MQTTAddr)
		fmt.Fprintf(w, "  MQTT broker:        %s (devices of rules/adapters/devices.yaml; their token is the user name)\n", info.MQTTAddr)
		fmt.Fprintf(w, "    mosquitto_pub -h %s -p %s -q 1 -u TOKEN-WL-XH-TIANPING-01 -t v1/devices/me/telemetry -m '{\"depth\": 35}'\n", host, port)
	}
	fmt.Fprintf(w, "\n  A token for any role:  go run ./services/cityhub/cmd/cityhub token --role commander\n")
	fmt.Fprintf(w, "  Simulated city events: go run ./services/cityhub/cmd/cityhub simulate --rate 5\n\n")
}

// mint signs a token for p with the key under dataDir, refusing a
// department or district that cat (when not nil) does not have.
func mint(dataDir string, cat *catalog.Catalog, p auth.Principal, ttl time.Duration) (string, error) {
	key, err := auth.LoadOrCreateKey(dataDir)
	if err != nil {
		return "", err
	}
	s := auth.NewSigner(key)
	if cat != nil {
		s = s.WithDirectory(cat)
	}
	return s.Sign(p, ttl)
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cityhub token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dataDir, rulesDir, role, dept, sub string
	var districts, sources []string
	var ttl time.Duration
	fs.StringVar(&dataDir, "data", ".cityhub", "data directory of the hub that will accept the token")
	fs.StringVar(&rulesDir, "rules", "rules", "directory with catalog.yaml, whose departments and districts the token may name")
	fs.StringVar(&role, "role", "", "commander, dispatcher, department, viewer or source")
	fs.StringVar(&dept, "dept", "", "department code (required for --role department)")
	config.ListVar(fs, &districts, "districts", "CITYHUB_TOKEN_DISTRICTS", "", "district codes the token is scoped to, comma-separated")
	config.ListVar(fs, &sources, "sources", "CITYHUB_TOKEN_SOURCES", "", "sources a source token speaks for, comma-separated (required for --role source)")
	fs.StringVar(&sub, "sub", "", "subject: who the token names (default: the role)")
	fs.DurationVar(&ttl, "ttl", 8*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := auth.ParseRole(role)
	if err != nil {
		return err
	}
	if sub == "" {
		sub = role
		if dept != "" {
			sub += "-" + dept
		}
	}
	cat, err := catalog.Load(filepath.Join(rulesDir, "catalog.yaml"))
	if err != nil {
		return err
	}
	tok, err := mint(dataDir, cat, auth.Principal{Subject: sub, Role: r, Dept: dept, Districts: districts, Sources: sources}, ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "a %s token for %q, valid for %s, accepted by a hub started with --data %s:\n", r, sub, ttl, dataDir)
	fmt.Fprintln(stdout, tok)
	return nil
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cityhub simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o simulate.Options
	var dataDir, rulesDir, tok string
	fs.StringVar(&o.URL, "url", "http://localhost:8080", "base URL of the hub")
	fs.Float64Var(&o.Rate, "rate", 5, "events per second")
	fs.DurationVar(&o.Duration, "duration", time.Minute, "how long to run (0: until interrupted)")
	fs.Int64Var(&o.Seed, "seed", 0, "random seed (0: from the clock)")
	fs.StringVar(&dataDir, "data", ".cityhub", "data directory of the hub, for a source token")
	fs.StringVar(&rulesDir, "rules", "rules", "directory with catalog.yaml")
	config.StringVar(fs, &tok, "token", "CITYHUB_TOKEN", "", "source token (default: minted from --data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if tok == "" {
		cat, err := catalog.Load(filepath.Join(rulesDir, "catalog.yaml"))
		if err != nil {
			return err
		}
		p := auth.Principal{Subject: "simulator", Role: auth.RoleSource, Sources: simulate.NewGenerator(cat, 0).Sources()}
		if tok, err = mint(dataDir, cat, p, 24*time.Hour); err != nil {
			return err
		}
	}
	o.Token = tok
	o.CatalogPath = filepath.Join(rulesDir, "catalog.yaml")
	o.Progress = stdout
	return simulate.Run(ctx, o)
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cityhub load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o load.Options
	var dataDir, rulesDir, mix string
	var asJSON bool
	fs.StringVar(&o.URL, "url", "http://localhost:8080", "base URL of the hub")
	fs.StringVar(&mix, "mix", "city", "events to send: city (the simulator's rainstorm), storm (every event type alike, as the ruler benchmark's mix=uniform) or day (an ordinary day, as its mix=city)")
	fs.Func("rates", "target rates of the steps in events a second, comma-separated (default 5000,10000,20000,40000)", func(s string) error {
		o.Rates = nil
		for _, f := range config.List(s) {
			r, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return fmt.Errorf("rate %q: %w", f, err)
			}
			o.Rates = append(o.Rates, r)
		}
		return nil
	})
	fs.DurationVar(&o.Step, "step", 20*time.Second, "how long each rate is held")
	fs.IntVar(&o.Conns, "conns", 8, "keep-alive connections posting events")
	fs.IntVar(&o.BatchSize, "batch", 1000, "most events in one POST (intake takes up to 1,000)")
	fs.Float64Var(&o.MarkerRate, "markers", 10, "marker events a second, timed to their alert and case")
	fs.StringVar(&o.MarkerDistrict, "marker-district", "", "district of the markers (default: the catalog's first)")
	fs.BoolVar(&o.WatchAll, "watch-all", false, "follow every alert and case on the websocket, not only the markers' district")
	fs.Func("server-pid", "a local process whose CPU is counted beside the hub's, e.g. its redis-server (repeatable; Linux)", func(s string) error {
		pid, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		o.ServerPIDs = append(o.ServerPIDs, pid)
		return nil
	})
	fs.Int64Var(&o.Seed, "seed", 0, "random seed of the mix (0: from the clock)")
	fs.StringVar(&o.Origin, "origin", "", "Origin of the websocket handshake (default: the hub's URL, which the hub allows)")
	fs.StringVar(&dataDir, "data", ".cityhub", "data directory of the hub, for tokens when none are given")
	fs.StringVar(&rulesDir, "rules", "rules", "directory with catalog.yaml")
	config.StringVar(fs, &o.Token, "token", "CITYHUB_TOKEN", "", "source token for the events (default: minted from --data)")
	config.StringVar(fs, &o.WatchToken, "watch-token", "CITYHUB_WATCH_TOKEN", "", "commander or viewer token for the websocket and /metrics (default: minted from --data)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout (the table goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Rates == nil {
		o.Rates = []float64{5000, 10000, 20000, 40000}
	}
	m, err := load.ParseMix(mix)
	if err != nil {
		return err
	}
	o.Mix = m
	o.CatalogPath = filepath.Join(rulesDir, "catalog.yaml")
	if o.Token == "" || o.WatchToken == "" {
		cat, err := catalog.Load(o.CatalogPath)
		if err != nil {
			return err
		}
		if o.Token == "" {
			sources, err := load.Sources(o.CatalogPath, m)
			if err != nil {
				return err
			}
			if o.Token, err = mint(dataDir, cat, auth.Principal{Subject: "load", Role: auth.RoleSource, Sources: sources}, 24*time.Hour); err != nil {
				return err
			}
		}
		if o.WatchToken == "" {
			if o.WatchToken, err = mint(dataDir, cat, auth.Principal{Subject: "load", Role: auth.RoleCommander}, 24*time.Hour); err != nil {
				return err
			}
		}
	}
	table := stdout
	if asJSON {
		table = stderr
	}
	if o.Logger, err = logging.New(stderr, "warn", "text"); err != nil {
		return err
	}
	servers := len(o.ServerPIDs) > 0
	if err := load.WriteHeader(table, servers); err != nil {
		return err
	}
	o.OnStep = func(s load.Step) { s.WriteRow(table, servers) }
	rep, err := load.Run(ctx, o)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil // interrupted: what was measured so far is the report
	}
	if len(rep.Steps) > 0 {
		rep.WriteSummary(table)
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil {
				return errors.Join(err, jerr)
			}
		}
	}
	return err
}
