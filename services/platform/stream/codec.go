package stream

import (
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
)

const (
	// ContentTypeHeader names the header that says how a value is encoded.
	ContentTypeHeader = "content-type"
	// ContentTypeProtobuf is the content type of every cityhub value.
	ContentTypeProtobuf = "application/x-protobuf"
	// MaxValueBytes bounds a value before it is decoded.
	MaxValueBytes = 1 << 20
)

// Marshal returns a message for topic, keyed by key, carrying m.
func Marshal(topic, key string, m proto.Message) (kafka.Message, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("marshal %T: %w", m, err)
	}
	return kafka.Message{
		Topic:   topic,
		Key:     []byte(key),
		Value:   b,
		Headers: []kafka.Header{{Key: ContentTypeHeader, Value: []byte(ContentTypeProtobuf)}},
	}, nil
}

// Unmarshal decodes msg's value into m. It refuses a value that is too
// large or that says it is not protobuf.
func Unmarshal(msg kafka.Message, m proto.Message) error {
	if ct := Header(msg, ContentTypeHeader); ct != "" && ct != ContentTypeProtobuf {
		return fmt.Errorf("content-type %q, want %s", ct, ContentTypeProtobuf)
	}
	if len(msg.Value) > MaxValueBytes {
		return fmt.Errorf("value of %d bytes exceeds %d", len(msg.Value), MaxValueBytes)
	}
	if len(msg.Value) == 0 {
		return errors.New("empty value")
	}
	if err := proto.Unmarshal(msg.Value, m); err != nil {
		return fmt.Errorf("decode %T: %w", m, err)
	}
	return nil
}

// Header returns the value of msg's last header named key, or "".
func Header(msg kafka.Message, key string) string {
	for i := len(msg.Headers) - 1; i >= 0; i-- {
		if msg.Headers[i].Key == key {
			return string(msg.Headers[i].Value)
		}
	}
	return ""
}
