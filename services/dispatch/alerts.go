package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"

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
func (s *Service) applyAlerts(ctx context.Context, batch []stream.Record[*cityhubv1.Alert]) error {
	var (
		out      []kafka.Message
		rejected = stream.Rejected{}
		counts   = map[string]int{}
	)
	for i, r := range batch {
		a := r.Value
		if inhibitedWithCase(a) {
			linked, err := s.linkInhibited(ctx, a)
			if err != nil {
				return err // Redis or Kafka trouble: the batch is retried, and Link is idempotent
			}
			if linked {
				counts["linked"]++
				continue
			}
		}
		if !wantsCase(a) {
			counts["ignored"]++
			continue
		}
		if err := s.checkAlert(a); err != nil {
			rejected[i] = err
			continue
		}
		change, created, err := s.openFromAlert(ctx, a)
		if errors.Is(err, casestore.ErrInvalid) || errors.Is(err, lifecycle.ErrInvalid) {
			rejected[i] = err
			continue
		}
		if err != nil {
			return err // Redis trouble: the consumer retries the batch, which is idempotent
		}
		// The alert's events, those it opened with and those that joined
		// it since, can be followed to their case (Open311 answers with it).
		if err := s.store.IndexAlert(ctx, a.GetDistrict(), change.GetCase().GetId(), a.GetId(), a.GetEventIds()); err != nil {
			return err
		}
		if created {
			counts["opened"]++
		} else {
			if v := change.GetCase().GetAlertVersion(); v > 0 && a.GetVersion() > v {
				// A later version of the alert that opened the case (more
				// events, a new severity): the case has all it needs, and
				// its opening was published before this came, or comes
				// again with the opening message's redelivery.
				counts["update"]++
				continue
			}
			counts["duplicate"]++
			latest, err := s.store.Latest(ctx, change.GetCase().GetId())
			if err != nil && !errors.Is(err, casestore.ErrNotFound) {
				return err
			}
			if err == nil {
				change = latest
			}
		}
		m, err := stream.Marshal(s.opts.Topics.Cases, change.GetCase().GetDistrict(), change)
		if err != nil {
			rejected[i] = err
			continue
		}
		out = append(out, m)
	}
	if err := s.opts.Writer.Write(ctx, out...); err != nil {
		return fmt.Errorf("publish %d case changes: %w", len(out), err)
	}
	s.metrics.changes.WithLabelValues(string(lifecycle.Create)).Add(float64(len(out)))
	counts["rejected"] = len(rejected)
	for outcome, n := range counts {
		s.metrics.alerts.WithLabelValues(outcome).Add(float64(n))
	}
	if len(rejected) > 0 {
		return rejected
	}
	return nil
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
