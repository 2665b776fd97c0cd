// Package mqtttest gives the MQTT bridge's tests a real broker — Debian's
// mosquitto, started by the test on a free loopback port with a
// configuration of its own — MQTT clients to publish and subscribe with,
// and hand-written fakes of what the bridge writes to: a Submitter that
// records what reached it and fails on demand, and a dead-letter store.
package mqtttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
)

// Mosquitto is a mosquitto broker for one test.
type Mosquitto struct {
	// Addr is its host:port on the loopback interface.
	Addr string

	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncBuffer
}

// mosquittoBinary finds mosquitto, which Debian installs in /usr/sbin.
func mosquittoBinary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto not found")
}

// StartMosquitto starts a mosquitto for t, stopped when t ends. It keeps
// every message it queues for a session (max_queued_messages 0), since
// the tests stop the bridge while devices publish. Without the binary the
// test is skipped with how to install it — and fails where CI is set,
// since CI installs it.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin, err := mosquittoBinary()
	if err != nil {
		msg := "mqtttest: mosquitto is not installed (Debian: apt-get install mosquitto); the bridge's broker tests need it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "mosquitto.conf")
		err = os.WriteFile(conf, []byte(fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`, port)), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		m := &Mosquitto{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{}), logs: &syncBuffer{}}
		m.cmd = exec.Command(bin, "-c", conf)
		m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
		if err := m.cmd.Start(); err != nil {
			t.Fatalf("mqtttest: start mosquitto: %v", err)
		}
		go func() { m.cmd.Wait(); close(m.exited) }()
		if m.waitListening() {
			t.Cleanup(m.stop)
			return m
		}
		m.stop()
		if attempt == 4 {
			t.Fatalf("mqtttest: mosquitto did not start: %s", m.logs.String())
		}
	}
}

func (m *Mosquitto) waitListening() bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", m.Addr, time.Second); err == nil {
			c.Close()
			return true
		}
		select {
		case <-m.exited:
			return false // most likely the port was taken meanwhile
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

func (m *Mosquitto) stop() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
		<-m.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ClientOptions configures Connect.
type ClientOptions struct {
	ClientID string
	Username string
	Password string
	// OnPublish, when set, receives every message; they are acknowledged
	// when it returns.
	OnPublish func(*paho.Publish)
	// SessionExpiry keeps the client's session while it is away (0: the
	// session ends with the connection); CleanStart starts a new one.
	SessionExpiry time.Duration
	CleanStart    bool
	// ReceiveMaximum bounds the messages in flight to the client (MQTT's
	// default, 65535, when zero).
	ReceiveMaximum int
}

// Connect returns a paho client connected to addr, disconnected when t
// ends.
func Connect(t testing.TB, addr string, o ClientOptions) *paho.Client {
	t.Helper()
	c, ca, err := Dial(addr, o)
	if err != nil {
		if ca != nil {
			t.Fatalf("mqtttest: connect %s as %q: reason %#x: %v", addr, o.ClientID, ca.ReasonCode, err)
		}
		t.Fatalf("mqtttest: connect %s as %q: %v", addr, o.ClientID, err)
	}
	t.Cleanup(func() { Disconnect(c) })
	return c
}

// Dial is Connect without a test: the caller disconnects.
func Dial(addr string, o ClientOptions) (*paho.Client, *paho.Connack, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	cfg := paho.ClientConfig{Conn: conn}
	if o.OnPublish != nil {
		f := o.OnPublish
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			f(pr.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	cp := &paho.Connect{ClientID: o.ClientID, KeepAlive: 30, CleanStart: o.CleanStart, Properties: &paho.ConnectProperties{}}
	if o.Username != "" {
		cp.Username, cp.UsernameFlag = o.Username, true
	}
	if o.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.Password), true
	}
	if o.SessionExpiry > 0 {
		s := uint32(o.SessionExpiry / time.Second)
		cp.Properties.SessionExpiryInterval = &s
	}
	if o.ReceiveMaximum > 0 {
		r := uint16(o.ReceiveMaximum)
		cp.Properties.ReceiveMaximum = &r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	return c, ca, nil
}

// Disconnect disconnects c and waits until it stopped.
func Disconnect(c *paho.Client) {
	_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
	}
}

// Publish publishes payload on topic with QoS 1 and waits for the
// broker's acknowledgement.
func Publish(t testing.TB, c *paho.Client, topic string, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Send(ctx, c, topic, payload); err != nil {
		t.Fatal(err)
	}
}

// Send is Publish for a goroutine of the test: it returns the error.
func Send(ctx context.Context, c *paho.Client, topic string, payload []byte) error {
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
		return fmt.Errorf("mqtttest: publish on %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes c to filter with QoS 1.
func Subscribe(t testing.TB, c *paho.Client, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("mqtttest: subscribe to %s: %v", filter, err)
	}
}

// Submitter is a fake of intake's Submit: it validates what it gets as
// intake does (when Decoder is set), records the events of every call that
// succeeds, and fails while told to. It is safe for concurrent use.
type Submitter struct {
	// Decoder, when set, validates every batch as intake does, all or
	// none, with the principal's sources.
	Decoder *events.Decoder

	mu      sync.Mutex
	fail    error
	calls   int
	failed  int
	inputs  []*events.Input
	counts  map[string]int
	changed chan struct{}
}

var _ mqtt.Submitter = (*Submitter)(nil)

// ErrUnavailable is what Submitter returns while told to fail.
var ErrUnavailable = errors.New("mqtttest: the event log did not acknowledge the events")

// Submit records in, or fails.
func (s *Submitter) Submit(ctx context.Context, via string, p auth.Principal, in []*events.Input) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Decoder != nil {
		d := *s.Decoder
		d.SpeaksFor = p.SpeaksFor
		if _, err := d.DecodeInputs(in); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		s.failed++
		return nil, s.fail
	}
	if s.counts == nil {
		s.counts = make(map[string]int)
	}
	ids := make([]string, len(in))
	for i, ev := range in {
		s.inputs = append(s.inputs, ev)
		s.counts[ev.ID]++
		ids[i] = ev.ID
	}
	s.signal()
	return ids, nil
}

func (s *Submitter) signal() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Fail makes every later call fail with err (ErrUnavailable when nil),
// until Heal.
func (s *Submitter) Fail(err error) {
	if err == nil {
		err = ErrUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// Heal ends Fail.
func (s *Submitter) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = nil
}

// Failed returns how many calls failed.
func (s *Submitter) Failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Calls returns how many calls there were.
func (s *Submitter) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Inputs returns the events of the calls that succeeded, in order.
func (s *Submitter) Inputs() []*events.Input {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*events.Input(nil), s.inputs...)
}

// Counts returns how often each event id was written.
func (s *Submitter) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// WaitDistinct waits until n distinct ids were written, failing t after
// timeout.
func (s *Submitter) WaitDistinct(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		got := len(s.counts)
		if got >= n {
			s.mu.Unlock()
			return
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("mqtttest: %d distinct events written after %s, want %d", got, timeout, n)
		}
	}
}

// DeadLetters is a fake dead-letter store. It is safe for concurrent use.
type DeadLetters struct {
	mu      sync.Mutex
	fail    error
	failed  int
	letters []mqtt.DeadLetter
}

var _ mqtt.DeadLetterer = (*DeadLetters)(nil)

// DeadLetter stores letters, or fails.
func (d *DeadLetters) DeadLetter(ctx context.Context, letters []mqtt.DeadLetter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		d.failed++
		return d.fail
	}
	d.letters = append(d.letters, letters...)
	return nil
}

// Fail makes later calls fail with err until Heal.
func (d *DeadLetters) Fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = err
}

// Heal ends Fail.
func (d *DeadLetters) Heal() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = nil
}

// Failed returns how many calls failed.
func (d *DeadLetters) Failed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
}

// Letters returns what was stored.
func (d *DeadLetters) Letters() []mqtt.DeadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]mqtt.DeadLetter(nil), d.letters...)
}
