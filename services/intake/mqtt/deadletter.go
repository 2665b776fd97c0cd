package mqtt

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/cityhub/cityhub/services/platform/stream"
)

// DeadLetter is an MQTT message the bridge could not turn into events, in
// whole or in part.
type DeadLetter struct {
	// Topic is the MQTT topic the message came on.
	Topic string
	// Publisher is the device or gateway the topic names, "" when none.
	Publisher string
	// Payload is the message as received, cut to the bridge's
	// MaxPayloadBytes.
	Payload []byte
	// Reason says what could not be mapped.
	Reason string
	// At is when the bridge received the message.
	At time.Time
}

// DeadLetterer keeps what the bridge could not map. DeadLetter returns
// only once the letters are stored (a Kafka write acknowledged); on an
// error the bridge retries the same letters, so it must tolerate a
// repeated call.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, letters []DeadLetter) error
}

// DeadLetterFunc adapts a func to a DeadLetterer.
type DeadLetterFunc func(ctx context.Context, letters []DeadLetter) error

// DeadLetter calls f.
func (f DeadLetterFunc) DeadLetter(ctx context.Context, letters []DeadLetter) error {
	return f(ctx, letters)
}

// Headers a dead-lettered MQTT message carries, besides the dead-letter
// topic's own (stream.DLQReasonHeader, stream.DLQAtHeader,
// stream.DLQAttemptsHeader). An MQTT message has no Kafka topic, partition
// or offset, so it carries none of those headers.
const (
	// DLQViaHeader says which adapter dead-lettered the message: "mqtt".
	DLQViaHeader = "dlq-via"
	// DLQMQTTTopicHeader is the MQTT topic the message came on.
	DLQMQTTTopicHeader = "dlq-mqtt-topic"
)

// MessageWriter writes Kafka messages and returns once they are
// acknowledged; *stream.Writer is one.
type MessageWriter interface {
	Write(ctx context.Context, msgs ...kafka.Message) error
}

var _ MessageWriter = (*stream.Writer)(nil)

// KafkaDeadLetters returns a DeadLetterer that writes each letter to
// topic (the events' dead-letter topic), keyed by its publisher (or its
// MQTT topic when the publisher is unknown), its value the payload as
// received, with headers naming the MQTT topic and the reason.
func KafkaDeadLetters(w MessageWriter, topic string) DeadLetterFunc {
	return func(ctx context.Context, letters []DeadLetter) error {
		msgs := make([]kafka.Message, len(letters))
		for i, l := range letters {
			key := l.Publisher
			if key == "" {
				key = l.Topic
			}
			msgs[i] = kafka.Message{
				Topic: topic,
				Key:   []byte(key),
				Value: l.Payload,
				Headers: []kafka.Header{
					{Key: DLQViaHeader, Value: []byte(Via)},
					{Key: DLQMQTTTopicHeader, Value: []byte(l.Topic)},
					{Key: stream.DLQReasonHeader, Value: []byte(l.Reason)},
					{Key: stream.DLQAttemptsHeader, Value: []byte("1")},
					{Key: stream.DLQAtHeader, Value: []byte(l.At.UTC().Format(time.RFC3339Nano))},
				},
			}
		}
		return w.Write(ctx, msgs...)
	}
}
