package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/platform/view"
)

// Snapshotter serves what is open now; the dispatch and ruler stores
// implement it. Its methods must be safe for concurrent use.
type Snapshotter interface {
	// FiringAlerts returns every alert that is firing.
	FiringAlerts(ctx context.Context) ([]*cityhubv1.Alert, error)
	// OpenCases returns every case that is not closed or cancelled.
	OpenCases(ctx context.Context) ([]*cityhubv1.Case, error)
}

// Options configures a Gateway.
type Options struct {
	// Brokers are the Kafka brokers to follow Topics.Alerts and Topics.Cases on.
	Brokers []string
	// Topics names the topics; only Alerts and Cases are read.
	Topics stream.Topics
	// Verifier checks the tokens of clients.
	Verifier *auth.Verifier
	// AllowedOrigins are the exact origins (scheme://host, with :port
	// unless it is the scheme's default, as browsers send them) whose pages
	// may open the websocket.
	AllowedOrigins []string
	// Snapshot serves what is open when a client subscribes.
	Snapshot Snapshotter
	// Frontend holds the pages; nil serves none.
	Frontend fs.FS
	// Catalog is served to the pages and checks the names in filters; nil
	// serves none and checks nothing.
	Catalog *catalog.Catalog
	// Logger receives connection-level records; nil discards them.
	Logger *slog.Logger
	// Registerer takes the cityhub_live_ metrics and the followers'
	// cityhub_stream_follower_stalls_total; nil keeps them private.
	Registerer prometheus.Registerer
	// StallTimeout is how long a followed partition may deliver nothing
	// while messages wait before its reader is replaced;
	// stream.DefaultStallTimeout when zero.
	StallTimeout time.Duration
	// SubscribeBurst and SubscribeEvery bound how often one connection may
	// subscribe, since every subscription reads what is open now: up to
	// SubscribeBurst at once (DefaultSubscribeBurst when zero), then one per
	// SubscribeEvery (DefaultSubscribeEvery when zero). A subscribe beyond
	// that is answered with an error frame and changes nothing.
	SubscribeBurst int
	SubscribeEvery time.Duration
	// MaxSnapshots bounds the snapshots taken at once across every
	// connection, so that a crowd reconnecting after a restart queues
	// rather than piles onto Redis; DefaultMaxSnapshots when zero.
	MaxSnapshots int
}

// Defaults of the subscription bounds.
const (
	DefaultSubscribeBurst = 5
	DefaultSubscribeEvery = 2 * time.Second
	DefaultMaxSnapshots   = 8
)

// Timing and size limits of a connection.
const (
	maxFrameBytes   = 16 << 10
	defaultPongWait = 60 * time.Second
	defaultWrite    = 10 * time.Second
	defaultQueue    = 256
	snapshotTimeout = 10 * time.Second
	closeGrace      = time.Second
)

// Gateway is the live websocket gateway. Its methods are safe for
// concurrent use; Run is called once.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	hub      *hub
	tracker  *tracker
	origins  map[string]bool
	upgrader websocket.Upgrader

	pongWait, pingPeriod, writeWait time.Duration
	queueSize                       int
	// snapshots holds a token for each snapshot being taken.
	snapshots chan struct{}
	// beforeWrite, when set by a test, runs before each queued frame is
	// written, so that a test can hold a writer up.
	beforeWrite func(*auth.Principal)

	// opened is closed the first time the gateway takes subscribers.
	opened     chan struct{}
	openedOnce sync.Once

	mu      sync.Mutex
	started bool
	state   gatewayState
	epoch   *epoch
	conns   sync.WaitGroup // one per open connection
}

type gatewayState int

const (
	stateStarting gatewayState = iota // offsets not resolved yet: refuse
	stateReady
	stateStopped
)

