// Package hub composes every cityhub service in one process: intake, the
// ruler, dispatch and the live gateway share one HTTP listener, one Kafka
// writer, one Redis client and one metrics registry. With no external
// servers given it embeds Kafka (kfake, its log under the data directory)
// and Redis (miniredis, in memory) and, because Kafka is the record,
// rebuilds the Redis state from the log on start.
package hub

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	frontendstub "github.com/cityhub/cityhub/frontend-stub"
	"github.com/cityhub/cityhub/services/cityhub/embedded"
	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/adapters"
	"github.com/cityhub/cityhub/services/live"
	"github.com/cityhub/cityhub/services/live/snapshot"
	"github.com/cityhub/cityhub/services/notify"
	"github.com/cityhub/cityhub/services/notify/ack"
	notifyconfig "github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/health"
	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/serve"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/workcal"
	"github.com/cityhub/cityhub/services/ruler"
)

// Options configures Run.
type Options struct {
	// HTTPAddr is where every service listens; ":8080" when empty.
	HTTPAddr string
	// RulesDir holds catalog.yaml and packs/; "rules" when empty.
	RulesDir string
	// DataDir holds the embedded Kafka log and the token signing key;
	// ".cityhub" when empty.
	DataDir string
	// KafkaBrokers, when set, replace the embedded Kafka.
	KafkaBrokers []string
	// KafkaAddr is where the embedded Kafka listens; "127.0.0.1:9092" when empty.
	KafkaAddr string
	// RedisURL, when set, replaces the embedded Redis.
	RedisURL string
	// RedisAddr is where the embedded Redis listens; "127.0.0.1:6379" when empty.
	RedisAddr string
	// AllowedOrigins may open the live websocket; the hub's own
	// http://localhost:PORT and http://127.0.0.1:PORT are always allowed.
	AllowedOrigins []string
	// TopicPrefix is prepended to every topic name.
	TopicPrefix string
	// Frontend serves the pages; the embedded copy when nil.
	Frontend fs.FS
	Logger   *slog.Logger
	// OnReady is called once every service runs.
	OnReady func(Info)
	// ReloadRules, when set, reloads the rule packs on every value
	// received; the main passes SIGHUP.
	ReloadRules <-chan os.Signal
	// NoDevSignIn turns off the console's dev sign-in, which a hub with an
	// embedded Kafka or Redis otherwise offers to loopback clients.
	NoDevSignIn bool
	// NotifyLive sends notifications through their receivers even when
	// the hub runs its embedded Kafka or Redis, which otherwise keeps them
	// in the dev inbox (/dev/inbox).
	NotifyLive bool
	// MQTTBroker, when set, is the MQTT broker the bridge subscribes to
	// (as MQTTUsername with MQTTPassword) instead of the embedded one,
	// which listens on MQTTAddr ("127.0.0.1:1883" when empty). Either
	// runs only with a device registry, RulesDir/adapters/devices.yaml.
	MQTTBroker, MQTTUsername, MQTTPassword string
	MQTTAddr                               string
}

// Info says where a running hub can be reached.
type Info struct {
	// URL is the base URL of the HTTP listener, e.g. http://127.0.0.1:8080.
	URL          string
	KafkaBrokers []string
	RedisURL     string
	// Embedded says which of Kafka and Redis run inside the process.
	EmbeddedKafka, EmbeddedRedis bool
	// DataDir holds the signing key that "cityhub token" uses.
	DataDir string
	// DevSignIn says whether the console offers the dev sign-in.
	DevSignIn bool
	// DevInbox says whether notifications wait in /dev/inbox rather than
	// going out.
	DevInbox bool
	// MQTTAddr is where the embedded MQTT broker listens for devices;
	// empty when there is none.
	MQTTAddr string
	// Rebuilt and RebuiltAlerts count the cases and alerts restored into
	// the embedded Redis from the log on start.
	Rebuilt, RebuiltAlerts int
}

