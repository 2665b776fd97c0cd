package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	alerts  *prometheus.CounterVec
	changes *prometheus.CounterVec
	actions *prometheus.CounterVec
	// authzFailures counts actions refused for the caller's role or scope.
	authzFailures *prometheus.CounterVec

	timerChanges  prometheus.Counter
	timerReclaims prometheus.Counter
	timerFailures prometheus.Counter
	sweepFailures prometheus.Counter
	// mergeRepairs counts merges the sweeper finished.
	mergeRepairs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_alerts_total",
			Help: "Alerts consumed, by outcome: opened (a case), update (a later version of the alert that opened a case), duplicate (the opening alert again: its case existed), linked (an inhibited alert whose case was linked), ignored (nothing to dispatch), rejected (dead-lettered).",
		}, []string{"outcome"}),
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_case_changes_total",
			Help: "Case changes published on the cases topic, by action.",
		}, []string{"action"}),
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_api_actions_total",
			Help: "Case actions and creations requested through the API, by action and result.",
		}, []string{"action", "result"}),
		authzFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_dispatch_authz_failures_total",
			Help: "Requests on a case refused for the caller's role or scope (403, or 404 on a case outside it), by action: a workflow action, read (of the case or its refusals), or other.",
		}, []string{"action"}),
		timerChanges: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_dispatch_timer_changes_total",
			Help: "Warnings and escalations the sweeper applied to cases when their deadline moments came.",
		}),
		timerReclaims: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_dispatch_timer_reclaims_total",
			Help: "Case timers taken over after another sweeper's lease ran out.",
		}),
		timerFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_dispatch_timer_failures_total",
			Help: "Deadline moments the sweeper could not apply; each is tried again later.",
		}),
		mergeRepairs: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_dispatch_merge_repairs_total",
			Help: "Merges the sweeper finished by recording the duplicate on its target, after the request that merged stopped short.",
		}),
		sweepFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_dispatch_sweep_failures_total",
			Help: "Sweeps of the case timers that ended with an error.",
		}),
	}
}