// epoch is one run of the follower; the connections accepted during it are
// closed when it ends, with its code and reason. Each connection is told on
// a channel of its own, so that the writers' selects share no channel. Its
// fields are guarded by Gateway.mu.
type epoch struct {
	ended  bool
	code   int
	reason string
	conns  map[*conn]struct{}
}

// end marks e ended and tells each of its connections to close.
func (e *epoch) end(code int, reason string) {
	if e.ended {
		return
	}
	e.ended, e.code, e.reason = true, code, reason
	for c := range e.conns {
		c.stopCode, c.stopReason = code, reason
		close(c.stop)
	}
	clear(e.conns)
}

// join adds c to e, or tells c to close at once when e has ended.
func (g *Gateway) join(c *conn, e *epoch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.ended {
		c.stopCode, c.stopReason = e.code, e.reason
		close(c.stop)
		return
	}
	e.conns[c] = struct{}{}
}

func (g *Gateway) leave(c *conn, e *epoch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(e.conns, c)
}

// New checks opts and returns a Gateway; Run starts it and Routes serves it.
func New(opts Options) (*Gateway, error) {
	var errs []error
	if len(opts.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if opts.Topics.Alerts == "" || opts.Topics.Cases == "" {
		errs = append(errs, errors.New("the alerts and cases topics are required"))
	}
	if opts.Verifier == nil {
		errs = append(errs, errors.New("a token verifier is required"))
	}
	if opts.Snapshot == nil {
		errs = append(errs, errors.New("a snapshotter is required"))
	}
	if opts.StallTimeout < 0 || opts.SubscribeBurst < 0 || opts.SubscribeEvery < 0 || opts.MaxSnapshots < 0 {
		errs = append(errs, errors.New("the stall timeout and the subscription bounds cannot be negative"))
	}
	origins := make(map[string]bool)
	for _, o := range opts.AllowedOrigins {
		norm, err := parseOrigin(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		origins[norm] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.SubscribeBurst == 0 {
		opts.SubscribeBurst = DefaultSubscribeBurst
	}
	if opts.SubscribeEvery == 0 {
		opts.SubscribeEvery = DefaultSubscribeEvery
	}
	if opts.MaxSnapshots == 0 {
		opts.MaxSnapshots = DefaultMaxSnapshots
	}
	g := &Gateway{
		opened:     make(chan struct{}),
		snapshots:  make(chan struct{}, opts.MaxSnapshots),
		opts:       opts,
		log:        opts.Logger.With("component", "live"),
		metrics:    newMetrics(opts.Registerer),
		hub:        newHub(),
		tracker:    newTracker(),
		origins:    origins,
		pongWait:   defaultPongWait,
		pingPeriod: defaultPongWait * 9 / 10,
		writeWait:  defaultWrite,
		queueSize:  defaultQueue,
	}
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{subprotocol},
		// The handler has checked the origin already; this repeats the
		// check so that the upgrader can never fall back to its own.
		CheckOrigin: func(r *http.Request) bool {
			o := r.Header.Get("Origin")
			return o == "" || g.originAllowed(o)
		},
	}
	return g, nil
}

// parseOrigin checks that o is a bare scheme://host[:port] and returns it
// in lower case.
func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("allowed origin %q: want scheme://host[:port]", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func (g *Gateway) originAllowed(o string) bool { return g.origins[strings.ToLower(o)] }

// Run follows the alert and case topics and fans their changes out until
// ctx ends; then it closes every socket with a going-away frame, waits for
// the connections to end and returns nil. Websocket handshakes are refused
// with 503 until the start offsets are resolved. When following fails, the
// connections are closed with 1013 (they reconnect, and get a fresh
// snapshot once the gateway is ready again) and following starts anew.
func (g *Gateway) Run(ctx context.Context) error {
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return errors.New("live: Run called twice")
	}
	g.started = true
	g.mu.Unlock()

	defer g.stop()
	for attempt := 1; ; attempt++ {
		f, err := g.follow(ctx)
		if err != nil {
			return nil // ctx ended
		}
		g.tracker.reset() // the new follower starts at the end: what came before is in the snapshots
		e := g.open()
		err = f.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		g.metrics.restarts.Inc()
		g.log.Error("following the topics failed; starting again", "err", err)
		g.endEpoch(e, websocket.CloseTryAgainLater, "gateway restarting; reconnect")
		if sleep(ctx, backoff(attempt)) != nil {
			return nil
		}
	}
}

// follow resolves the start offsets, retrying until it succeeds or ctx ends.
func (g *Gateway) follow(ctx context.Context) (*stream.Follower, error) {
	for attempt := 1; ; attempt++ {
		f, err := stream.NewFollower(ctx, stream.FollowerOptions{
			Brokers:      g.opts.Brokers,
			Topics:       []string{g.opts.Topics.Alerts, g.opts.Topics.Cases},
			Handle:       g.handle,
			StallTimeout: g.opts.StallTimeout,
			Logger:       g.log,
			Registerer:   g.opts.Registerer,
		})
		if err == nil {
			return f, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		g.log.Warn("cannot follow the topics yet; retrying", "attempt", attempt, "err", err)
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, err
		}
	}
}

// open starts accepting connections for a new epoch.
func (g *Gateway) open() *epoch {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state = stateReady
	g.epoch = &epoch{conns: make(map[*conn]struct{})}
	g.openedOnce.Do(func() { close(g.opened) })
	return g.epoch
}

// endEpoch stops accepting connections and closes those of e.
func (g *Gateway) endEpoch(e *epoch, code int, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateReady {
		g.state = stateStarting
	}
	e.end(code, reason)
}

// stop refuses new connections, closes the open ones and waits for them.
func (g *Gateway) stop() {
	g.mu.Lock()
	g.state = stateStopped
	if g.epoch != nil {
		g.epoch.end(websocket.CloseGoingAway, "server shutting down")
	}
	g.mu.Unlock()
	g.conns.Wait()
}

// Ready reports whether the gateway takes subscriptions now: the start
// offsets of the delta feed are resolved and it is not shutting down.
func (g *Gateway) Ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state == stateReady
}

// Opened returns a channel that is closed the first time the gateway takes
// subscribers, for a caller that waits for that rather than polling Ready.
func (g *Gateway) Opened() <-chan struct{} { return g.opened }

// admit reserves a place for a new connection, or reports that the gateway
// is not ready to take one.
func (g *Gateway) admit() (*epoch, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateReady {
		return nil, false
	}
	g.conns.Add(1)
	return g.epoch, true
}

func backoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt-1, 8), 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// handle turns a Kafka message into a delta and fans it out. It runs on the
// follower's goroutines, one per partition, and never blocks. The changes
// of one item arrive on one partition (the key is the district), so they
// are handled in order.
func (g *Gateway) handle(m kafka.Message) {
	var d *delta
	var err error
	switch m.Topic {
	case g.opts.Topics.Alerts:
		d, err = g.decodeAlert(m)
	case g.opts.Topics.Cases:
		d, err = g.decodeCase(m)
	default:
		err = errors.New("unexpected topic")
	}
	if err != nil {
		g.metrics.undecodable.WithLabelValues(m.Topic).Inc()
		return
	}
	if prev, ok := g.tracker.advance(d.item); ok {
		d.prev = &prev
		d.removed = &message{b: encodeRemoved(d.stream, d.id, d.version), sent: g.metrics.sentRemoved}
	}
	g.metrics.deltas.WithLabelValues(d.stream).Inc()
	g.metrics.tracked.Set(float64(g.tracker.len()))
	g.hub.publish(d)
}

