package open311

import (
	"context"
	"time"
)

// Status is where the case a report became stands, as Open311 shows it.
type Status struct {
	// CaseID is the case that holds the report's event (after merges, the
	// case it was merged into).
	CaseID string
	// Open is false once the case is closed or cancelled.
	Open bool
	// Notes are the case's latest handling note (the handle report, a
	// return or cancel reason, the verification): status_notes.
	Notes string
	// Agency is the name of the case's lead department: agency_responsible.
	Agency string
	// Updated is when the case last changed: updated_datetime.
	Updated time.Time
	// Expected, when set, is the case's handling deadline:
	// expected_datetime.
	Expected time.Time
}

// Cases finds the case that holds an event.
type Cases interface {
	// Follow returns the status of the case holding the event source/id
	// of district, or false when no case holds it (yet). It must be cheap:
	// a list of requests follows each of them.
	Follow(ctx context.Context, district, source, eventID string) (Status, bool, error)
}

// CasesFunc adapts a function to Cases.
type CasesFunc func(ctx context.Context, district, source, eventID string) (Status, bool, error)

// Follow calls f.
func (f CasesFunc) Follow(ctx context.Context, district, source, eventID string) (Status, bool, error) {
	return f(ctx, district, source, eventID)
}
