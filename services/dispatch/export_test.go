package dispatch

import (
	"context"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// ApplyAlerts applies alerts as one batch of the alerts topic, for tests
// that need to know what a batch held.
func ApplyAlerts(s *Service, ctx context.Context, alerts ...*cityhubv1.Alert) error {
	batch := make([]stream.Record[*cityhubv1.Alert], len(alerts))
	for i, a := range alerts {
		batch[i].Value = a
	}
	return s.applyAlerts(ctx, batch)
}
