package lifecycle

import (
	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Kinds of Happening: what a change means to the people who must hear of
// it. Notification routes match these names.
const (
	HappenedOpened       = "opened"
	HappenedDispatched   = "dispatched"
	HappenedAccepted     = "accepted"
	HappenedWarned       = "warned"
	HappenedOverdue      = "overdue"
	HappenedEscalated    = "escalated"
	HappenedReturned     = "returned"
	HappenedHandled      = "handled"
	HappenedVerifyFailed = "verify_failed"
	HappenedClosed       = "closed"
	HappenedMerged       = "merged"
	HappenedCancelled    = "cancelled"
	// HappenedLinked: the case became a linked part of another (a
	// district-wide one); its work goes on.
	HappenedLinked = "linked"
)

// Happenings lists every kind, in the order of a case's life.
var Happenings = []string{
	HappenedOpened, HappenedDispatched, HappenedAccepted, HappenedWarned, HappenedOverdue, HappenedEscalated,
	HappenedReturned, HappenedHandled, HappenedVerifyFailed, HappenedClosed, HappenedMerged, HappenedCancelled,
	HappenedLinked,
}

// happenings says what the change s made of before (into after, by
// transition t) means: dispatched to each department with a part, a part
// accepted, handled or returned by its department, a deadline warned of or
// overdue for its department, the case escalated to a centre (the
// catalog's district-centre or city-centre department), closed, sent back
// for rework to every part, merged or cancelled. Comments, suspensions and
// extensions happen to nobody else.
func happenings(t Transition, before, after *cityhubv1.Case, s *step) []*cityhubv1.Happening {
	dept := ""
	if s.part != nil {
		dept = s.part.GetDepartment()
	}
	one := func(kind, dept string) []*cityhubv1.Happening {
		return []*cityhubv1.Happening{{Kind: kind, Department: dept}}
	}
	switch t.Action {
	case Dispatch:
		return partHappenings(HappenedDispatched, after)
	case Accept:
		return one(HappenedAccepted, dept)
	case Return:
		if dept == "" {
			dept = s.by.Dept
		}
		return one(HappenedReturned, dept)
	case Handle:
		return one(HappenedHandled, dept)
	case Verify:
		if t.Outcome == "fail" {
			return partHappenings(HappenedVerifyFailed, after)
		}
		return one(HappenedClosed, "")
	case Cancel:
		return one(HappenedCancelled, "")
	case Merge:
		return one(HappenedMerged, "")
	case Link:
		return one(HappenedLinked, "")
	case Warn:
		return one(HappenedWarned, dept)
	case Escalate:
		var out []*cityhubv1.Happening
		if m := s.req.timer; m != nil && m.step == stepDue {
			out = append(out, &cityhubv1.Happening{Kind: HappenedOverdue, Department: m.dept})
		}
		if after.GetEscalationLevel() > before.GetEscalationLevel() {
			out = append(out, &cityhubv1.Happening{Kind: HappenedEscalated, Department: LevelName(after.GetEscalationLevel())})
		}
		return out
	}
	return nil
}

// partHappenings is kind for the department of each part of c.
func partHappenings(kind string, c *cityhubv1.Case) []*cityhubv1.Happening {
	out := make([]*cityhubv1.Happening, 0, len(c.GetParts()))
	for _, p := range c.GetParts() {
		out = append(out, &cityhubv1.Happening{Kind: kind, Department: p.GetDepartment()})
	}
	return out
}
