package ruler

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Rebuild restores the alert state in Redis from what the alerts topic
// holds, and the silences set at run time from theirs, for a Redis that
// lost them (the embedded hub's starts empty). It returns how many alerts
// it wrote. A firing alert of a rule with
// resolve_after resolves that long after its last update, as it would
// have; an undecodable message is skipped (the dead-letter topic already
// has it from the consumer that met it first).
func (r *Ruler) Rebuild(ctx context.Context) (int, error) {
	resolveAfter := make(map[string]time.Duration)
	for _, p := range r.currentPacks() {
		for _, rule := range p.Rules {
			resolveAfter[rule.Name()] = rule.ResolveAfter
		}
	}
	n := 0
	err := stream.Replay(ctx, r.opts.Brokers, r.opts.Topics.Alerts, func(m kafka.Message) error {
		a := new(cityhubv1.Alert)
		if err := stream.Unmarshal(m, a); err != nil || a.GetId() == "" || a.GetVersion() <= 0 {
			return nil
		}
		var resolveAt time.Time
		if d := resolveAfter[a.GetRule()]; d > 0 && a.GetUpdatedAt() != nil {
			resolveAt = a.GetUpdatedAt().AsTime().Add(d)
		}
		wrote, err := r.store.Restore(ctx, a, resolveAt)
		if err != nil {
			return err
		}
		if wrote {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("ruler: rebuild alert state: %w", err)
	}
	if _, err := r.rebuildSilences(ctx); err != nil {
		return n, err
	}
	return n, nil
}
