// Package snapshot serves the live gateway's snapshots from the state that
// the ruler (firing alerts) and dispatch (open cases) keep in Redis.
package snapshot

import (
	"context"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/live"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
)

// Stores joins the two stores into a live.Snapshotter.
type Stores struct {
	Alerts *alertstate.Store
	Cases  *casestore.Store
}

var _ live.Snapshotter = Stores{}

// FiringAlerts returns every firing alert.
func (s Stores) FiringAlerts(ctx context.Context) ([]*cityhubv1.Alert, error) {
	return s.Alerts.Firing(ctx)
}

// OpenCases returns every open case.
func (s Stores) OpenCases(ctx context.Context) ([]*cityhubv1.Case, error) {
	return s.Cases.OpenCases(ctx)
}
