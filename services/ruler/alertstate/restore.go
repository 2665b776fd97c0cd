package alertstate

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

var (
	//go:embed restore.lua
	restoreSrc    string
	restoreScript = redis.NewScript(restoreSrc)
)

// Restore writes a, as read back from the alerts topic, unless the store
// already holds it at that version or later; it reports whether it wrote.
// resolveAt is when a firing or pending alert resolves by itself (zero: only a clear
// or a later Restore resolves it). Rebuilding an empty Redis replays the
// topic through Restore, in any order, and ends with the latest state of
// every alert. Count windows that had not fired are not in the topic and
// start empty.
func (s *Store) Restore(ctx context.Context, a *cityhubv1.Alert, resolveAt time.Time) (bool, error) {
	rec, err := restoreRecord(a, resolveAt)
	if err != nil {
		return false, err
	}
	k := keys(a.GetId())
	n, err := restoreScript.Run(ctx, s.c, k[:2], restoreArgs(&rec, a.GetEventIds(), s.ttl)...).Int()
	if err != nil {
		return false, fmt.Errorf("alertstate: restore alert %s: %w", a.GetId(), err)
	}
	if n == 0 {
		return false, nil
	}
	current, err := s.Get(ctx, a.GetId())
	if err != nil {
		return false, err
	}
	if err := s.index(ctx, []Result{{Alert: current, Changed: true, resolveAt: rec.resolveAt}}); err != nil {
		return false, err
	}
	return true, nil
}

// restoreArgs returns restore.lua's arguments, name/value pairs: ttl, every
// column of r, and event_id once per event id, oldest first. Restore runs
// in a rebuild only, so unlike the batch scripts it can afford the names.
func restoreArgs(r *record, ids []string, ttl time.Duration) []any {
	a := make([]any, 0, 2+2*len(columns)+2*len(ids))
	a = append(a, "ttl", ttl.Milliseconds())
	for i := range columns {
		a = append(a, columns[i].name, r.field(&columns[i]))
	}
	for _, id := range ids {
		a = append(a, "event_id", id)
	}
	return a
}
