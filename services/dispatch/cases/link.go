package cases

import (
	"context"
	"errors"
	"fmt"
	"slices"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
)

// linkAttempts bounds the tries to link a case, or to record it on its
// target, while either keeps changing under the link.
const linkAttempts = 8

// Link makes case id a linked part of case into, as the system: into is
// the case of a district-wide alert that now inhibits the alert id was
// opened from (a district flooding as a whole, its street cases). Unlike a
// merge, both carry on: id keeps its parts, deadlines and status, names
// into in linked_into and says so in its history (a "linked" happening,
// which notification routes may match); into lists id in linked and says
// so in its. Each change is published, id's first.
//
// Link is idempotent: a link made whole is left alone, and its request id
// names the target, so a repeat of a link cut short (the alert
// redelivered) finds the first change, records the link on the target,
// and publishes both. A case that is
// no longer open, a target that is not open, and a case linked into the
// target already are left as they are, with no error; ErrNotFound is
// returned when either case does not exist.
func (s *Service) Link(ctx context.Context, id, into string) error {
	c, err := s.store.Current(ctx, id)
	if err != nil {
		return fmt.Errorf("read case %s to link: %w", id, err)
	}
	target, err := s.store.Current(ctx, into)
	if err != nil {
		return fmt.Errorf("read case %s to link %s into: %w", into, id, err)
	}
	if c.GetLinkedInto() == into && slices.Contains(target.GetLinked(), id) {
		return nil // done before: every update of an inhibited alert comes here
	}
	requestID := linkRequestID(into)
	change, err := s.store.Answered(ctx, id, requestID)
	if err != nil {
		return err
	}
	if change == nil {
		if !target.GetStatus().Open() {
			return nil
		}
		if change, err = s.linkPart(ctx, id, into, requestID); err != nil || change == nil {
			return err
		}
	}
	attached, err := s.attach(ctx, id, into, change.GetChange())
	if err != nil {
		return err
	}
	if err := s.pub.Publish(ctx, change); err != nil {
		return fmt.Errorf("publish the change of %s: %w", id, err)
	}
	if attached != nil {
		if err := s.pub.Publish(ctx, attached); err != nil {
			return fmt.Errorf("publish the change of %s: %w", into, err)
		}
	}
	return nil
}

// linkPart writes the link on case id itself, read afresh on a conflict.
// It returns nil when the case is no longer open or is linked into into
// already.
func (s *Service) linkPart(ctx context.Context, id, into, requestID string) (*cityhubv1.CaseChange, error) {
	for attempt := 1; ; attempt++ {
		c, err := s.store.Recent(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read case %s to link: %w", id, err)
		}
		if !c.GetStatus().Open() || c.GetLinkedInto() == into {
			return nil, nil
		}
		change, err := s.store.Update(ctx, id, c.GetVersion(), requestID, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
			return lifecycle.Apply(c, lifecycle.Request{Action: lifecycle.Link, Into: into}, lifecycle.System, s.now())
		})
		switch {
		case errors.Is(err, casestore.ErrConflict) && attempt < linkAttempts:
			continue
		case errors.Is(err, lifecycle.ErrForbiddenTransition):
			return nil, nil // closed or linked meanwhile
		case err != nil:
			return nil, fmt.Errorf("link %s into %s: %w", id, into, err)
		}
		return change, nil
	}
}

// attach records on into that id was linked into it, by the actor of the
// link's entry. It returns the target's change, or nil when the target
// listed id already.
func (s *Service) attach(ctx context.Context, id, into string, link *cityhubv1.AuditEntry) (*cityhubv1.CaseChange, error) {
	by := lifecycle.Actor{Subject: link.GetActor(), Role: lifecycle.RoleSystem}
	return s.recordOnTarget(ctx, into, id, linkRequestID(id), linkAttempts, (*cityhubv1.Case).GetLinked, func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
		return lifecycle.RecordLink(c, id, by, s.now())
	})
}

// linkRequestID names a link by the other case of it: on the linked case
// the target, on the target the linked case. The '/' keeps clients, whose
// request ids hold none, from taking it first.
func linkRequestID(other string) string { return "link/" + other }