func (g *Gateway) decodeAlert(m kafka.Message) (*delta, error) {
	var a cityhubv1.Alert
	if err := stream.Unmarshal(m, &a); err != nil {
		return nil, err
	}
	if a.GetId() == "" {
		return nil, errors.New("alert without an id")
	}
	b, err := encodeDelta(frameAlert, a.GetVersion(), view.FromAlert(&a))
	if err != nil {
		return nil, err
	}
	it := alertItem(&a)
	return &delta{item: it, msg: &message{b: b, sent: g.metrics.sentAlert, updated: it.updated}}, nil
}

func (g *Gateway) decodeCase(m kafka.Message) (*delta, error) {
	var cc cityhubv1.CaseChange
	if err := stream.Unmarshal(m, &cc); err != nil {
		return nil, err
	}
	c := cc.GetCase()
	if c.GetId() == "" {
		return nil, errors.New("case change without a case id")
	}
	b, err := encodeDelta(frameCase, c.GetVersion(), view.FromCase(c))
	if err != nil {
		return nil, err
	}
	it := caseItem(c)
	return &delta{item: it, msg: &message{b: b, sent: g.metrics.sentCase, updated: it.updated}}, nil
}

// errorMessage is an error frame for one client.
func (g *Gateway) errorMessage(text string) *message {
	return &message{b: errorFrame(text), sent: g.metrics.sentError}
}

