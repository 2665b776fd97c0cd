package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
)

// Via is how the bridge's events are counted in intake's metrics.
const Via = "mqtt"

// Submitter writes events to the event log, all or none, and returns only
// once Kafka acknowledged them; *intake.Service is one, and
// intake.SubmitFunc adapts a func. An invalid batch is a
// *events.BatchError; any other error is taken as worth retrying.
type Submitter interface {
	Submit(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error)
}

// Defaults of Options.
const (
	DefaultBroker          = "127.0.0.1:1883"
	DefaultClientID        = "cityhub-mqtt-bridge"
	DefaultSessionExpiry   = 24 * time.Hour
	DefaultReceiveMaximum  = 1000
	DefaultKeepAlive       = 30 * time.Second
	DefaultMaxBatch        = 500
	DefaultLinger          = 2 * time.Millisecond
	DefaultAckInterval     = 2 * time.Millisecond
	DefaultMaxPayloadBytes = 256 << 10
	DefaultRecentIDs       = 16384
	DefaultDrainTimeout    = 10 * time.Second
	DefaultMinBackoff      = 100 * time.Millisecond
	DefaultMaxBackoff      = 10 * time.Second
)

// Options configures a Bridge.
type Options struct {
	// Broker is the MQTT broker's address, host:port; DefaultBroker (the
	// embedded broker) when empty.
	Broker string
	// TLS, when set, connects over TLS with this configuration.
	TLS *tls.Config
	// Dial opens the connection to the broker (then TLS is its business);
	// a net.Dialer, with TLS when TLS is set, when nil.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Username and Password are the bridge's credentials at the broker.
	Username string
	Password string
	// ClientID names the bridge's session at the broker; DefaultClientID
	// when empty. The broker keeps what the bridge has not acknowledged
	// under this id: a bridge that restarts under it gets those messages
	// again, and two bridges under one id take the session from each other.
	ClientID string
	// Filters are the topic filters the bridge subscribes to with QoS 1;
	// DefaultFilters when empty.
	Filters []string
	// SessionExpiry is how long the broker keeps the bridge's session —
	// its subscriptions and every message not yet acknowledged — while the
	// bridge is away; DefaultSessionExpiry when zero. Messages published
	// while the bridge is away longer than this are not kept for it.
	SessionExpiry time.Duration
	// ReceiveMaximum bounds the messages the broker sends before the
	// bridge acknowledges them; DefaultReceiveMaximum when zero.
	ReceiveMaximum int
	// KeepAlive is the MQTT keep-alive; DefaultKeepAlive when zero.
	KeepAlive time.Duration

	// Registry maps topics and payloads to events; SetRegistry replaces it.
	Registry *Registry
	// Submitter writes the events; DeadLetters keeps what cannot be mapped.
	Submitter   Submitter
	DeadLetters DeadLetterer

	// MaxBatch bounds the events (and the messages) of one Submit, at most
	// events.MaxBatch; DefaultMaxBatch when zero. Keep it below
	// ReceiveMaximum (half of it by default): the broker sends no more than
	// ReceiveMaximum unacknowledged messages, so a batch as large would
	// stop the flow while it is written.
	MaxBatch int
	// Linger is how long a batch that has a message waits for more;
	// DefaultLinger when zero.
	Linger time.Duration
	// AckInterval is how often acknowledgements are sent, in the order the
	// messages came as MQTT requires; DefaultAckInterval when zero.
	AckInterval time.Duration
	// MaxPayloadBytes bounds a message's payload; a larger one is
	// dead-lettered, cut to this size. DefaultMaxPayloadBytes when zero.
	MaxPayloadBytes int
	// RecentIDs is how many of the event ids Kafka last acknowledged the
	// bridge remembers, to acknowledge a message the broker delivers again
	// without writing it again; DefaultRecentIDs when zero.
	RecentIDs int
	// DrainTimeout bounds how long Run, once its ctx ends, waits for the
	// batch under way; DefaultDrainTimeout when zero.
	DrainTimeout time.Duration
	// MinBackoff and MaxBackoff bound the waits between retries of a
	// write and between connection attempts; DefaultMinBackoff and
	// DefaultMaxBackoff when zero.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock readings without a time are stamped with; time.Now
	// when nil.
	Now func() time.Time
}