func (o *Options) defaults() {
	if o.HTTPAddr == "" {
		o.HTTPAddr = ":8080"
	}
	if o.RulesDir == "" {
		o.RulesDir = "rules"
	}
	if o.DataDir == "" {
		o.DataDir = ".cityhub"
	}
	if o.KafkaAddr == "" {
		o.KafkaAddr = "127.0.0.1:9092"
	}
	if o.RedisAddr == "" {
		o.RedisAddr = "127.0.0.1:6379"
	}
	if o.MQTTAddr == "" {
		o.MQTTAddr = "127.0.0.1:1883"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Frontend == nil {
		o.Frontend = frontendstub.FS
	}
}

// Run starts the hub and serves until ctx ends, then stops every service
// and the embedded servers. It returns nil after a clean shutdown.
func Run(ctx context.Context, opts Options) error {
	opts.defaults()
	cat, err := catalog.Load(filepath.Join(opts.RulesDir, "catalog.yaml"))
	if err != nil {
		return err
	}
	key, err := auth.LoadOrCreateKey(opts.DataDir)
	if err != nil {
		return err
	}
	verifier, err := auth.NewVerifier(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	verifier.SetDirectory(cat)
	info := Info{DataDir: opts.DataDir}
	infra, err := startInfra(ctx, opts, &info)
	if err != nil {
		return err
	}
	defer infra.close()
	svcs, err := newServices(opts, infra, cat, verifier)
	if err != nil {
		return err
	}
	defer svcs.writer.Close()
	if info.EmbeddedRedis {
		// The embedded Redis starts empty; the log has every case and
		// alert. Replaying takes as long as the log is long, so only ctx
		// bounds it.
		if info.Rebuilt, info.RebuiltAlerts, err = svcs.rebuild(ctx, infra); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		return err
	}
	info.URL = "http://" + hostPort(ln.Addr())
	origins := append([]string{
		"http://localhost:" + portOf(ln.Addr()),
		"http://127.0.0.1:" + portOf(ln.Addr()),
	}, opts.AllowedOrigins...)
	gw, err := live.New(live.Options{
		Brokers: infra.brokers, Topics: infra.topics, Verifier: verifier, AllowedOrigins: origins,
		Snapshot: snapshot.Stores{Alerts: svcs.ruler.Store(), Cases: svcs.dispatch.Store()},
		Frontend: opts.Frontend, Catalog: cat, Logger: opts.Logger, Registerer: svcs.reg,
	})
	if err != nil {
		ln.Close()
		return err
	}
	nt, err := newNotify(opts, info, infra, svcs, cat, verifier, ack.DeriveKey(key.Seed()))
	if err != nil {
		ln.Close()
		return err
	}
	ad, err := adapters.New(adapters.Options{
		Dir: filepath.Join(opts.RulesDir, "adapters"), Catalog: cat, Intake: svcs.intake, Verifier: verifier,
		Redis: infra.rdb, Cases: svcs.dispatch.Store(), Brokers: infra.brokers, Topics: infra.topics, Writer: svcs.writer,
		Logger: opts.Logger, Registerer: svcs.reg,
	})
	if err != nil {
		ln.Close()
		return err
	}
	devices, err := newIoT(opts, svcs, infra, cat, &info)
	if err != nil {
		ln.Close()
		return err
	}
	if devices != nil {
		defer devices.close()
	}
	mux := svcs.routes(gw, infra, verifier, devices)
	ad.Routes(mux)
	newDevSignIn(key, cat, info, opts.Logger).routes(mux)
	if nt != nil {
		nt.Routes(mux)
		info.DevInbox = (info.EmbeddedKafka || info.EmbeddedRedis) && !opts.NotifyLive
		(&devInbox{enabled: info.DevInbox, inbox: nt.Inbox()}).routes(mux)
	}

	g, gctx := errgroup.WithContext(ctx)
	// Tokens follow the catalog: a department or district removed from it
	// loses access within a watch interval.
	g.Go(func() error {
		return catalog.Watch(gctx, filepath.Join(opts.RulesDir, "catalog.yaml"), 0, opts.Logger, func(c *catalog.Catalog) { verifier.SetDirectory(c) })
	})
	g.Go(func() error { return svcs.ruler.Run(gctx) })
	g.Go(func() error { return svcs.dispatch.Run(gctx) })
	if nt != nil {
		g.Go(func() error { return nt.Run(gctx) })
	}
	g.Go(func() error { return ad.Run(gctx) })
	if devices != nil {
		g.Go(func() error { return devices.run(gctx) })
	}
	g.Go(func() error { return gw.Run(gctx) })
	g.Go(func() error { return serve.Run(gctx, ln, mux, serve.Options{Logger: opts.Logger}) })
	if opts.OnReady != nil {
		// Ready means a subscriber can attach: wait for the gateway.
		select {
		case <-gw.Opened():
			opts.OnReady(info)
		case <-gctx.Done():
		}
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return err
}

// newNotify builds the notify service from rules/notify.yaml, or returns
// nil when the rules have none. A hub on embedded servers keeps every
// message in the dev inbox unless opts.NotifyLive.
func newNotify(opts Options, info Info, in *infra, svcs *services, cat *catalog.Catalog, verifier *auth.Verifier, ackKey []byte) (*notify.Service, error) {
	path := filepath.Join(opts.RulesDir, "notify.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		opts.Logger.Info("no notify.yaml: notifications are off", "path", path)
		return nil, nil
	}
	cfg, err := notifyconfig.Load(path, cat)
	if err != nil {
		return nil, err
	}
	cal, err := workcal.FromCatalog(cat.WorkCalendar())
	if err != nil {
		return nil, err
	}
	return notify.New(notify.Options{
		Brokers: in.brokers, Topics: in.topics, Redis: in.rdb, Writer: svcs.writer,
		Config: cfg, ConfigPath: path, Catalog: cat, Calendar: cal, Cases: svcs.dispatch.Cases(), Verifier: verifier,
		BaseURL: info.URL, AckKey: ackKey, Dev: (info.EmbeddedKafka || info.EmbeddedRedis) && !opts.NotifyLive,
		Logger: opts.Logger, Registerer: svcs.reg,
	})
}

// infra is the Kafka and Redis the hub runs on, embedded or not.
type infra struct {
	brokers []string
	topics  stream.Topics
	rdb     redis.UniversalClient
	closers []func()
}

// close stops what startInfra started, the last started first.
func (in *infra) close() {
	for i := len(in.closers) - 1; i >= 0; i-- {
		in.closers[i]()
	}
}

// startInfra starts the embedded Kafka and Redis that opts does not
// replace, connects to both, creates the topics and notes in info what
// runs where.
func startInfra(ctx context.Context, opts Options, info *Info) (_ *infra, err error) {
	in := &infra{brokers: opts.KafkaBrokers, topics: stream.DefaultTopics(opts.TopicPrefix)}
	defer func() {
		if err != nil {
			in.close()
		}
	}()
	if len(in.brokers) == 0 {
		k, err := embedded.StartKafka(opts.KafkaAddr, filepath.Join(opts.DataDir, "kafka"))
		if err != nil {
			return nil, err
		}
		in.closers = append(in.closers, k.Close)
		in.brokers = k.Brokers()
		info.EmbeddedKafka = true
	}
	info.KafkaBrokers = in.brokers
	redisURL := opts.RedisURL
	if redisURL == "" {
		r, err := embedded.StartRedis(opts.RedisAddr)
		if err != nil {
			return nil, err
		}
		in.closers = append(in.closers, r.Close)
		redisURL = r.URL()
		info.EmbeddedRedis = true
	}
	info.RedisURL = redisURL
	info.DevSignIn = (info.EmbeddedKafka || info.EmbeddedRedis) && !opts.NoDevSignIn
	if in.rdb, err = redisclient.New(redisURL); err != nil {
		return nil, err
	}
	in.closers = append(in.closers, func() { in.rdb.Close() })
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := stream.EnsureTopics(setupCtx, in.brokers, 3, 1, in.topics.All()...); err != nil {
		return nil, fmt.Errorf("kafka at %v: %w", in.brokers, err)
	}
	if err := in.rdb.Ping(setupCtx).Err(); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return in, nil
}

// services are the hub's services that do not depend on the listener, with
// what they share.
type services struct {
	reg      *prometheus.Registry
	writer   *stream.Writer
	intake   *intake.Service
	ruler    *ruler.Ruler
	dispatch *dispatch.Service
}

func newServices(opts Options, in *infra, cat *catalog.Catalog, verifier *auth.Verifier) (_ *services, err error) {
	s := &services{reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.writer, err = stream.NewWriter(stream.WriterOptions{Brokers: in.brokers, Logger: opts.Logger}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.writer.Close()
		}
	}()
	if s.intake, err = intake.New(intake.Options{Writer: s.writer, Topics: in.topics, Catalog: cat, Verifier: verifier, Redis: in.rdb, Logger: opts.Logger, Registerer: s.reg}); err != nil {
		return nil, err
	}
	if s.ruler, err = ruler.New(ruler.Options{
		Brokers: in.brokers, Topics: in.topics, Redis: in.rdb, Writer: s.writer,
		PacksDir: filepath.Join(opts.RulesDir, "packs"), Catalog: cat, Logger: opts.Logger, Registerer: s.reg,
		Verifier: verifier, Reload: opts.ReloadRules,
	}); err != nil {
		return nil, err
	}
	if s.dispatch, err = dispatch.New(dispatch.Options{
		Brokers: in.brokers, Topics: in.topics, Redis: in.rdb, Writer: s.writer,
		Catalog: cat, Verifier: verifier, Logger: opts.Logger, Registerer: s.reg,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// rebuild replays the cases and the alerts from the log into Redis.
func (s *services) rebuild(ctx context.Context, in *infra) (cases, alerts int, err error) {
	if cases, err = dispatch.Rebuild(ctx, in.brokers, in.topics.Cases, s.dispatch.Store()); err != nil {
		return 0, 0, fmt.Errorf("rebuild cases from %s: %w", in.topics.Cases, err)
	}
	if alerts, err = s.ruler.Rebuild(ctx); err != nil {
		return 0, 0, err
	}
	return cases, alerts, nil
}

// routes is the one listener's mux: health, metrics and every service.
func (s *services) routes(gw *live.Gateway, in *infra, verifier *auth.Verifier, devices *iot) *http.ServeMux {
	mux := http.NewServeMux()
	checks := health.New()
	if devices != nil {
		checks.Add("mqtt", devices.bridge.Check)
	}
	checks.Add("redis", func(ctx context.Context) error { return in.rdb.Ping(ctx).Err() })
	checks.Add("live", func(context.Context) error {
		if !gw.Ready() {
			return errors.New("the live feed is not following Kafka yet")
		}
		return nil
	})
	checks.Routes(mux, func(r *http.Request) bool { return verifier.Allows(r, auth.RoleCommander, auth.RoleViewer) })
	// A scraper is given a long-lived viewer token.
	mux.Handle("GET /metrics", verifier.Require(auth.RoleCommander, auth.RoleViewer)(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	s.intake.Routes(mux)
	s.dispatch.Routes(mux)
	gw.Routes(mux)
	s.ruler.Routes(mux)
	return mux
}

func hostPort(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if host == "::" || host == "0.0.0.0" || host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}
