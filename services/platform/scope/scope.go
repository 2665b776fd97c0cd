// Package scope decides what each caller may see: the reach of every role
// over cases, alerts and case lists is written here once, and the case API,
// its statistics and the live gateway ask it. What a caller may do to a
// case it sees is the state machine's to say (dispatch/lifecycle).
//
// By role (ARCHITECTURE.md, "Roles"): a commander sees everything; a
// dispatcher or viewer sees its districts, or every district when its
// token names none; a department sees the cases (and the alerts whose
// dispatch names it) in which it leads, assists or has a part, in any
// district; a source sees nothing.
package scope

import (
	"slices"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// District reports whether p's district reach covers district. A
// department's reach is its cases, not districts: it passes here and is
// narrowed by the departments of each item.
func District(p *auth.Principal, district string) bool {
	switch p.Role {
	case auth.RoleCommander, auth.RoleDepartment:
		return true
	case auth.RoleDispatcher, auth.RoleViewer:
		return len(p.Districts) == 0 || slices.Contains(p.Districts, district)
	}
	return false
}

// Sees reports whether p may see an item of district in which depts have a
// part. Case and Alert are this for a case and an alert.
func Sees(p *auth.Principal, district string, depts []string) bool {
	if p.Role == auth.RoleDepartment {
		return p.Dept != "" && slices.Contains(depts, p.Dept)
	}
	return District(p, district)
}

// Case reports whether p may know that c exists.
func Case(p *auth.Principal, c *cityhubv1.Case) bool {
	if p.Role == auth.RoleDepartment {
		return Involves(c, p.Dept)
	}
	return District(p, c.GetDistrict())
}

// Alert reports whether p may see a.
func Alert(p *auth.Principal, a *cityhubv1.Alert) bool {
	return Sees(p, a.GetDistrict(), AlertDepartments(a))
}

// Involves reports whether dept leads, assists or has a part in c.
func Involves(c *cityhubv1.Case, dept string) bool {
	if dept == "" {
		return false
	}
	if c.GetLead() == dept || slices.Contains(c.GetAssist(), dept) {
		return true
	}
	return slices.ContainsFunc(c.GetParts(), func(p *cityhubv1.Part) bool { return p.GetDepartment() == dept })
}

// Departments returns the departments that lead, assist or have a part in
// c, each once, in that order.
func Departments(c *cityhubv1.Case) []string {
	out := add(nil, c.GetLead())
	for _, d := range c.GetAssist() {
		out = add(out, d)
	}
	for _, p := range c.GetParts() {
		out = add(out, p.GetDepartment())
	}
	return out
}

// AlertDepartments returns the departments an alert's dispatch names:
// the lead, then the assists, each once.
func AlertDepartments(a *cityhubv1.Alert) []string {
	d := a.GetDispatch()
	if d == nil {
		return nil
	}
	out := add(nil, d.GetLead())
	for _, x := range d.GetAssist() {
		out = add(out, x)
	}
	return out
}

func add(ds []string, d string) []string {
	if d == "" || slices.Contains(ds, d) {
		return ds
	}
	return append(ds, d)
}

// Narrow confines a case list query — the districts asked for (nil: any)
// and the department asked for ("": any) — to what p may see. ok is false
// when p may see nothing the query asks for.
func Narrow(p *auth.Principal, districts []string, department string) (_ []string, _ string, ok bool) {
	switch p.Role {
	case auth.RoleCommander:
		return districts, department, true
	case auth.RoleDepartment:
		if p.Dept == "" || (department != "" && department != p.Dept) {
			return nil, "", false
		}
		return districts, p.Dept, true
	case auth.RoleDispatcher, auth.RoleViewer:
		if len(p.Districts) == 0 {
			return districts, department, true
		}
		if districts == nil {
			return slices.Clone(p.Districts), department, true
		}
		districts = slices.DeleteFunc(slices.Clone(districts), func(d string) bool { return !District(p, d) })
		return districts, department, len(districts) > 0
	}
	return nil, "", false
}
