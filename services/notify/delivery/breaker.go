package delivery

import (
	"sync"
	"time"
)

// BreakerState is the state of a receiver's circuit breaker.
type BreakerState int

const (
	// Closed: deliveries go through.
	Closed BreakerState = iota
	// HalfOpen: the cool-down is over; the next delivery tries the
	// receiver again, and its outcome closes or reopens the breaker.
	HalfOpen
	// Open: the receiver failed too often in a row; deliveries wait (or go
	// to the fallback) until the cool-down is over.
	Open
)

func (s BreakerState) String() string {
	switch s {
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "closed"
}

// Breaker is a receiver's circuit breaker: Threshold failures in a row
// open it for Cooldown. It is safe for concurrent use.
type Breaker struct {
	Threshold int
	Cooldown  time.Duration

	mu       sync.Mutex
	failures int
	openedAt time.Time
}

// State returns the state at now.
func (b *Breaker) State(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state(now)
}

func (b *Breaker) state(now time.Time) BreakerState {
	switch {
	case b.openedAt.IsZero():
		return Closed
	case now.Sub(b.openedAt) < b.Cooldown:
		return Open
	}
	return HalfOpen
}

// ReopensAt returns when an open breaker lets a delivery try again.
func (b *Breaker) ReopensAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openedAt.Add(b.Cooldown)
}

// Success records a delivery that went through: the breaker closes.
func (b *Breaker) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures, b.openedAt = 0, time.Time{}
}

// Failure records a failed delivery at now. It opens the breaker at the
// Threshold-th failure in a row, and again at once when the trial
// delivery of a half-open breaker fails.
func (b *Breaker) Failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.state(now) == HalfOpen || b.failures >= b.Threshold {
		b.openedAt = now
	}
}
