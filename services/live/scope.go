package live

import (
	"slices"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// item is what scope and filters look at: the same for a snapshot entry and
// for a delta.
type item struct {
	stream   string
	id       string
	version  int64
	district string
	severity cityhubv1.Severity
	// depts are the departments with a part: for a case its lead, assists
	// and parts, for an alert its dispatch's lead and assists.
	depts []string
}

func alertItem(a *cityhubv1.Alert) item {
	it := item{stream: streamAlerts, id: a.GetId(), version: a.GetVersion(), district: a.GetDistrict(), severity: a.GetSeverity()}
	if d := a.GetDispatch(); d != nil {
		it.depts = addDept(it.depts, d.GetLead())
		for _, x := range d.GetAssist() {
			it.depts = addDept(it.depts, x)
		}
	}
	return it
}

func caseItem(c *cityhubv1.Case) item {
	it := item{stream: streamCases, id: c.GetId(), version: c.GetVersion(), district: c.GetDistrict(), severity: c.GetSeverity()}
	it.depts = addDept(it.depts, c.GetLead())
	for _, x := range c.GetAssist() {
		it.depts = addDept(it.depts, x)
	}
	for _, p := range c.GetParts() {
		it.depts = addDept(it.depts, p.GetDepartment())
	}
	return it
}

func addDept(ds []string, d string) []string {
	if d == "" || slices.Contains(ds, d) {
		return ds
	}
	return append(ds, d)
}

// inScope reports whether p may see it (DESIGN §4.6).
func inScope(p *auth.Principal, it item) bool {
	switch p.Role {
	case auth.RoleCommander:
		return true
	case auth.RoleDispatcher, auth.RoleViewer:
		return len(p.Districts) == 0 || slices.Contains(p.Districts, it.district)
	case auth.RoleDepartment:
		return p.Dept != "" && slices.Contains(it.depts, p.Dept)
	}
	return false
}

// matches reports whether it passes f. The minimum severity lets through an
// item whose severity is unspecified (a case opened by hand may have none).
func (f filter) matches(it item) bool {
	switch it.stream {
	case streamAlerts:
		if !f.alerts {
			return false
		}
	case streamCases:
		if !f.cases {
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
