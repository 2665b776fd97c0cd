package lifecycle

import (
	"slices"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// Option is one action an actor may take on a case now, as the dispatcher
// console offers it. It is JSON so that the API can hand it on unchanged.
type Option struct {
	Action Action `json:"action"`
	// Department is the part acted on; empty for actions on the whole case.
	Department string `json:"department,omitempty"`
	// Outcome tells apart the variants of one action ("pass" or "fail" of
	// verify).
	Outcome string `json:"outcome,omitempty"`
	// NeedsNote says that the request must carry a note giving the reason.
	NeedsNote bool `json:"needs_note,omitempty"`
	// Needs names the other body fields the action's form offers: lead and
	// assist (and optionally case_class, sla) for dispatch, into for merge,
	// extend_by or until for request_extension.
	Needs []string `json:"needs,omitempty"`
}

// needs lists the form fields of the actions that take more than a note.
var needs = map[Action][]string{
	Dispatch:         {"lead", "assist", "case_class", "sla"},
	Merge:            {"into"},
	RequestExtension: {"extend_by", "until"},
}

// Allowed returns what by may do to c now: every row of the table, for every
// part by may act for, that Apply would accept with a well-formed request.
// It asks Apply itself, on a copy of c, so the answer can never drift from
// the state machine. The order is the table's, then the case's parts.
func Allowed(c *cityhubv1.Case, by Actor) []Option {
	out := []Option{}
	// What the table allows does not depend on the clock; the case's last
	// change stands for now, so that no time computed on the copy runs
	// backwards.
	now := c.GetUpdatedAt().AsTime()
	for _, t := range table {
		if t.Action == Create || !slices.Contains(t.Roles, by.Role) {
			continue
		}
		for _, dept := range candidateParts(c, t, by) {
			req := probe(t, dept)
			if _, err := Apply(cloneCase(c), req, by, now); err != nil {
				continue
			}
			out = append(out, Option{
				Action:     t.Action,
				Department: dept,
				Outcome:    t.Outcome,
				NeedsNote:  t.NeedsNote,
				Needs:      needs[t.Action],
			})
		}
	}
	return out
}

// candidateParts returns the departments whose part by could take t on:
// its own for a department, each part for a commander, and "" (the whole
// case) for actions that work on no single part.
func candidateParts(c *cityhubv1.Case, t Transition, by Actor) []string {
	switch t.part {
	case noPart, anyPart:
		return []string{""}
	}
	if by.Role == auth.RoleDepartment {
		if partOf(c, by.Dept) == nil {
			return nil
		}
		return []string{by.Dept}
	}
	var out []string
	for _, p := range c.GetParts() {
		out = append(out, p.GetDepartment())
	}
	return out
}

// probe builds a well-formed request for row t on the part of dept.
func probe(t Transition, dept string) Request {
	req := Request{Action: t.Action, Department: dept, Note: "probe"}
	switch t.Action {
	case Verify:
		pass := t.Outcome == "pass"
		req.Pass = &pass
	case Dispatch:
		req.Dispatch = &cityhubv1.DispatchSpec{Lead: "probe"}
	case Merge:
		req.Into = "probe"
	case RequestExtension:
		req.ExtendBy = time.Hour
	}
	return req
}
