package cases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/scope"
)

// absorbAttempts bounds the tries to record a duplicate on a target that
// keeps changing under the merge.
const absorbAttempts = 8

// merge makes case dupID a duplicate of req.Into for p: one decision that
// applies to both cases or to neither. The two may lie in different
// districts, under different hash tags, so no one script may write both.
// Instead:
//
//  1. Everything that can refuse the merge is checked before anything is
//     written: the role, a target that is the duplicate itself, a target
//     that p may not see or that is not open.
//  2. The duplicate's own write is the decision: its script checks the
//     request id and the expected version and cancels it with merged_into.
//     A refusal anywhere comes at the latest here, and nothing was written.
//  3. Only then is the duplicate recorded on the target (absorb), by a
//     change that nothing about the target refuses, retried on conflict and
//     idempotent by a request id derived from the duplicate and the
//     request's.
//
// A repeated request gets its first answer and completes step 3 of the
// merge it made, so repeating a merge cut short between steps 2 and 3
// finishes it; for a caller who never repeats it, the sweeper does the same
// casestore.MergeFollowUp after the merge (FinishMerge).
//
// merge returns the duplicate's change, once stored and published with the
// target's. It fails with errOutOfScope when p may not see the duplicate,
// errNoTarget, lifecycle's errors for refusals, a *ConflictError for a
// stale expected version, or another error when the merge could not be
// stored or published; after a failure in step 3 or later, repeating the
// request finishes the merge.
func (s *Service) merge(ctx context.Context, p *auth.Principal, dupID string, r ActRequest, req lifecycle.Request) (*cityhubv1.CaseChange, error) {
	by, now := actor(p), s.now()
	// A repeat is answered before anything is judged again: the target may
	// have closed since the merge it repeats.
	first, err := s.store.Answered(ctx, dupID, r.RequestID)
	if err != nil {
		return nil, err
	}
	if first != nil {
		return first, s.settle(ctx, first, now)
	}
	if err := lifecycle.CheckMerge(dupID, req, by); err != nil {
		return nil, err
	}
	target, err := s.store.Current(ctx, req.Into)
	if errors.Is(err, casestore.ErrNotFound) || (err == nil && !scope.Case(p, target)) {
		return nil, errNoTarget
	}
	if err != nil {
		return nil, fmt.Errorf("read the case to merge into: %w", err)
	}
	if err := lifecycle.CheckMergeTarget(target); err != nil {
		return nil, err
	}
	change, err := s.store.Update(ctx, dupID, r.ExpectedVersion, r.RequestID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		if !scope.Case(p, c) {
			return nil, errOutOfScope
		}
		e, err := lifecycle.Apply(c, req, by, now)
		recordVia(e, r.Via)
		return e, err
	})
	if err != nil {
		return nil, s.conflict(ctx, p, dupID, err)
	}
	return change, s.settle(ctx, change, now)
}

// settle does what is left after change was stored on a duplicate (or
// found as the first answer to a repeated request): when it is a merge, the
// target's side; then it publishes both, the duplicate's first. A change
// that is no merge (a request id first used for another action) is only
// published again, as any repeated request's answer is.
func (s *Service) settle(ctx context.Context, change *cityhubv1.CaseChange, now time.Time) error {
	var absorbed *cityhubv1.CaseChange
	if isMerge(change) {
		var err error
		if absorbed, err = s.absorb(ctx, change.GetCase(), change.GetChange(), now); err != nil {
			return err
		}
	}
	if err := s.pub.Publish(ctx, change); err != nil {
		return fmt.Errorf("publish the change: %w", err)
	}
	if absorbed != nil {
		if err := s.pub.Publish(ctx, absorbed); err != nil {
			return fmt.Errorf("publish the change of %s: %w", absorbed.GetCase().GetId(), err)
		}
	}
	return nil
}

// isMerge reports whether change is the one that merged its case away.
func isMerge(change *cityhubv1.CaseChange) bool {
	return change.GetChange().GetAction() == string(lifecycle.Merge) && change.GetCase().GetMergedInto() != ""
}

