package stream

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type consumerMetrics struct {
	messages     *prometheus.CounterVec
	retries      *prometheus.CounterVec
	batchSeconds *prometheus.HistogramVec
}

// newConsumerMetrics registers the consumer metrics on reg, or reuses the
// ones an earlier consumer registered there: one process may run several
// consumers on one registry.
func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	return &consumerMetrics{
		messages: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_consumer_messages_total",
			Help: "Messages consumed, by topic, group and outcome (applied or dead_lettered).",
		}, []string{"topic", "group", "outcome"})),
		retries: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_consumer_apply_retries_total",
			Help: "Batches whose application failed and was retried.",
		}, []string{"topic", "group"})),
		batchSeconds: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cityhub_consumer_batch_seconds",
			Help:    "Time to decode, apply and dead-letter one fetched batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"topic", "group"})),
	}
}

// register registers c on reg, returning the collector already registered
// under the same description if there is one.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: two metrics of one name and different shapes
	}
	return c
}
