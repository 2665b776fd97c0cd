package stream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SetWatchdogTicks makes the watchdogs of f tick when the test sends on
// ticks rather than on a timer.
func SetWatchdogTicks(f *Follower, ticks <-chan time.Time) {
	f.ticker = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
}

// Stalls returns the stall counter of f's topic.
func Stalls(f *Follower, topic string) float64 {
	return testutil.ToFloat64(f.stalls.WithLabelValues(topic))
}
