package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/intake/mqtt/broker"
	"github.com/cityhub/cityhub/services/intake/mqtt/mqtttest"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// TestMain fails the run when a goroutine of the broker, the bridge or
// paho outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var leaked []string
			for _, g := range strings.Split(string(buf), "\n\n")[1:] { // the first is this one
				if strings.Contains(g, "services/intake/mqtt") || strings.Contains(g, "eclipse/paho.golang") || strings.Contains(g, "mochi-mqtt/server") {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goroutines outlived the tests:\n%s\n", strings.Join(leaked, "\n\n"))
				code = 1
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	os.Exit(code)
}

const (
	bridgeUser = "cityhub-bridge"
	bridgePass = "bridge-secret"
)

func registry(t testing.TB) (*mqtt.Registry, *catalog.Catalog) {
	t.Helper()
	cat, err := catalog.Load("../testdata/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := mqtt.LoadRegistry("../testdata/registry/mapping.good.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	return r, cat
}

// start runs a broker on a free port until the test ends.
func start(t testing.TB, reg *mqtt.Registry) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := broker.Start(ctx, broker.Options{
		Addr: "127.0.0.1:0", Registry: reg, BridgeUsername: bridgeUser, BridgePassword: bridgePass,
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		b.Close()
	})
	return b
}

// bridge runs the MQTT bridge against b until the test ends, writing to
// a fake intake.
func bridge(t testing.TB, b *broker.Broker, reg *mqtt.Registry, cat *catalog.Catalog) *mqtttest.Submitter {
	t.Helper()
	sub := &mqtttest.Submitter{Decoder: &events.Decoder{Catalog: cat}}
	br, err := mqtt.New(mqtt.Options{
		Broker: b.Addr(), Username: bridgeUser, Password: bridgePass,
		Registry: reg, Submitter: sub, DeadLetters: &mqtttest.DeadLetters{},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		br.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for br.Check(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not connect: %v", br.Check(ctx))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sub
}

func reading(ts int64, values string) []byte {
	return []byte(`{"ts": ` + strconv.FormatInt(ts, 10) + `, "values": ` + values + `}`)
}

// A device publishing ThingsBoard's way — its token as username, on
// v1/devices/me/telemetry — raises events of that device, over MQTT 5
// (paho) and MQTT 3.1.1 (what mosquitto_pub speaks by default); a gateway
// likewise on v1/gateway/telemetry.
func TestDevicesPublishThroughTheBroker(t *testing.T) {
	reg, cat := registry(t)
	b := start(t, reg)
	sub := bridge(t, b, reg, cat)
	ts := time.Now().Add(-time.Minute).UnixMilli()

	dev := mqtttest.Connect(t, b.Addr(), mqtttest.ClientOptions{ClientID: "wl-1-modem", Username: "token-wl-1"})
	mqtttest.Publish(t, dev, mqtt.MeTopic, reading(ts, `{"depth": 42}`))
	if code, err := publish311(b.Addr(), "gas-1-modem", "token-gas-1", mqtt.MeTopic, reading(ts, `{"lel": 30}`)); err != nil || code != 0 {
		t.Fatalf("MQTT 3.1.1 publish: CONNACK %d, %v", code, err)
	}
	gw := mqtttest.Connect(t, b.Addr(), mqtttest.ClientOptions{ClientID: "gw-1", Username: "token-gw-1"})
	mqtttest.Publish(t, gw, mqtt.GatewayMeTopic, []byte(`{"Device A": [`+string(reading(ts, `{"level_mm": 300}`))+`]}`))

	sub.WaitDistinct(t, 3, 10*time.Second)
	counts := sub.Counts()
	for _, id := range []string{"wl-1:", "gas-1:", "wl-2:"} {
		if counts[id+strconv.FormatInt(ts, 10)] != 1 {
			t.Errorf("event %s%d: %d, all %v", id, ts, counts[id+strconv.FormatInt(ts, 10)], counts)
		}
	}
	for _, in := range sub.Inputs() {
		if strings.HasPrefix(in.ID, "wl-1:") && (in.Attrs["water_depth_cm"] != 42.0 || in.Location.District != "xuhui") {
			t.Errorf("event %+v", in)
		}
	}
}

// Only the registry's tokens and the bridge get in; each may only do what
// it is for.
func TestBrokerRefuses(t *testing.T) {
	reg, _ := registry(t)
	b := start(t, reg)
	for _, tc := range []struct {
		name string
		o    mqtttest.ClientOptions
	}{
		{"no username", mqtttest.ClientOptions{ClientID: "x"}},
		{"an unknown token", mqtttest.ClientOptions{ClientID: "x", Username: "token-nobody"}},
		{"the bridge's username with a wrong password", mqtttest.ClientOptions{ClientID: "x", Username: bridgeUser, Password: "guess"}},
		{"a device under the bridge's client ids", mqtttest.ClientOptions{ClientID: broker.ReservedClientIDPrefix + "mqtt-bridge", Username: "token-wl-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ca, err := mqtttest.Dial(b.Addr(), tc.o)
			if err == nil {
				mqtttest.Disconnect(c)
				t.Fatal("connected")
			}
			if ca == nil || ca.ReasonCode != 0x86 { // bad user name or password
				t.Errorf("CONNACK %+v, %v", ca, err)
			}
		})
	}
	if code, _ := publish311(b.Addr(), "x", "token-nobody", mqtt.MeTopic, []byte("{}")); !refused311(code) {
		t.Errorf("MQTT 3.1.1 with an unknown token: CONNACK %d, want a refusal", code)
	}

	// The bridge sees only what devices may publish: the will and the two
	// messages on the device's own topics.
	var got []string
	seen := make(chan string, 10)
	bridgeClient := mqtttest.Connect(t, b.Addr(), mqtttest.ClientOptions{ClientID: "cityhub-watch", Username: bridgeUser, Password: bridgePass,
		OnPublish: func(p *paho.Publish) { seen <- p.Topic }})
	mqtttest.Subscribe(t, bridgeClient, "v1/#")

	// A will is taken only on a topic its client may publish to, and comes
	// under the topic of the client's device, as its messages do.
	if code, _ := connect311(b.Addr(), "x", "token-wl-1", "v1/devices/gas-1/telemetry"); !refused311(code) {
		t.Errorf("a will on another device's topic: CONNACK %d, want a refusal", code)
	}
	if code, _ := connect311(b.Addr(), "x", "token-wl-1", mqtt.MeTopic); code != 0 { // and dropped: the will goes out
		t.Errorf("a will on its own topic: CONNACK %d, want 0", code)
	}

	dev := mqtttest.Connect(t, b.Addr(), mqtttest.ClientOptions{ClientID: "wl-1-modem", Username: "token-wl-1"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := dev.Publish(ctx, &paho.Publish{Topic: "v1/devices/gas-1/telemetry", QoS: 1, Payload: []byte(`{"lel": 99}`)}); err == nil {
		t.Error("a device published on another device's topic")
	}
	if _, err := dev.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "v1/#", QoS: 1}}}); err == nil {
		t.Error("a device subscribed")
	}
	mqtttest.Publish(t, dev, "v1/devices/wl-1/telemetry", []byte(`{"depth": 1}`))
	mqtttest.Publish(t, dev, mqtt.MeTopic, []byte(`{"depth": 2}`))
	for len(got) < 3 {
		select {
		case topic := <-seen:
			got = append(got, topic)
		case <-time.After(5 * time.Second):
			t.Fatalf("the bridge saw %v", got)
		}
	}
	select {
	case topic := <-seen:
		got = append(got, topic)
	case <-time.After(100 * time.Millisecond):
	}
	if want := "v1/devices/wl-1/telemetry v1/devices/wl-1/telemetry v1/devices/wl-1/telemetry"; strings.Join(got, " ") != want {
		t.Errorf("the bridge saw %v, want %s", got, want)
	}
}

// A registry that drops a device locks it out; one whose token is the
// bridge's username is refused.
func TestBrokerFollowsTheRegistry(t *testing.T) {
	reg, cat := registry(t)
	b := start(t, reg)
	smaller, err := mqtt.ParseRegistry("smaller.yaml", []byte(`
devices:
  - {id: wl-1, type: waterlogging, location: {district: xuhui}}
`), cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRegistry(smaller); err != nil {
		t.Fatal(err)
	}
	if code, _ := publish311(b.Addr(), "x", "token-wl-1", mqtt.MeTopic, []byte("{}")); !refused311(code) {
		t.Errorf("a token the registry dropped: CONNACK %d, want a refusal", code)
	}
	clash, err := mqtt.ParseRegistry("clash.yaml", []byte(`
devices:
  - {id: wl-1, token: `+bridgeUser+`, type: waterlogging, location: {district: xuhui}}
`), cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRegistry(clash); err == nil {
		t.Error("a registry with the bridge's username as a token was taken")
	}
}

func TestStart(t *testing.T) {
	reg, _ := registry(t)
	b := start(t, reg)
	if _, err := broker.Start(context.Background(), broker.Options{Addr: b.Addr(), Registry: reg, BridgeUsername: "u", BridgePassword: "p"}); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Errorf("a second broker on %s: %v", b.Addr(), err)
	}
	if _, err := broker.Start(context.Background(), broker.Options{Addr: "127.0.0.1:0", Registry: reg}); err == nil {
		t.Error("started without bridge credentials")
	}
	if _, err := broker.Start(context.Background(), broker.Options{Addr: "127.0.0.1:0", Registry: reg, BridgeUsername: "token-wl-1", BridgePassword: "p"}); err == nil {
		t.Error("started with a bridge username that is a device's token")
	}
	// Close is idempotent, and the port is free afterwards.
	ctx, cancel := context.WithCancel(context.Background())
	c, err := broker.Start(ctx, broker.Options{Addr: "127.0.0.1:0", Registry: reg, BridgeUsername: "u", BridgePassword: "p"})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.Addr()
	cancel()
	c.Close()
	c.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("the port is still taken: %v", err)
	} else {
		l.Close()
	}
}

// refused311 reports whether an MQTT 3.1.1 CONNACK return code refuses
// the client's credentials: 4 (bad user name or password) or 5 (not
// authorised), which mochi answers.
func refused311(code byte) bool { return code == 4 || code == 5 }

// connect311 connects as an MQTT 3.1.1 client would (mosquitto_pub's
// default), with a will on willTopic when it is not empty, and returns the
// CONNACK's return code and the connection.
func connect311(addr, clientID, username, willTopic string) (byte, error) {
	code, conn, err := dial311(addr, clientID, username, willTopic)
	if conn != nil {
		conn.Close()
	}
	return code, err
}

func dial311(addr, clientID, username, willTopic string) (byte, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	flags := byte(0x02) // clean session
	var payload []byte
	payload = str(payload, clientID)
	if willTopic != "" {
		flags |= 0x04 | 0x08 // will, QoS 1
		payload = str(payload, willTopic)
		payload = str(payload, `{"depth": 0}`)
	}
	if username != "" {
		flags |= 0x80
		payload = str(payload, username)
	}
	vh := append(str(nil, "MQTT"), 4, flags, 0, 30)
	if _, err := conn.Write(packet(0x10, append(vh, payload...))); err != nil {
		conn.Close()
		return 0, nil, err
	}
	r := bufio.NewReader(conn)
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		conn.Close()
		return 0, nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if head[0] != 0x20 || head[3] != 0 {
		conn.Close()
		return head[3], nil, fmt.Errorf("CONNACK %x", head)
	}
	return 0, &readConn{conn, r}, nil
}

// publish311 connects as an MQTT 3.1.1 client and publishes payload with
// QoS 1, waiting for the PUBACK.
func publish311(addr, clientID, username, topic string, payload []byte) (byte, error) {
	code, conn, err := dial311(addr, clientID, username, "")
	if err != nil {
		return code, err
	}
	defer conn.Close()
	body := str(nil, topic)
	body = append(body, 0, 1) // packet id 1
	body = append(body, payload...)
	if _, err := conn.Write(packet(0x32, body)); err != nil {
		return 0, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return 0, fmt.Errorf("read PUBACK: %w", err)
	}
	if ack[0] != 0x40 || ack[3] != 1 {
		return 0, fmt.Errorf("PUBACK %x", ack)
	}
	conn.Write([]byte{0xe0, 0}) // DISCONNECT
	return 0, nil
}

type readConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func str(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(kind byte, body []byte) []byte {
	out := []byte{kind}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}
