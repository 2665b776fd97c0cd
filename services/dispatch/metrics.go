package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	alerts  *prometheus.CounterVec
	changes *prometheus.CounterVec
	actions *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_alerts_total",
			Help: "Alerts consumed, by outcome: opened (a case), duplicate (its case existed), ignored (nothing to dispatch), rejected (dead-lettered).",
		}, []string{"outcome"}),
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_case_changes_total",
			Help: "Case changes published on the cases topic, by action.",
		}, []string{"action"}),
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_api_actions_total",
			Help: "Case actions and creations requested through the API, by action and result.",
		}, []string{"action", "result"}),
	}
}
