// Package broker is the MQTT broker embedded in the all-in-one hub
// (github.com/mochi-mqtt/server/v2), so that devices, mosquitto_pub and
// the bridge have a broker without an install.
//
// It lets in the devices and gateways of the device registry — their token
// as MQTT username, ThingsBoard's way; the password is not looked at — and
// the bridge with its own username and password; nobody else. A device
// may publish only to v1/devices/me/telemetry or its own
// v1/devices/{id}/telemetry, a gateway only to v1/gateway/telemetry or its
// own v1/gateway/{name}/telemetry; the broker passes a message on the
// "me" topics under the topic of the connection's device or gateway, so
// the bridge knows whose it is. Only the bridge may subscribe, to v1/
// topics. A will is accepted only on a topic its client may publish to
// (wills would otherwise reach the bridge unchecked), and client ids
// starting with "cityhub-" are the bridge's.
//
// Sessions and the messages held for them live in memory: messages the
// broker acknowledged to a device but had not delivered to the bridge are
// lost if the process dies. A production deployment uses a broker that
// persists them (Mosquitto with persistence, EMQX).
package broker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cityhub/cityhub/services/intake/mqtt"
)

// Defaults of Options.
const (
	DefaultAddr = "127.0.0.1:1883"
	// DefaultMaxInflight is the most QoS 1 messages MQTT's packet ids let
	// a broker hold for one client.
	DefaultMaxInflight = 65535
)

// ReservedClientIDPrefix begins the client ids only the bridge may use: a
// device connecting under the bridge's id would take over its session.
const ReservedClientIDPrefix = "cityhub-"

// Options configures a Broker.
type Options struct {
	// Addr is the TCP listen address; DefaultAddr when empty.
	Addr string
	// Registry says which tokens are devices and gateways; SetRegistry
	// replaces it.
	Registry *mqtt.Registry
	// BridgeUsername and BridgePassword are the bridge's credentials; no
	// device or gateway token may equal the username.
	BridgeUsername string
	BridgePassword string
	// MaxInflight bounds the QoS 1 messages held for one client — sent and
	// not acknowledged, or waiting while it is away; beyond it messages for
	// that client are dropped and counted. DefaultMaxInflight when zero.
	MaxInflight int
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Broker is a running embedded broker.
type Broker struct {
	server *mochi.Server
	hook   *hook
	addr   string
	log    *slog.Logger

	closeOnce sync.Once
	stopWatch chan struct{}
	watchDone chan struct{}
}

// Start listens on opts.Addr and serves until ctx ends or Close is
// called. It returns once the listener is bound.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	var errs []error
	if opts.Registry == nil {
		errs = append(errs, errors.New("no device registry"))
	}
	if opts.BridgeUsername == "" || opts.BridgePassword == "" {
		errs = append(errs, errors.New("no bridge username and password"))
	}
	if opts.Registry != nil && opts.BridgeUsername != "" {
		if _, ok := opts.Registry.Publisher(opts.BridgeUsername); ok {
			errs = append(errs, errors.New("a device or gateway token equals the bridge's username"))
		}
	}
	if opts.MaxInflight == 0 {
		opts.MaxInflight = DefaultMaxInflight
	}
	if opts.MaxInflight < 1 || opts.MaxInflight > 65535 {
		errs = append(errs, fmt.Errorf("max inflight %d: want 1 to 65535", opts.MaxInflight))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	log := opts.Logger.With("component", "mqtt-broker")

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumInflight = uint16(opts.MaxInflight)
	server := mochi.New(&mochi.Options{
		Capabilities: caps,
		// mochi logs a line per refused client and per dropped message; the
		// metrics count those.
		Logger:                 slog.New(levelFloor{log.Handler(), slog.LevelError}),
		InlineClient:           false,
		SysTopicResendInterval: 60,
	})
	tcp := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: opts.Addr})
	if err := server.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("mqtt broker: listen on %s: %w", opts.Addr, err)
	}
	h := newHook(opts, log)
	f := promauto.With(opts.Registerer)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cityhub_mqtt_broker_clients",
		Help: "Clients connected to the embedded MQTT broker.",
	}, func() float64 { return float64(atomic.LoadInt64(&server.Info.ClientsConnected)) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "cityhub_mqtt_broker_dropped_total",
		Help: "Messages the embedded MQTT broker dropped for a client that could not take them: MaxInflight held for it already, or its write queue was full.",
	}, func() float64 {
		return float64(atomic.LoadInt64(&server.Info.InflightDropped) + atomic.LoadInt64(&server.Info.MessagesDropped))
	})
	if err := server.AddHook(h, nil); err != nil {
		server.Close()
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	if err := server.Serve(); err != nil {
		server.Close()
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	b := &Broker{
		server: server, hook: h, addr: tcp.Address(), log: log,
		stopWatch: make(chan struct{}), watchDone: make(chan struct{}),
	}
	go func() {
		defer close(b.watchDone)
		select {
		case <-ctx.Done():
			b.shutdown()
		case <-b.stopWatch:
		}
	}()
	log.Info("embedded MQTT broker listening", "addr", b.addr, "devices", opts.Registry.Devices())
	return b, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// SetRegistry replaces the registry: from then on tokens are checked, and
// rights given, by r. A registry in which a token equals the bridge's
// username is refused.
func (b *Broker) SetRegistry(r *mqtt.Registry) error {
	if r == nil {
		return errors.New("mqtt broker: no device registry")
	}
	if _, ok := r.Publisher(b.hook.bridgeUser); ok {
		return errors.New("mqtt broker: a device or gateway token equals the bridge's username")
	}
	b.hook.reg.Store(r)
	return nil
}

// Close stops the broker: it disconnects every client and closes the
// listener. It is idempotent and safe to call after ctx ended.
func (b *Broker) Close() error {
	b.shutdown()
	select {
	case b.stopWatch <- struct{}{}:
	case <-b.watchDone:
	}
	<-b.watchDone
	return nil
}

func (b *Broker) shutdown() {
	b.closeOnce.Do(func() {
		_ = b.server.Close()
		// Client goroutines end once their connections are closed.
		done := make(chan struct{})
		go func() {
			b.server.Listeners.ClientsWg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			b.log.Warn("some MQTT clients had not stopped 5s after the broker closed")
		}
		b.log.Info("embedded MQTT broker stopped")
	})
}

// identity is who a connection is.
type identity struct {
	bridge  bool
	device  *mqtt.Device
	gateway *mqtt.Gateway
}

type hook struct {
	mochi.HookBase
	reg        atomic.Pointer[mqtt.Registry]
	bridgeUser string
	bridgePass []byte
	log        *slog.Logger

	refused *prometheus.CounterVec
}

func newHook(opts Options, log *slog.Logger) *hook {
	f := promauto.With(opts.Registerer)
	h := &hook{
		bridgeUser: opts.BridgeUsername,
		bridgePass: []byte(opts.BridgePassword),
		log:        log,
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_mqtt_broker_refused_total",
			Help: "What the embedded MQTT broker refused: a connection (connect: unknown token or bad bridge password; will: a will on a topic the client may not publish to; client_id: a reserved client id), a publish or a subscription (acl).",
		}, []string{"reason"}),
	}
	h.reg.Store(opts.Registry)
	return h
}