// Validate fills the defaults of o and reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Registry == nil {
		errs = append(errs, errNoRegistry)
	}
	if o.Submitter == nil {
		errs = append(errs, errors.New("no submitter"))
	}
	if o.DeadLetters == nil {
		errs = append(errs, errors.New("no dead-letter writer"))
	}
	setDefault(&o.Broker, DefaultBroker)
	setDefault(&o.ClientID, DefaultClientID)
	if len(o.Filters) == 0 {
		o.Filters = DefaultFilters
	}
	for _, f := range o.Filters {
		if f == "" || strings.ContainsAny(f, "\x00") {
			errs = append(errs, fmt.Errorf("topic filter %q is not one", f))
		}
	}
	setDefault(&o.SessionExpiry, DefaultSessionExpiry)
	if o.SessionExpiry < time.Second || o.SessionExpiry > 0xFFFFFFFE*time.Second {
		errs = append(errs, fmt.Errorf("session expiry %s: want 1s to about 136 years", o.SessionExpiry))
	}
	setDefault(&o.ReceiveMaximum, DefaultReceiveMaximum)
	if o.ReceiveMaximum < 1 || o.ReceiveMaximum > 65535 {
		errs = append(errs, fmt.Errorf("receive maximum %d: want 1 to 65535", o.ReceiveMaximum))
	}
	setDefault(&o.KeepAlive, DefaultKeepAlive)
	if o.KeepAlive < time.Second || o.KeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("keep-alive %s: want 1s to 65535s", o.KeepAlive))
	}
	setDefault(&o.MaxBatch, min(DefaultMaxBatch, max(1, o.ReceiveMaximum/2)))
	if o.MaxBatch < 1 || o.MaxBatch > events.MaxBatch {
		errs = append(errs, fmt.Errorf("max batch %d: want 1 to %d", o.MaxBatch, events.MaxBatch))
	}
	setDefault(&o.Linger, DefaultLinger)
	setDefault(&o.AckInterval, DefaultAckInterval)
	setDefault(&o.MaxPayloadBytes, DefaultMaxPayloadBytes)
	if o.MaxPayloadBytes < 1 || o.MaxPayloadBytes > events.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("max payload %d bytes: want 1 to %d", o.MaxPayloadBytes, events.MaxBodyBytes))
	}
	setDefault(&o.RecentIDs, DefaultRecentIDs)
	setDefault(&o.DrainTimeout, DefaultDrainTimeout)
	setDefault(&o.MinBackoff, DefaultMinBackoff)
	setDefault(&o.MaxBackoff, DefaultMaxBackoff)
	if o.MaxBackoff < o.MinBackoff {
		errs = append(errs, fmt.Errorf("max backoff %s is below min backoff %s", o.MaxBackoff, o.MinBackoff))
	}
	for _, d := range []time.Duration{o.Linger, o.AckInterval, o.DrainTimeout, o.MinBackoff} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative duration %s", d))
		}
	}
	if o.RecentIDs < 0 {
		errs = append(errs, fmt.Errorf("recent ids %d: want 0 or more", o.RecentIDs))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return errors.Join(errs...)
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Bridge subscribes to an MQTT broker and writes what devices publish to
// the event log through a Submitter. Each message is acknowledged to the
// broker only after Kafka acknowledged its events (or the dead-letter
// topic took it), so a bridge that dies loses nothing: the broker delivers
// what was not acknowledged again when the bridge's session reconnects.
type Bridge struct {
	opts    Options
	reg     atomic.Pointer[Registry]
	log     *slog.Logger
	metrics *metrics
	recent  *recentIDs

	running   atomic.Bool
	connected atomic.Bool
}

// New checks opts and returns a Bridge.
func New(opts Options) (*Bridge, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt bridge: %w", err)
	}
	b := &Bridge{
		opts:    opts,
		log:     opts.Logger.With("component", "mqtt-bridge"),
		metrics: newMetrics(opts.Registerer),
		recent:  newRecentIDs(opts.RecentIDs),
	}
	b.reg.Store(opts.Registry)
	return b, nil
}

// SetRegistry replaces the registry; messages received from then on are
// mapped with r. It is safe to call while Run runs.
func (b *Bridge) SetRegistry(r *Registry) {
	if r != nil {
		b.reg.Store(r)
	}
}

// Check reports whether the bridge is connected to its broker, for a
// readiness check.
func (b *Bridge) Check(context.Context) error {
	if !b.connected.Load() {
		return fmt.Errorf("not connected to the MQTT broker at %s", b.opts.Broker)
	}
	return nil
}

// Run connects to the broker, subscribes and bridges until ctx ends,
// reconnecting with backoff whenever the connection is lost. When ctx
// ends it finishes the batch under way (for at most DrainTimeout),
// acknowledges it, disconnects and returns nil; messages it had not
// written yet are left unacknowledged for the next start. Run must not be
// called again before it returned.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("mqtt bridge: already running")
	}
	defer b.running.Store(false)
	b.log.Info("bridging MQTT", "broker", b.opts.Broker, "client_id", b.opts.ClientID, "filters", strings.Join(b.opts.Filters, ","))
	failures := 0
	for {
		started := time.Now()
		err := b.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > b.opts.MaxBackoff {
			failures = 0 // the connection was up a while: start the backoff over
		}
		failures++
		d := backoff(b.opts.MinBackoff, b.opts.MaxBackoff, failures)
		b.metrics.connections.WithLabelValues("lost").Inc()
		b.log.Warn("MQTT connection ended; reconnecting", "broker", b.opts.Broker, "in", d, "err", err)
		if !sleep(ctx.Done(), d) {
			return nil
		}
	}
}

