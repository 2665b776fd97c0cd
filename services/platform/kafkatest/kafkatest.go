// Package kafkatest gives tests a Kafka to talk to over real TCP: the
// brokers named by KAFKA_BROKERS when it is set, otherwise an in-process
// kfake cluster on a loopback port that is closed when the test ends.
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/cityhub/cityhub/services/platform/stream"
)

// Partitions is the partition count of every test topic.
const Partitions = 3

// Cluster is a Kafka for one test.
type Cluster struct {
	Brokers []string
	// Topics are cityhub's topics, created with Partitions partitions. On an
	// external cluster their names carry a prefix unique to the test.
	Topics stream.Topics
	// Fake is the in-process cluster, for fault injection; nil when the test
	// runs against KAFKA_BROKERS.
	Fake *kfake.Cluster
}

var seq atomic.Int64

// Start returns a Kafka for t with cityhub's topics created.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		c.Brokers = strings.Split(env, ",")
		c.Topics = stream.DefaultTopics(fmt.Sprintf("test-%d-%d.", time.Now().UnixNano(), seq.Add(1)))
	} else {
		fake, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatalf("kafkatest: start kfake: %v", err)
		}
		t.Cleanup(fake.Close)
		c.Fake = fake
		c.Brokers = fake.ListenAddrs()
		c.Topics = stream.DefaultTopics("")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.EnsureTopics(ctx, c.Brokers, Partitions, 1, c.Topics.All()...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return c
}

// Group returns a consumer group name unique to this call.
func Group(name string) string {
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano(), seq.Add(1))
}
