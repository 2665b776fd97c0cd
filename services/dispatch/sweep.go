package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
)

// Limits of one sweep.
const (
	// sweepBatch is how many timers one claim takes.
	sweepBatch = 64
	// sweepRounds bounds the claims of one district per sweep, so that a
	// sweep ends even while timers keep coming due.
	sweepRounds = 32
	// momentsPerCase bounds the moments applied to one case per sweep: a
	// case whose sweeper was down long may have several due at once, each
	// its own change.
	momentsPerCase = 8
	// conflictRetries bounds re-reading a case that changed under a sweeper.
	conflictRetries = 4
	// sweepBackoff is how long a timer whose moment could not be applied
	// waits before the next try.
	sweepBackoff = time.Minute
)

// Sweep applies, as the system, every deadline moment that has come by now
// (warnings at 80% of a deadline, escalations when it passes and when as
// much time again has passed) to the cases whose timers are due, and
// publishes each change. Timers are claimed atomically in Redis, so
// several replicas may sweep at once: a moment fires once, because each is
// applied through the version-checked Update under a request id that names
// it. A case whose claim ran out (its sweeper died) has its latest change
// published again. A merged duplicate's timer comes once, to finish a merge
// that stopped short of its target (cases.Service.FinishMerge). Sweep
// returns how many deadline changes it made.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	var (
		n    int
		errs []error
	)
	for _, d := range s.store.Districts() {
		for range sweepRounds {
			claimed, err := s.store.Claim(ctx, d, now, s.opts.SweepLease, sweepBatch)
			if err != nil {
				errs = append(errs, err)
				break
			}
			for _, cl := range claimed {
				k, err := s.sweepCase(ctx, cl, now)
				n += k
				if err != nil {
					errs = append(errs, err)
				}
			}
			if len(claimed) < sweepBatch || ctx.Err() != nil {
				break
			}
		}
	}
	s.metrics.timerChanges.Add(float64(n))
	return n, errors.Join(errs...)
}

// sweepCase applies the moments due on one claimed case and hands its
// timer back. It keeps the lease when a change could not be published, so
// that whoever reclaims the case publishes it.
func (s *Service) sweepCase(ctx context.Context, cl casestore.Claimed, now time.Time) (int, error) {
	if cl.Reclaimed {
		s.metrics.timerReclaims.Inc()
		latest, err := s.store.Latest(ctx, cl.ID)
		if errors.Is(err, casestore.ErrNotFound) {
			return 0, s.store.Release(ctx, cl.ID, time.Time{})
		}
		if err != nil {
			return 0, err
		}
		if err := s.publishChange(ctx, latest); err != nil {
			return 0, fmt.Errorf("publish the latest change of %s again: %w", cl.ID, err)
		}
	}
	n, retries := 0, 0
	var notBefore time.Time
	for n < momentsPerCase {
		// Read afresh: what is due is decided on the case as it is, since a
		// kept copy that went stale could hide a moment. The Update below
		// then finds the case in the store's cache and is one round trip.
		c, err := s.store.Current(ctx, cl.ID)
		if errors.Is(err, casestore.ErrNotFound) {
			break
		}
		if err != nil {
			return n, err
		}
		req, requestID, ok := lifecycle.Due(c, now)
		if !ok && c.GetMergedInto() != "" {
			// A merged duplicate's timer is its merge's follow-up.
			finished, err := s.cases.FinishMerge(ctx, cl.ID, now)
			if finished {
				s.metrics.mergeRepairs.Inc()
			}
			if err != nil {
				s.metrics.timerFailures.Inc()
				return n, errors.Join(fmt.Errorf("follow up the merge of %s: %w", cl.ID, err), s.store.Release(ctx, cl.ID, now.Add(sweepBackoff)))
			}
			return n, nil
		}
		if !ok {
			break
		}
		req.Calendar = s.cal
		change, err := s.store.Update(ctx, cl.ID, c.GetVersion(), requestID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
			return lifecycle.Apply(c, req, lifecycle.System, now)
		})
		if errors.Is(err, casestore.ErrConflict) && retries < conflictRetries {
			retries++ // someone changed the case: decide again on what it is now
			continue
		}
		if err != nil {
			// The moment cannot be applied: try again later rather than at
			// every sweep. A Redis failure leaves the lease to run out.
			s.metrics.timerFailures.Inc()
			if errors.Is(err, casestore.ErrConflict) || errors.Is(err, lifecycle.ErrForbiddenTransition) ||
				errors.Is(err, lifecycle.ErrInvalid) || errors.Is(err, lifecycle.ErrForbidden) {
				notBefore = now.Add(sweepBackoff)
				break
			}
			return n, fmt.Errorf("apply %s to %s: %w", req.Action, cl.ID, err)
		}
		if err := s.publishChange(ctx, change); err != nil {
			return n, fmt.Errorf("publish %s of %s: %w", req.Action, cl.ID, err)
		}
		n++
	}
	return n, s.store.Release(ctx, cl.ID, notBefore)
}

// sweepLoop sweeps every SweepInterval until ctx ends. A failing sweep is
// counted and logged when sweeping starts or stops failing, not each time.
func (s *Service) sweepLoop(ctx context.Context) {
	if s.opts.SweepInterval < 0 {
		return
	}
	tick := time.NewTicker(s.opts.SweepInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_, err := s.Sweep(ctx, s.opts.Now())
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.metrics.sweepFailures.Inc()
		}
		switch {
		case err != nil && !failing:
			s.log.Warn("sweeping case timers failed; retrying every interval", "err", err)
		case err == nil && failing:
			s.log.Info("sweeping case timers works again")
		}
		failing = err != nil
	}
}
