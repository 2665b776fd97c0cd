package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/stream"
)

func decodeAlert(m kafka.Message) (*cityhubv1.Alert, error) {
	a := new(cityhubv1.Alert)
	if err := stream.Unmarshal(m, a); err != nil {
		return nil, err
	}
	return a, nil
}

// wantsCase reports whether a opens a case: a real (not shadow), unmuted
// firing of a rule that dispatches.
func wantsCase(a *cityhubv1.Alert) bool {
	return a.GetState() == cityhubv1.AlertState_ALERT_STATE_FIRING &&
		!a.GetShadow() && a.GetDispatch().GetLead() != "" &&
		len(a.GetSilencedBy()) == 0 && len(a.GetInhibitedBy()) == 0 // muted: shown, never dispatched
}

// applyAlerts opens the cases of a batch and publishes their changes before
// it returns, so that an alert is committed only once its case is on Kafka.
// A redelivered alert finds its case and publishes the case's latest change
// again (not its creation, which would look like a step back to a reader
// that keeps the highest version); a later version of the alert that
// opened a case publishes nothing.
//
// Each alert waits on Redis round trips, so the alerts of a batch are
// applied side by side, up to alertWorkers at once: the versions of one
// alert in order, by one worker. Alerts that link their case into another
// alert's go after every other alert of the batch has been applied and its
// changes published, since one of them may open the case they link into.
// Each phase publishes its changes in the batch's order.
func (s *Service) applyAlerts(ctx context.Context, batch []stream.Record[*cityhubv1.Alert]) error {
	results := make([]alertResult, len(batch))
	var opening, linking [][]int // indexes of the batch, by alert, in order
	byAlert := map[string]int{}  // alert id → its group in opening
	for i, r := range batch {
		id := r.Value.GetId()
		if g, ok := byAlert[id]; ok && id != "" {
			opening[g] = append(opening[g], i)
			continue
		}
		byAlert[id] = len(opening)
		opening = append(opening, []int{i})
	}
	// An alert any version of which links goes with the linking ones.
	for g := 0; g < len(opening); g++ {
		if !slices.ContainsFunc(opening[g], func(i int) bool { return inhibitedWithCase(batch[i].Value) }) {
			continue
		}
		linking = append(linking, opening[g])
		opening = slices.Delete(opening, g, g+1)
		g--
	}
	// The opening phase's changes are published before any link: a link
	// publishes the change it makes to its target, which must come after
	// the target's creation on the target's partition. Links go one at a
	// time: they often share a target, whose every change they retry on.
	for _, phase := range []struct {
		groups  [][]int
		workers int
	}{{opening, alertWorkers}, {linking, 1}} {
		if err := s.eachAlert(ctx, phase.groups, phase.workers, func(ctx context.Context, i int) error {
			var err error
			results[i], err = s.applyAlert(ctx, batch[i].Value)
			return err
		}); err != nil {
			return err
		}
		if err := s.publish(ctx, results, slices.Concat(phase.groups...)); err != nil {
			return err
		}
	}
	rejected := stream.Rejected{}
	counts := map[string]int{}
	for i, r := range results {
		if r.rejected != nil {
			rejected[i] = r.rejected
			continue
		}
		counts[r.outcome]++
	}
	counts["rejected"] = len(rejected)
	for outcome, n := range counts {
		s.metrics.alerts.WithLabelValues(outcome).Add(float64(n))
	}
	if len(rejected) > 0 {
		return rejected
	}
	return nil
}

// publish writes the case changes of the results at indexes, in the
// batch's order.
func (s *Service) publish(ctx context.Context, results []alertResult, indexes []int) error {
	slices.Sort(indexes)
	var out []kafka.Message
	for _, i := range indexes {
		if m := results[i].message; m != nil && results[i].rejected == nil {
			out = append(out, *m)
		}
	}
	if err := s.opts.Writer.Write(ctx, out...); err != nil {
		return fmt.Errorf("publish %d case changes: %w", len(out), err)
	}
	s.metrics.changes.WithLabelValues(string(lifecycle.Create)).Add(float64(len(out)))
	return nil
}

// alertWorkers bounds the alerts of a batch applied at once.
const alertWorkers = 16