// absorb records dup, cancelled as a duplicate by the merge whose audit
// entry is merge, on the case it was merged into, as the actor of the
// merge. It returns the target's change, that of the first try when this
// one is a repeat, or nil when the target listed dup already.
func (s *Service) absorb(ctx context.Context, dup *cityhubv1.Case, merge *cityhubv1.AuditEntry, now time.Time) (*cityhubv1.CaseChange, error) {
	by := lifecycle.Actor{Subject: merge.GetActor(), Role: auth.Role(merge.GetRole()), Dept: merge.GetDepartment()}
	return s.recordOnTarget(ctx, dup.GetMergedInto(), dup.GetId(), absorbRequestID(dup.GetId(), merge.GetRequestId()), absorbAttempts,
		(*cityhubv1.Case).GetMerged, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
			return lifecycle.RecordMerge(c, dup.GetId(), by, now)
		})
}

// errListed stops the recording of a case on a target that lists it
// already (recorded under another request id, by an older version of the
// merge or link): there is nothing left to write.
var errListed = errors.New("the target lists the case already")

// recordOnTarget writes the target's half of a merge or a link: record on
// case into, as request requestID, unless listed names other on it
// already (nil, nil then). A target changing under it is read again and
// tried again, attempts times in all. It returns the target's change, or
// that of the first try when this one is a repeat.
func (s *Service) recordOnTarget(ctx context.Context, into, other, requestID string, attempts int,
	listed func(*cityhubv1.Case) []string, record func(*cityhubv1.Case) (*cityhubv1.AuditEntry, error)) (*cityhubv1.CaseChange, error) {
	for attempt := 1; ; attempt++ {
		target, err := s.store.Recent(ctx, into)
		if err != nil {
			return nil, fmt.Errorf("read case %s to record %s on: %w", into, other, err)
		}
		change, err := s.store.Update(ctx, into, target.GetVersion(), requestID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
			if slices.Contains(listed(c), other) {
				return nil, errListed
			}
			return record(c)
		})
		switch {
		case errors.Is(err, errListed):
			return nil, nil
		case errors.Is(err, casestore.ErrConflict) && attempt < attempts:
			continue // the conflict brought the case as it is now into the store
		case err != nil:
			return nil, fmt.Errorf("record %s on %s: %w", other, into, err)
		}
		return change, nil
	}
}

// absorbRequestID names the target's side of the merge of dup by request.
// It names the duplicate because client request ids are per case: two
// duplicates may be merged into one target by requests of the same id. And
// it holds a '/', which no client's request id may, so that no request on
// the target can take it first.
func absorbRequestID(dup, request string) string { return "merge/" + dup + "/" + request }

// FinishMerge finishes the merge that made case id a duplicate, for the
// sweeper that comes to it casestore.MergeFollowUp after the merge: unless
// the target lists the case already, it records it there and publishes the
// case's latest change and the target's (the request that merged stopped
// short, perhaps before it published). Then it takes the case's timer
// away. finished reports that the target had to be written, i.e. that the
// request that merged had not got that far.
func (s *Service) FinishMerge(ctx context.Context, id string, now time.Time) (finished bool, err error) {
	c, hist, err := s.store.Get(ctx, id)
	if err != nil {
		return false, err
	}
	target, err := s.store.Current(ctx, c.GetMergedInto())
	if err != nil && !errors.Is(err, casestore.ErrNotFound) {
		return false, err
	}
	if err == nil && slices.Contains(target.GetMerged(), c.GetId()) {
		return false, s.store.Disarm(ctx, c.GetId(), c.GetVersion())
	}
	// The merge's entry names who merged and by which request; a case
	// restored without it is recorded as merged by the system.
	merge := &cityhubv1.AuditEntry{Actor: lifecycle.System.Subject, Role: string(lifecycle.RoleSystem)}
	for _, e := range slices.Backward(hist) {
		if e.GetAction() == string(lifecycle.Merge) {
			merge = e
			break
		}
	}
	absorbed, err := s.absorb(ctx, c, merge, now)
	if err != nil {
		return false, err
	}
	latest, err := s.store.Latest(ctx, c.GetId())
	if err != nil {
		return false, err
	}
	if err := s.pub.Publish(ctx, latest); err != nil {
		return false, fmt.Errorf("publish the latest change of %s again: %w", c.GetId(), err)
	}
	if absorbed != nil {
		if err := s.pub.Publish(ctx, absorbed); err != nil {
			return false, fmt.Errorf("publish the change of %s: %w", absorbed.GetCase().GetId(), err)
		}
	}
	return true, s.store.Disarm(ctx, c.GetId(), c.GetVersion())
}