// snapshot returns the snapshot frames for a subscriber and the version of
// every item in them. Every open item it reads seeds the tracker.
func (g *Gateway) snapshot(ctx context.Context, p *auth.Principal, f filter) ([]*message, map[itemKey]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	select {
	case g.snapshots <- struct{}{}:
		defer func() { <-g.snapshots }()
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for a turn to take a snapshot: %w", ctx.Err())
	}
	var frames []*message
	var read []item
	seen := make(map[itemKey]int64)
	add := func(it item, topic string, v any) json.RawMessage {
		read = append(read, it)
		if !f.matches(it) || !inScope(p, it) {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			g.metrics.undecodable.WithLabelValues(topic).Inc()
			return nil
		}
		seen[itemKey{it.stream, it.id}] = it.version
		return b
	}
	if f.alerts {
		alerts, err := g.opts.Snapshot.FiringAlerts(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("firing alerts: %w", err)
		}
		items := make([]json.RawMessage, 0, len(alerts))
		for _, a := range alerts {
			if a.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING {
				continue
			}
			if b := add(alertItem(a), g.opts.Topics.Alerts, view.FromAlert(a)); b != nil {
				items = append(items, b)
			}
		}
		frames = append(frames, g.snapshotMessage(streamAlerts, items))
	}
	if f.cases {
		cases, err := g.opts.Snapshot.OpenCases(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("open cases: %w", err)
		}
		items := make([]json.RawMessage, 0, len(cases))
		for _, c := range cases {
			if !c.GetStatus().Open() {
				continue
			}
			if b := add(caseItem(c), g.opts.Topics.Cases, view.FromCase(c)); b != nil {
				items = append(items, b)
			}
		}
		frames = append(frames, g.snapshotMessage(streamCases, items))
	}
	g.tracker.seed(read)
	g.metrics.tracked.Set(float64(g.tracker.len()))
	return frames, seen, nil
}

// snapshotMessage encodes a snapshot frame of already encoded items, which
// cannot fail.
func (g *Gateway) snapshotMessage(stream string, items []json.RawMessage) *message {
	b, _ := json.Marshal(snapshotFrame{Type: frameSnapshot, Stream: stream, Items: items})
	return &message{b: b, sent: g.metrics.sentSnapshot}
}

// checkNames refuses filters that name districts or departments the
// catalog does not know.
func (g *Gateway) checkNames(f filter) error {
	c := g.opts.Catalog
	if c == nil {
		return nil
	}
	for _, d := range f.districts {
		if _, ok := c.District(d); !ok {
			return fmt.Errorf("unknown district %q in filter.districts", clip(d))
		}
	}
	for _, d := range f.departments {
		if _, ok := c.Department(d); !ok {
			return fmt.Errorf("unknown department %q in filter.departments", clip(d))
		}
	}
	return nil
}