// connection runs one connection to the broker until it is lost or ctx
// ends.
func (b *Bridge) connection(ctx context.Context) error {
	raw, err := b.dial(ctx)
	if err != nil {
		return fmt.Errorf("dial %s: %w", b.opts.Broker, err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Writes (acknowledgements, pings) come from several of paho's
	// goroutines; a TLS connection needs them serialised.
	conn := &watchedConn{Conn: packets.NewThreadSafeConn(raw), closed: make(chan struct{}), onClose: cancel}
	s := &session{
		b:    b,
		ctx:  cctx,
		in:   make(chan inbound, b.opts.ReceiveMaximum),
		stop: make(chan struct{}),
		lost: conn.closed,
		done: make(chan struct{}),
	}
	cli := paho.NewClient(paho.ClientConfig{
		Conn:                       conn,
		EnableManualAcknowledgment: true,
		SendAcksInterval:           b.opts.AckInterval,
		OnPublishReceived:          []func(paho.PublishReceived) (bool, error){s.receive},
		OnClientError:              s.fail,
		OnServerDisconnect: func(d *paho.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			s.fail(fmt.Errorf("the broker disconnected the bridge: reason code %#x %s", d.ReasonCode, reason))
		},
	})
	s.ack = cli.Ack
	go s.run()
	defer func() { <-s.done }()

	expiry := uint32(b.opts.SessionExpiry / time.Second)
	recvMax := uint16(b.opts.ReceiveMaximum)
	cp := &paho.Connect{
		ClientID:   b.opts.ClientID,
		KeepAlive:  uint16(b.opts.KeepAlive / time.Second),
		CleanStart: false, // the session is what carries unacknowledged messages across a restart
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, ReceiveMaximum: &recvMax},
	}
	if b.opts.Username != "" {
		cp.Username, cp.UsernameFlag = b.opts.Username, true
	}
	if b.opts.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(b.opts.Password), true
	}
	ca, err := cli.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		if ca != nil {
			return fmt.Errorf("connect: the broker refused with reason code %#x: %w", ca.ReasonCode, err)
		}
		return fmt.Errorf("connect: %w", err)
	}
	subs := make([]paho.SubscribeOptions, len(b.opts.Filters))
	for i, f := range b.opts.Filters {
		// RetainHandling 1: a retained message comes only with a new
		// subscription, not every time the session resubscribes.
		subs[i] = paho.SubscribeOptions{Topic: f, QoS: 1, RetainHandling: 1}
	}
	sa, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil {
		conn.Close()
		<-cli.Done()
		return fmt.Errorf("subscribe: %w", err)
	}
	for i, code := range sa.Reasons {
		if code == 0 && i < len(subs) {
			b.log.Warn("the broker granted QoS 0: messages on this filter are not redelivered after a failure", "filter", subs[i].Topic)
		}
	}
	b.connected.Store(true)
	b.metrics.connected.Set(1)
	b.metrics.connections.WithLabelValues("established").Inc()
	defer func() {
		b.connected.Store(false)
		b.metrics.connected.Set(0)
	}()
	b.log.Info("connected to the MQTT broker", "broker", b.opts.Broker, "session_present", ca.SessionPresent)

	select {
	case <-ctx.Done():
		drain := time.AfterFunc(b.opts.DrainTimeout, cancel)
		defer drain.Stop()
		close(s.stop)
		<-s.done
		// paho sends acknowledgements in order on its own ticker: give it a
		// few, so that what was written is not delivered again (if it is,
		// its ids make it the same events).
		sleep(conn.closed, 4*b.opts.AckInterval+10*time.Millisecond)
		_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
		<-cli.Done()
		return nil
	case <-cli.Done():
		<-s.done
		if err := s.err(); err != nil {
			return err
		}
		return errors.New("connection lost")
	}
}

func (b *Bridge) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if b.opts.Dial != nil {
		return b.opts.Dial(ctx, b.opts.Broker)
	}
	if b.opts.TLS != nil {
		d := &tls.Dialer{Config: b.opts.TLS}
		return d.DialContext(ctx, "tcp", b.opts.Broker)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", b.opts.Broker)
}

// watchedConn says when paho closes the connection, which it does first
// whenever the client stops.
type watchedConn struct {
	net.Conn
	once    sync.Once
	closed  chan struct{}
	onClose func()
}

func (c *watchedConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.onClose()
	})
	return c.Conn.Close()
}

// backoff returns the wait before attempt n (from 1): doubling from lo to
// hi, with a fifth of jitter.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// sleep waits d, or until done is closed; it reports whether it waited d.
func sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
