package alertstate

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

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
	if a.GetId() == "" || a.GetVersion() <= 0 {
		return false, fmt.Errorf("alertstate: restore needs an alert with an id and a version")
	}
	var state string
	switch a.GetState() {
	case cityhubv1.AlertState_ALERT_STATE_FIRING:
		state = "firing"
	case cityhubv1.AlertState_ALERT_STATE_RESOLVED:
		state = "resolved"
	case cityhubv1.AlertState_ALERT_STATE_PENDING:
		state = "pending"
	default:
		return false, fmt.Errorf("alertstate: restore alert %s: no state", a.GetId())
	}
	b, err := proto.Marshal(body(a))
	if err != nil {
		return false, err
	}
	var resolveMs int64
	if !resolveAt.IsZero() && state != "resolved" {
		resolveMs = resolveAt.UnixMilli()
	}
	args := []any{
		state, a.GetVersion(), a.GetEventCount(),
		ms(a.GetStartsAt().AsTime(), a.GetStartsAt() != nil),
		ms(a.GetUpdatedAt().AsTime(), a.GetUpdatedAt() != nil),
		ms(a.GetEndsAt().AsTime(), a.GetEndsAt() != nil),
		b, resolveMs, s.ttl.Milliseconds(),
		int(a.GetSeverity()), int(a.GetPreviousSeverity()),
		ms(a.GetSeverityChangedAt().AsTime(), a.GetSeverityChangedAt() != nil),
		ms(a.GetFiresAt().AsTime(), a.GetFiresAt() != nil),
		joinMarks(a.GetSilencedBy()), joinMarks(a.GetInhibitedBy()),
	}
	for _, id := range a.GetEventIds() {
		args = append(args, id)
	}
	k := keys(a.GetId())
	n, err := restoreScript.Run(ctx, s.c, k[:2], args...).Int()
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
	if err := s.index(ctx, []Result{{Alert: current, Changed: true, resolveAt: resolveMs}}); err != nil {
		return false, err
	}
	return true, nil
}

func ms(t time.Time, set bool) int64 {
	if !set {
		return 0
	}
	return t.UnixMilli()
}