// eachAlert calls apply for every index of groups, the indexes of a group
// in order, up to workers groups at once. The first error stops the rest
// and is returned.
func (s *Service) eachAlert(ctx context.Context, groups [][]int, workers int, apply func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(workers, len(groups)) {
		wg.Go(func() {
			for g := range work {
				for _, i := range g {
					if err := apply(ctx, i); err != nil {
						cancel(err)
						break
					}
				}
			}
		})
	}
feed:
	for _, g := range groups {
		select {
		case work <- g:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

// alertResult is what applying one alert came to.
type alertResult struct {
	// outcome counts it: linked, ignored, opened, update or duplicate.
	outcome string
	// message is the case change to publish, if any.
	message *kafka.Message
	// rejected says why the alert can never be applied.
	rejected error
}

// applyAlert opens, finds or links the case of a. An error is Redis
// trouble: the batch is tried again, which is idempotent.
func (s *Service) applyAlert(ctx context.Context, a *cityhubv1.Alert) (alertResult, error) {
	if inhibitedWithCase(a) {
		linked, err := s.linkInhibited(ctx, a)
		if err != nil {
			return alertResult{}, err // Link is idempotent
		}
		if linked {
			return alertResult{outcome: "linked"}, nil
		}
	}
	if !wantsCase(a) {
		return alertResult{outcome: "ignored"}, nil
	}
	if err := s.checkAlert(a); err != nil {
		return alertResult{rejected: err}, nil
	}
	change, created, err := s.openFromAlert(ctx, a)
	if errors.Is(err, casestore.ErrInvalid) || errors.Is(err, lifecycle.ErrInvalid) {
		return alertResult{rejected: err}, nil
	}
	if err != nil {
		return alertResult{}, err
	}
	// The alert's events, those it opened with and those that joined it
	// since, can be followed to their case (Open311 answers with it).
	if err := s.store.IndexAlert(ctx, a.GetDistrict(), change.GetCase().GetId(), a.GetId(), a.GetEventIds()); err != nil {
		return alertResult{}, err
	}
	outcome := "opened"
	if !created {
		if v := change.GetCase().GetAlertVersion(); v > 0 && a.GetVersion() > v {
			// A later version of the alert that opened the case (more
			// events, a new severity): the case has all it needs, and its
			// opening was published before this came, or comes again with
			// the opening message's redelivery.
			return alertResult{outcome: "update"}, nil
		}
		outcome = "duplicate"
		latest, err := s.store.Latest(ctx, change.GetCase().GetId())
		if err != nil && !errors.Is(err, casestore.ErrNotFound) {
			return alertResult{}, err
		}
		if err == nil {
			change = latest
		}
	}
	m, err := stream.Marshal(s.opts.Topics.Cases, change.GetCase().GetDistrict(), change)
	if err != nil {
		return alertResult{rejected: err}, nil
	}
	return alertResult{outcome: outcome, message: &m}, nil
}

// inhibitedWithCase reports whether a is a firing alert that would open a
// case but for the alerts that inhibit it: its case, if it opened one
// before, becomes a linked part of theirs.
func inhibitedWithCase(a *cityhubv1.Alert) bool {
	return a.GetState() == cityhubv1.AlertState_ALERT_STATE_FIRING && !a.GetShadow() &&
		a.GetDispatch().GetLead() != "" && len(a.GetInhibitedBy()) > 0
}

// linkInhibited links the case a opened, when it opened one, into the case
// of the first alert inhibiting it that has one in a's district (inhibit
// rules match on the district: a district-wide alert and its streets'),
// and reports whether it did.
func (s *Service) linkInhibited(ctx context.Context, a *cityhubv1.Alert) (bool, error) {
	id, err := s.store.CaseOfAlert(ctx, a.GetDistrict(), a.GetId())
	if errors.Is(err, casestore.ErrNotFound) {
		return false, nil // inhibited from the start: it never opened one
	}
	if err != nil {
		return false, err
	}
	for _, inh := range a.GetInhibitedBy() {
		into, err := s.store.CaseOfAlert(ctx, a.GetDistrict(), inh)
		if errors.Is(err, casestore.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if err := s.cases.Link(ctx, id, into); err != nil && !errors.Is(err, casestore.ErrNotFound) {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// checkAlert refuses alerts no one could ever see the case of.
func (s *Service) checkAlert(a *cityhubv1.Alert) error {
	if a.GetId() == "" || a.GetStartsAt() == nil {
		return errors.New("firing alert without id or starts_at")
	}
	if _, ok := s.opts.Catalog.District(a.GetDistrict()); !ok || !casestore.ValidDistrict(a.GetDistrict()) {
		return fmt.Errorf("alert %s: district %q is not in the catalog", a.GetId(), a.GetDistrict())
	}
	d := a.GetDispatch()
	for _, dept := range append([]string{d.GetLead()}, d.GetAssist()...) {
		if _, ok := s.opts.Catalog.Department(dept); !ok {
			return fmt.Errorf("alert %s: department %q is not in the catalog", a.GetId(), dept)
		}
	}
	return nil
}

// openFromAlert opens the case of one firing of a, once.
func (s *Service) openFromAlert(ctx context.Context, a *cityhubv1.Alert) (*cityhubv1.CaseChange, bool, error) {
	now := s.opts.Now()
	c := &cityhubv1.Case{
		Id:            casestore.NewID(a.GetDistrict(), now),
		Title:         a.GetTitle(),
		Severity:      a.GetSeverity(),
		District:      a.GetDistrict(),
		Location:      proto.CloneOf(a.GetLocation()),
		EventType:     a.GetEventType(),
		Origin:        casestore.OriginAlert,
		AlertId:       a.GetId(),
		AlertStartsAt: a.GetStartsAt(),
		AlertVersion:  a.GetVersion(),
		EventIds:      a.GetEventIds(),
		Labels:        a.GetLabels(),
		Rule:          a.GetRule(),
	}
	if c.Title == "" {
		c.Title = a.GetRule()
	}
	spec, err := s.cases.ResolveSpec(a.GetDispatch(), a.GetEventType())
	if err != nil {
		return nil, false, fmt.Errorf("%w: alert %s: %v", lifecycle.ErrInvalid, a.GetId(), err)
	}
	by := lifecycle.Actor{Subject: "rule:" + a.GetRule(), Role: lifecycle.RoleSystem}
	entry, err := lifecycle.New(c, spec, by, now, s.cal)
	if err != nil {
		return nil, false, err
	}
	entry.RequestId = alertRequestID(a)
	return s.store.Create(ctx, c, entry)
}

// alertRequestID names the creation of a case from one firing of an alert:
// the same firing always yields the same id.
func alertRequestID(a *cityhubv1.Alert) string {
	return cases.AlertRequestPrefix + a.GetId() + ":" + strconv.FormatInt(a.GetStartsAt().AsTime().UnixMilli(), 10)
}
