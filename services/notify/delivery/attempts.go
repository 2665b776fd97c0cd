package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Attempt is one try to deliver a notification, as the case shows it.
type Attempt struct {
	At         time.Time `json:"at"`
	DeliveryID string    `json:"delivery_id"`
	Receiver   string    `json:"receiver"`
	Change     string    `json:"change"`
	Department string    `json:"department,omitempty"`
	Person     string    `json:"person,omitempty"`
	// Outcome is sent, retrying, failed_over (to the fallback), dead
	// (given up: dead-lettered) or cancelled.
	Outcome string `json:"outcome"`
	// Status is the HTTP status or platform code of a failure.
	Status     int     `json:"status,omitempty"`
	Error      string  `json:"error,omitempty"`
	Seconds    float64 `json:"seconds"`
	Attempt    int     `json:"attempt"`
	FallbackTo string  `json:"fallback_to,omitempty"`
	// RetryIn is how long the receiver is left alone before the retry.
	RetryIn float64 `json:"retry_in_seconds,omitempty"`
	Route   string  `json:"route,omitempty"`
}

// Outcomes of an attempt.
const (
	Sent       = "sent"
	Retrying   = "retrying"
	FailedOver = "failed_over"
	Dead       = "dead"
)

// MaxAttemptsKept bounds the attempts kept per case, the newest kept.
const MaxAttemptsKept = 500

// Log keeps the attempts of every case's notifications in Redis, under the
// case's district as hash tag (cityhub:notify:case:{D}:ID:attempts). It is
// safe for concurrent use.
type Log struct {
	rdb redis.UniversalClient
}

// NewLog returns a Log on rdb.
func NewLog(rdb redis.UniversalClient) *Log { return &Log{rdb: rdb} }

func attemptsKey(caseID string) (string, bool) {
	district, _, ok := strings.Cut(caseID, "-")
	if !ok || district == "" || strings.ContainsAny(caseID, "{}") {
		return "", false
	}
	return "cityhub:notify:case:{" + district + "}:" + caseID + ":attempts", true
}

// Record appends a to the attempts of caseID.
func (l *Log) Record(ctx context.Context, caseID string, a Attempt) error {
	return l.RecordAll(ctx, []CaseAttempt{{CaseID: caseID, Attempt: a}})
}

// CaseAttempt is an attempt and the case it is kept with.
type CaseAttempt struct {
	CaseID string
	Attempt
}

// RecordAll appends attempts to their cases' in one round trip.
func (l *Log) RecordAll(ctx context.Context, attempts []CaseAttempt) error {
	p := l.rdb.Pipeline()
	for _, a := range attempts {
		key, ok := attemptsKey(a.CaseID)
		if !ok {
			continue // not a case: an alert-only route's messages are counted, not kept
		}
		b, err := json.Marshal(a.Attempt)
		if err != nil {
			return err
		}
		p.LPush(ctx, key, b)
		p.LTrim(ctx, key, 0, MaxAttemptsKept-1)
	}
	if p.Len() == 0 {
		return nil
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("record %d attempts: %w", len(attempts), err)
	}
	return nil
}

// List returns the attempts of caseID, the oldest first.
func (l *Log) List(ctx context.Context, caseID string) ([]Attempt, error) {
	key, ok := attemptsKey(caseID)
	if !ok {
		return nil, nil
	}
	raw, err := l.rdb.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", caseID, err)
	}
	out := make([]Attempt, 0, len(raw))
	for i := len(raw) - 1; i >= 0; i-- {
		var a Attempt
		if json.Unmarshal([]byte(raw[i]), &a) == nil {
			out = append(out, a)
		}
	}
	return out, nil
}
