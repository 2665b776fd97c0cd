package casestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxDenials is how many refused attempts are kept per case, newest first.
// The list is a record for people reviewing misuse, not a log of every
// probe: once it is full the oldest attempts fall off.
const MaxDenials = 200

// Denial is an action on a case that was refused because the caller's role
// or scope does not allow it (authz_fail). Recording one never changes the
// case: its version, history and indexes stay as they are.
type Denial struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Role       string    `json:"role"`
	Department string    `json:"department,omitempty"`
	// Action is what the caller asked for, as it named it.
	Action string `json:"action"`
	// Part is the department whose part the request named, if any.
	Part string `json:"part,omitempty"`
	// Reason says why it was refused, in the words the caller was given.
	Reason string `json:"reason"`
	// Status is the HTTP status the caller got: 403, or 404 when the case
	// is outside what the caller may even see.
	Status int `json:"status"`
}

// Denial strings are bounded before they are stored: the action and part
// come from a request body the API has only partly checked.
const maxDenialField = 256

func clip(s string) string {
	if len(s) > maxDenialField {
		return s[:maxDenialField]
	}
	return s
}

// RecordDenial keeps d on the list of refused attempts of case id, in one
// script over two keys with the case's hash tag (so it runs on Redis Cluster
// too). It records nothing and returns ErrNotFound for an id that is not a
// case: a caller probing made-up ids must not be able to create keys.
func (s *Store) RecordDenial(ctx context.Context, id string, d Denial) error {
	district, ok := DistrictOf(id)
	if !ok {
		return ErrNotFound
	}
	d.Actor, d.Role, d.Department = clip(d.Actor), clip(d.Role), clip(d.Department)
	d.Action, d.Part, d.Reason = clip(d.Action), clip(d.Part), clip(d.Reason)
	d.At = d.At.UTC()
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode denial on %s: %w", id, err)
	}
	res, err := recordDenialScript.Run(ctx, s.rdb,
		[]string{caseKey(district, id), deniedKey(district, id)}, b, MaxDenials).Int()
	if err != nil {
		return fmt.Errorf("record denial on %s: %w", id, err)
	}
	if res == 0 {
		return ErrNotFound
	}
	return nil
}

// recordDenialScript pushes ARGV[1] onto KEYS[2] only when the case KEYS[1]
// exists, and keeps the newest ARGV[2] entries. A script rather than
// MULTI, because the existence check and the push must be one step.
var recordDenialScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
`)

// Denials returns the refused attempts on case id, newest first, at most
// MaxDenials. A case nobody was refused on has none; an id that is not a
// case is ErrNotFound.
func (s *Store) Denials(ctx context.Context, id string) ([]Denial, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, ErrNotFound
	}
	pipe := s.rdb.Pipeline()
	exists := pipe.Exists(ctx, caseKey(district, id))
	list := pipe.LRange(ctx, deniedKey(district, id), 0, MaxDenials-1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read denials of %s: %w", id, err)
	}
	if exists.Val() == 0 {
		return nil, ErrNotFound
	}
	out := make([]Denial, 0, len(list.Val()))
	for _, raw := range list.Val() {
		var d Denial
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			return nil, fmt.Errorf("decode denial of %s: %w", id, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func deniedKey(district, id string) string { return caseKey(district, id) + ":denied" }
