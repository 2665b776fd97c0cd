package live

import (
	"slices"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/scope"
)

// item is what scope and filters look at: the same for a snapshot entry and
// for a delta.
type item struct {
	stream   string
	id       string
	version  int64
	district string
	severity cityhubv1.Severity
	// state is the alert state or the case status by name; open says
	// whether the item belongs on a screen (a firing alert, an open case).
	state string
	open  bool
	// updated is when the item last changed; zero when unknown.
	updated time.Time
	// depts are the departments with a part: for a case its lead, assists
	// and parts, for an alert its dispatch's lead and assists.
	depts []string
}

func alertItem(a *cityhubv1.Alert) item {
	it := item{
		stream: streamAlerts, id: a.GetId(), version: a.GetVersion(), district: a.GetDistrict(), severity: a.GetSeverity(),
		state: a.GetState().Name(), open: a.GetState() == cityhubv1.AlertState_ALERT_STATE_FIRING,
	}
	if a.GetUpdatedAt() != nil {
		it.updated = a.GetUpdatedAt().AsTime()
	}
	it.depts = scope.AlertDepartments(a)
	return it
}

func caseItem(c *cityhubv1.Case) item {
	it := item{
		stream: streamCases, id: c.GetId(), version: c.GetVersion(), district: c.GetDistrict(), severity: c.GetSeverity(),
		state: c.GetStatus().Name(), open: c.GetStatus().Open(),
	}
	if c.GetUpdatedAt() != nil {
		it.updated = c.GetUpdatedAt().AsTime()
	}
	it.depts = scope.Departments(c)
	return it
}

// inScope reports whether p may see it; package scope decides.
func inScope(p *auth.Principal, it item) bool { return scope.Sees(p, it.district, it.depts) }

// matches reports whether it passes f. The minimum severity lets through an
// item whose severity is unspecified (a case opened by hand may have none).
// The states a filter names apply to the stream they belong to: naming only
// alert states leaves the cases unfiltered by status, and the other way round.
func (f filter) matches(it item) bool {
	switch it.stream {
	case streamAlerts:
		if !f.alerts || (len(f.alertStates) > 0 && !slices.Contains(f.alertStates, it.state)) {
			return false
		}
	case streamCases:
		if !f.cases || (len(f.caseStates) > 0 && !slices.Contains(f.caseStates, it.state)) {
			return false
		}
	default:
		return false
	}
	if len(f.districts) > 0 && !slices.Contains(f.districts, it.district) {
		return false
	}
	if len(f.departments) > 0 && !slices.ContainsFunc(it.depts, func(d string) bool { return slices.Contains(f.departments, d) }) {
		return false
	}
	if f.minSeverity != cityhubv1.Severity_SEVERITY_UNSPECIFIED && it.severity != cityhubv1.Severity_SEVERITY_UNSPECIFIED && it.severity < f.minSeverity {
		return false
	}
	return true
}
