package mqtt

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of a message, the values of the outcome label of
// cityhub_mqtt_messages_total.
const (
	// OutcomeBridged: its events were written.
	OutcomeBridged = "bridged"
	// OutcomeDuplicate: every event of it was written before (a
	// redelivery, or a reading sent twice).
	OutcomeDuplicate = "duplicate"
	// OutcomeIgnored: it holds no reading the registry maps (a heartbeat).
	OutcomeIgnored = "ignored"
	// OutcomeDLQ: nothing of it could be mapped; it went to the DLQ.
	OutcomeDLQ = "dlq"
	// OutcomePartial: some of its events were written and it went to the
	// DLQ for the rest.
	OutcomePartial = "partial"
)

type metrics struct {
	messages struct {
		bridged, duplicate, ignored, dlq, partial prometheus.Counter
	}
	batch       prometheus.Histogram
	retries     prometheus.Counter
	connected   prometheus.Gauge
	connections *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		batch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cityhub_mqtt_batch_seconds",
			Help:    "Time from the first message of a batch reaching the bridge to the acknowledgement of the batch to the broker, after Kafka acknowledged its events.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_mqtt_write_retries_total",
			Help: "Writes of a batch's events or dead letters that failed and were retried; nothing is acknowledged to the broker meanwhile.",
		}),
		connected: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_mqtt_connected",
			Help: "1 while the bridge is connected and subscribed to its MQTT broker.",
		}),
		connections: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_mqtt_connections_total",
			Help: "Connections to the MQTT broker by what happened: established, or lost (including attempts that failed).",
		}, []string{"event"}),
	}
	msgs := f.NewCounterVec(prometheus.CounterOpts{
		Name: "cityhub_mqtt_messages_total",
		Help: "MQTT messages acknowledged to the broker, by outcome: bridged, duplicate (every event written before), ignored (no reading the registry maps), dlq (dead-lettered whole), partial (some events written, dead-lettered for the rest).",
	}, []string{"outcome"})
	m.messages.bridged = msgs.WithLabelValues(OutcomeBridged)
	m.messages.duplicate = msgs.WithLabelValues(OutcomeDuplicate)
	m.messages.ignored = msgs.WithLabelValues(OutcomeIgnored)
	m.messages.dlq = msgs.WithLabelValues(OutcomeDLQ)
	m.messages.partial = msgs.WithLabelValues(OutcomePartial)
	return m
}
