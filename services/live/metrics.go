package live

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the gateway's Prometheus metrics.
type metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	sent          *prometheus.CounterVec
	// The sent counter of each frame type, resolved once: the writers
	// count every frame.
	sentSnapshot, sentAlert, sentCase, sentRemoved, sentError, sentReset prometheus.Counter
	deliveryLag                                                          prometheus.Histogram
	dropped                                                              prometheus.Counter
	tracked                                                              prometheus.Gauge
	resets                                                               prometheus.Counter
	closes                                                               *prometheus.CounterVec
	refused                                                              *prometheus.CounterVec
	badFrames                                                            prometheus.Counter
	subscribesRefused                                                    prometheus.Counter
	snapshotErrors                                                       prometheus.Counter
	deltas                                                               *prometheus.CounterVec
	undecodable                                                          *prometheus.CounterVec
	restarts                                                             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		connections: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_live_connections",
			Help: "Open websocket connections.",
		}),
		subscriptions: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_live_subscriptions",
			Help: "Connections with an active subscription.",
		}),
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_live_messages_sent_total",
			Help: "Frames written to clients, by frame type.",
		}, []string{"type"}),
		deliveryLag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cityhub_live_delivery_lag_seconds",
			Help:    "Time from an alert's or case's updated_at to the moment its delta was written to a client.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_live_deltas_dropped_total",
			Help: "Deltas held back during a snapshot and then not sent, because the snapshot or a later change superseded them.",
		}),
		tracked: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_live_tracked_items",
			Help: "Open alerts and cases whose last state the gateway keeps, to send removed frames.",
		}),
		resets: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_live_resets_total",
			Help: "Clients reset and closed because their queue overflowed.",
		}),
		closes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_live_closes_total",
			Help: "Connections ended, by why.",
		}, []string{"reason"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_live_refused_total",
			Help: "Websocket handshakes refused, by why.",
		}, []string{"reason"}),
		badFrames: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_live_bad_frames_total",
			Help: "Client frames answered with an error frame.",
		}),
		subscribesRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_live_subscribes_refused_total",
			Help: "Subscribes refused because the connection subscribed too often.",
		}),
		snapshotErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_live_snapshot_errors_total",
			Help: "Snapshots that could not be taken.",
		}),
		deltas: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_live_deltas_total",
			Help: "Changes read from Kafka and fanned out, by stream.",
		}, []string{"stream"}),
		undecodable: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_live_undecodable_total",
			Help: "Kafka messages and snapshot items skipped because they could not be decoded or rendered, by topic.",
		}, []string{"topic"}),
		restarts: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_live_follower_restarts_total",
			Help: "Times following the topics failed and was started again.",
		}),
	}
	m.sentSnapshot = m.sent.WithLabelValues(frameSnapshot)
	m.sentAlert = m.sent.WithLabelValues(frameAlert)
	m.sentCase = m.sent.WithLabelValues(frameCase)
	m.sentRemoved = m.sent.WithLabelValues(frameRemoved)
	m.sentError = m.sent.WithLabelValues(frameError)
	m.sentReset = m.sent.WithLabelValues(frameReset)
	return m
}
