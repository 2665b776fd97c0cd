package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topics names cityhub's topics.
type Topics struct {
	Events    string
	EventsDLQ string
	Alerts    string
	Cases     string
	// Notifications is notify's outbox: every message it decided to send,
	// before it is sent.
	Notifications string
	// Silences is the record of the silences operators set at run time.
	Silences string
}

// DefaultTopics returns the topic names of ARCHITECTURE.md's "Topics", each prefixed by
// prefix (empty in production; tests against a shared broker use one).
func DefaultTopics(prefix string) Topics {
	return Topics{
		Events:    prefix + "city.events.v1",
		EventsDLQ: prefix + "city.events.dlq.v1",
		Alerts:    prefix + "city.alerts.v1",
		Cases:     prefix + "city.cases.v1",

		Notifications: prefix + "city.notifications.v1",
		Silences:      prefix + "city.silences.v1",
	}
}

// All returns every topic name.
func (t Topics) All() []string {
	return []string{t.Events, t.EventsDLQ, t.Alerts, t.Cases, t.Notifications, t.Silences}
}

// EnsureTopics creates the topics that do not exist yet, each with the given
// partitions and replication factor; topics that exist are left as they are.
func EnsureTopics(ctx context.Context, brokers []string, partitions, replication int, topics ...string) error {
	c, done := adminClient(brokers)
	defer done()
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replication})
	}
	resp, err := c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for t, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// Partitions returns the partition ids of topic.
func Partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	c, done := adminClient(brokers)
	defer done()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		return ids, nil
	}
	return nil, fmt.Errorf("metadata of %s: no such topic", topic)
}

// offsets returns the first and the next offset of every partition of
// topic: a reader that starts at first[p] and stops before last[p] reads what
// the partition held when offsets was called.
func offsets(ctx context.Context, brokers []string, topic string) (first, last map[int]int64, err error) {
	ids, err := Partitions(ctx, brokers, topic)
	if err != nil {
		return nil, nil, err
	}
	c, done := adminClient(brokers)
	defer done()
	var reqs []kafka.OffsetRequest
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	first, last = make(map[int]int64), make(map[int]int64)
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		first[p.Partition] = p.FirstOffset
		last[p.Partition] = p.LastOffset
	}
	return first, last, nil
}

// adminClient returns a client for one-off admin requests with a transport
// of its own, and a func that closes the transport's connections: kafka-go's
// default transport keeps pooled connections (and their goroutines) open
// for the life of the process.
func adminClient(brokers []string) (*kafka.Client, func()) {
	t := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: t}, t.CloseIdleConnections
}
