package delivery

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait before attempt n+1 (n ≥ 1) of a delivery: base
// doubled per attempt up to max, with full jitter (a random wait between
// half and all of it), so that deliveries failed together do not come
// back together.
func backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base << min(n-1, 20)
	if d <= 0 || d > max {
		d = max
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	return d/2 + time.Duration(rnd()*float64(d/2))
}