func (h *hook) ID() string { return "cityhub-registry" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnWill:
		return true
	}
	return false
}

// who says who the client with username is; ok is false for strangers.
func (h *hook) who(username []byte) (identity, bool) {
	if len(username) == 0 {
		return identity{}, false
	}
	if string(username) == h.bridgeUser {
		return identity{bridge: true}, true
	}
	p, ok := h.reg.Load().Publisher(string(username))
	if !ok {
		return identity{}, false
	}
	return identity{device: p.Device, gateway: p.Gateway}, true
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	c := pk.Connect
	id, ok := h.who(c.Username)
	switch {
	case !ok:
		h.refused.WithLabelValues("connect").Inc()
		return false
	case id.bridge:
		if subtle.ConstantTimeCompare(c.Password, h.bridgePass) != 1 {
			h.refused.WithLabelValues("connect").Inc()
			return false
		}
		return true
	case strings.HasPrefix(cl.ID, ReservedClientIDPrefix):
		h.refused.WithLabelValues("client_id").Inc()
		return false
	case c.WillFlag && !id.mayPublish(c.WillTopic):
		h.refused.WithLabelValues("will").Inc()
		return false
	}
	return true
}

// mayPublish reports whether id may publish to topic.
func (id identity) mayPublish(topic string) bool {
	switch {
	case id.device != nil:
		return topic == mqtt.MeTopic || topic == mqtt.DeviceTopic(id.device.ID)
	case id.gateway != nil:
		return topic == mqtt.GatewayMeTopic || topic == mqtt.GatewayTopic(id.gateway.Name)
	}
	return false
}

func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	id, ok := h.who(cl.Properties.Username)
	allowed := ok && ((write && id.mayPublish(topic)) || (!write && id.bridge && strings.HasPrefix(topic, "v1/")))
	if !allowed {
		h.refused.WithLabelValues("acl").Inc()
	}
	return allowed
}

// OnPublish passes a message on ThingsBoard's "me" topics under the topic
// of the connection's device or gateway.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	pk.TopicName = h.topicOf(cl, pk.TopicName)
	return pk, nil
}

func (h *hook) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	will.TopicName = h.topicOf(cl, will.TopicName)
	return will, nil
}

func (h *hook) topicOf(cl *mochi.Client, topic string) string {
	if topic != mqtt.MeTopic && topic != mqtt.GatewayMeTopic {
		return topic
	}
	id, ok := h.who(cl.Properties.Username)
	switch {
	case !ok:
	case topic == mqtt.MeTopic && id.device != nil:
		return mqtt.DeviceTopic(id.device.ID)
	case topic == mqtt.GatewayMeTopic && id.gateway != nil:
		return mqtt.GatewayTopic(id.gateway.Name)
	}
	return topic
}

// levelFloor passes on only records at or above its level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}

func (l levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{l.Handler.WithAttrs(a), l.min}
}

func (l levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{l.Handler.WithGroup(n), l.min}
}
