package casestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventIndexTTL is how long the case of an event is remembered: long enough
// for a citizen to follow a report to its end and a while after.
const EventIndexTTL = 400 * 24 * time.Hour

// eventKey is the case holding event key (source/id) in district.
func eventKey(district, key string) string {
	return prefix + "case-of-event:" + tag(district) + ":" + key
}

// IndexEvents remembers that case id (of district) holds the events keys
// (source/id), so that a source can follow its report to the case it
// became. It is idempotent; an event already held by another case keeps
// the first one.
func (s *Store) IndexEvents(ctx context.Context, district, id string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if !ValidDistrict(district) {
		return ErrInvalid
	}
	p := s.rdb.Pipeline()
	for _, k := range keys {
		p.SetNX(ctx, eventKey(district, k), id, EventIndexTTL)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("index the events of %s: %w", id, err)
	}
	return nil
}

// CaseOfEvent returns the id of the case holding the event key (source/id)
// of district (a case merged since names the one it went into), or
// ErrNotFound when no case holds it.
func (s *Store) CaseOfEvent(ctx context.Context, district, key string) (string, error) {
	if !ValidDistrict(district) {
		return "", ErrNotFound
	}
	id, err := s.rdb.Get(ctx, eventKey(district, key)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("the case of event %s: %w", key, err)
	}
	return id, nil
}

// alertKey is the latest case opened from the alert (a fingerprint) in
// district.
func alertKey(district, alertID string) string {
	return prefix + "case-of-alert:" + tag(district) + ":" + alertID
}

// IndexAlert remembers, in one round trip, that case id (of district) was
// opened from the alert alertID and holds the events keys (source/id), as
// IndexEvents does. The alert's latest case is what a case linked to the
// alert's is linked into (CaseOfAlert).
func (s *Store) IndexAlert(ctx context.Context, district, id, alertID string, keys []string) error {
	if !ValidDistrict(district) {
		return ErrInvalid
	}
	p := s.rdb.Pipeline()
	p.Set(ctx, alertKey(district, alertID), id, EventIndexTTL)
	for _, k := range keys {
		p.SetNX(ctx, eventKey(district, k), id, EventIndexTTL)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("index the alert and events of %s: %w", id, err)
	}
	return nil
}

// CaseOfAlert returns the id of the latest case opened from the alert
// alertID of district, or ErrNotFound.
func (s *Store) CaseOfAlert(ctx context.Context, district, alertID string) (string, error) {
	if !ValidDistrict(district) {
		return "", ErrNotFound
	}
	id, err := s.rdb.Get(ctx, alertKey(district, alertID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("the case of alert %s: %w", alertID, err)
	}
	return id, nil
}
