package mqtt_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/intake/mqtt/mqtttest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Intake's service is what the bridge submits to.
var _ mqtt.Submitter = (*intake.Service)(nil)

func TestNewChecksOptions(t *testing.T) {
	t.Parallel()
	_, err := mqtt.New(mqtt.Options{ReceiveMaximum: 70000, MaxBatch: 5000, KeepAlive: time.Millisecond})
	if err == nil {
		t.Fatal("New took bad options")
	}
	for _, want := range []string{"no device registry", "no submitter", "no dead-letter writer", "receive maximum 70000", "max batch 5000", "keep-alive 1ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	o := mqtt.Options{Registry: testRegistry(t), Submitter: &mqtttest.Submitter{}, DeadLetters: &mqtttest.DeadLetters{}}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Broker != mqtt.DefaultBroker || o.ClientID != mqtt.DefaultClientID || o.MaxBatch != mqtt.DefaultMaxBatch || o.MaxBatch >= o.ReceiveMaximum || len(o.Filters) != 2 {
		t.Errorf("defaults %+v", o)
	}
	b, err := mqtt.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Check before Run: %v", err)
	}
}

type recordingWriter struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (w *recordingWriter) Write(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msgs...)
	return nil
}

func TestKafkaDeadLetters(t *testing.T) {
	t.Parallel()
	w := &recordingWriter{}
	dl := mqtt.KafkaDeadLetters(w, "city.events.dlq.v1")
	at := time.Date(2026, 7, 1, 8, 30, 0, 0, time.UTC)
	err := dl.DeadLetter(context.Background(), []mqtt.DeadLetter{
		{Topic: "v1/devices/wl-1/telemetry", Publisher: "wl-1", Payload: []byte("not json"), Reason: "payload is not JSON", At: at},
		{Topic: "v1/devices/ghost/telemetry", Payload: []byte("{}"), Reason: `device "ghost" is not in the registry`, At: at},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.msgs) != 2 {
		t.Fatalf("%d messages", len(w.msgs))
	}
	m := w.msgs[0]
	if m.Topic != "city.events.dlq.v1" || string(m.Key) != "wl-1" || string(m.Value) != "not json" {
		t.Errorf("message %+v", m)
	}
	for h, want := range map[string]string{
		mqtt.DLQViaHeader:        "mqtt",
		mqtt.DLQMQTTTopicHeader:  "v1/devices/wl-1/telemetry",
		stream.DLQReasonHeader:   "payload is not JSON",
		stream.DLQAtHeader:       "2026-07-01T08:30:00Z",
		stream.DLQAttemptsHeader: "1",
	} {
		if got := stream.Header(m, h); got != want {
			t.Errorf("header %s: %q, want %q", h, got, want)
		}
	}
	if stream.Header(m, stream.ContentTypeHeader) != "" {
		t.Error("a dead letter says it is protobuf")
	}
	if string(w.msgs[1].Key) != "v1/devices/ghost/telemetry" {
		t.Errorf("key of a letter without publisher: %q", w.msgs[1].Key)
	}
}

func TestWatchRegistry(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	path := filepath.Join(t.TempDir(), "devices.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("devices:\n  - {id: a, type: waterlogging, location: {district: xuhui}}\n")
	got := make(chan *mqtt.Registry, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- mqtt.WatchRegistry(ctx, path, cat, 5*time.Millisecond, nil, func(r *mqtt.Registry) { got <- r })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case r := <-got:
		t.Fatalf("the file as loaded was applied again: %d devices", r.Devices())
	case <-time.After(50 * time.Millisecond):
	}
	write("devices:\n  - {id: a, type: flood, location: {district: xuhui}}\n") // refused: the last good one stays
	select {
	case r := <-got:
		t.Fatalf("a bad registry was applied: %d devices", r.Devices())
	case <-time.After(50 * time.Millisecond):
	}
	write("devices:\n  - {id: a, type: waterlogging, location: {district: xuhui}}\n  - {id: b, type: waterlogging, location: {district: xuhui}}\n")
	select {
	case r := <-got:
		if _, ok := r.Device("b"); !ok {
			t.Errorf("the new registry has no device b")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the changed registry was not applied")
	}
}
