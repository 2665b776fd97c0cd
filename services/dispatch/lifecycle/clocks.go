package lifecycle

import (
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

// The moments of a deadline, in the order they come (Deadline.fired counts
// them).
const (
	stepWarn  int32 = 1 // 80% of the allowed time used
	stepDue   int32 = 2 // the deadline passed: district centre
	stepFinal int32 = 3 // as much time again: city centre
)

// WarnAt is the share of a deadline's allowed time after which it is near.
const WarnAt = 0.8

// Deadline stages.
const (
	stageAccept = "accept"
	stageHandle = "handle"
)

// moment is one deadline moment of one part.
type moment struct {
	dept  string
	stage string
	step  int32
	at    time.Time
}

// newDeadline returns a deadline of allowed time from start, or nil when
// allowed is not positive.
func newDeadline(cal *workcal.Calendar, start time.Time, allowed time.Duration, working bool) *cityhubv1.Deadline {
	if allowed <= 0 {
		return nil
	}
	add := func(t time.Time, d time.Duration) time.Time { return t.Add(d) }
	if working {
		add = cal.Add
	}
	due := add(start, allowed)
	return &cityhubv1.Deadline{
		WarnAt:  timestamppb.New(add(start, time.Duration(float64(allowed)*WarnAt))),
		DueAt:   timestamppb.New(due),
		FinalAt: timestamppb.New(add(due, allowed)),
		Working: working,
		Allowed: durationpb.New(allowed),
	}
}

func moments(dl *cityhubv1.Deadline) []*timestamppb.Timestamp {
	return []*timestamppb.Timestamp{dl.GetWarnAt(), dl.GetDueAt(), dl.GetFinalAt()}
}

// pause moves the moments of dl still to come by the time from since to
// now on dl's clock: the part was suspended then.
func pause(cal *workcal.Calendar, dl *cityhubv1.Deadline, since, now time.Time) {
	if dl == nil {
		return
	}
	shift := func(t time.Time) time.Time { return t.Add(now.Sub(since)) }
	if dl.GetWorking() {
		w := cal.Between(since, now)
		shift = func(t time.Time) time.Time { return cal.Add(t, w) }
	}
	for i, m := range moments(dl) {
		if int32(i) >= dl.GetFired() && m != nil {
			t := timestamppb.New(shift(m.AsTime()))
			m.Seconds, m.Nanos = t.GetSeconds(), t.GetNanos()
		}
	}
}

// move puts dl's due time at due (from old), moves its other moments by as
// much, and forgets the moments that fired but now lie ahead again, so the
// department is warned again before the new deadline.
func move(cal *workcal.Calendar, dl *cityhubv1.Deadline, old, due, now time.Time) {
	shift := func(t time.Time) time.Time { return t.Add(due.Sub(old)) }
	if dl.GetWorking() {
		w := cal.Between(old, due)
		shift = func(t time.Time) time.Time { return cal.Add(t, w) }
	}
	dl.WarnAt = timestamppb.New(shift(dl.GetWarnAt().AsTime()))
	dl.DueAt = timestamppb.New(due)
	dl.FinalAt = timestamppb.New(shift(dl.GetFinalAt().AsTime()))
	passed := int32(0)
	for _, m := range moments(dl) {
		if m.AsTime().After(now) {
			break
		}
		passed++
	}
	dl.Fired = min(dl.GetFired(), passed)
}

// running returns the deadlines of p whose clocks run now, with their
// stage: none while the case is not with the departments or the part is
// suspended; the accept deadline until the part is signed for; the handle
// deadline until it is reported handled.
func running(c *cityhubv1.Case, p *cityhubv1.Part) map[string]*cityhubv1.Deadline {
	if p.GetSuspendedAt() != nil {
		return nil
	}
	switch c.GetStatus() {
	case dispatched, accepted:
	default:
		return nil
	}
	out := map[string]*cityhubv1.Deadline{}
	switch p.GetStatus() {
	case dispatched:
		if p.GetAcceptDeadline() != nil {
			out[stageAccept] = p.GetAcceptDeadline()
		}
		fallthrough
	case accepted:
		if p.GetHandleDeadline() != nil {
			out[stageHandle] = p.GetHandleDeadline()
		}
	}
	return out
}

// next returns the earliest moment still to come of any running deadline.
func next(c *cityhubv1.Case) (moment, bool) {
	var best moment
	found := false
	for _, p := range c.GetParts() {
		for _, stage := range []string{stageAccept, stageHandle} {
			dl := running(c, p)[stage]
			if dl == nil || dl.GetFired() >= stepFinal {
				continue
			}
			m := moments(dl)[dl.GetFired()]
			if m == nil {
				continue
			}
			if at := m.AsTime(); !found || at.Before(best.at) {
				best = moment{dept: p.GetDepartment(), stage: stage, step: dl.GetFired() + 1, at: at}
				found = true
			}
		}
	}
	return best, found
}

// Due returns the action the system must take on c at now, if any: a
// warning or an escalation for the earliest deadline moment that has come.
// The request id names the moment, so that it fires once however many
// sweepers race for it. Apply it as System; apply again what Due returns
// then, until it returns false, for one audit entry per moment.
func Due(c *cityhubv1.Case, now time.Time) (req Request, requestID string, ok bool) {
	m, found := next(c)
	if !found || m.at.After(now) {
		return Request{}, "", false
	}
	req = Request{Action: Escalate, timer: &m}
	if m.step == stepWarn {
		req.Action = Warn
	}
	id := TimerRequestPrefix + m.dept + ":" + m.stage + ":" + strconv.Itoa(int(m.step)) + ":" + strconv.FormatInt(m.at.UnixMilli(), 10)
	return req, id, true
}

// TimerRequestPrefix begins the request id of every change a deadline
// makes, so that racing sweepers make it once. Clients may not use it: a
// request id taken first by a client would stop the deadline from firing.
const TimerRequestPrefix = "timer:"

// fire marks moment m of its deadline as acted on, after checking that it
// is still the moment due: the case may have moved since Due looked.
func fire(s *step, m *moment) (*cityhubv1.Deadline, error) {
	p := partOf(s.c, m.dept)
	dl := running(s.c, p)[m.stage]
	if dl == nil || dl.GetFired()+1 != m.step || moments(dl)[m.step-1] == nil ||
		!moments(dl)[m.step-1].AsTime().Equal(m.at) || m.at.After(s.now) {
		return nil, fmt.Errorf("%w: the %s deadline of %s has moved on", ErrForbiddenTransition, m.stage, m.dept)
	}
	dl.Fired = m.step
	s.part = p
	return dl, nil
}

// refresh recomputes what the case shows of its clocks: the warned and
// overdue markers, the lead's deadlines, and when the system next has to
// look at it.
func refresh(c *cityhubv1.Case) {
	c.Warned, c.Overdue = false, false
	for _, p := range c.GetParts() {
		for _, dl := range running(c, p) {
			c.Warned = c.Warned || dl.GetFired() >= stepWarn
			c.Overdue = c.Overdue || dl.GetFired() >= stepDue
		}
	}
	c.AcceptDueAt, c.HandleDueAt = nil, nil
	if lead := partOf(c, c.GetLead()); lead != nil {
		c.AcceptDueAt = cloneTS(lead.GetAcceptDeadline().GetDueAt())
		c.HandleDueAt = cloneTS(lead.GetHandleDeadline().GetDueAt())
	}
	c.TimerAt = nil
	if m, ok := next(c); ok {
		c.TimerAt = timestamppb.New(m.at)
	}
}

func cloneTS(t *timestamppb.Timestamp) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(t.AsTime())
}
