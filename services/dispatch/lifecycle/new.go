package lifecycle

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

// New opens case c as by at now: c carries the id, district and what the
// case is about; New sets its version, status and times, and dispatches it
// at once when spec is given, with deadlines on cal (workcal.Default() when
// nil). It returns the creation entry, whose request id the caller sets.
func New(c *cityhubv1.Case, spec *cityhubv1.DispatchSpec, by Actor, now time.Time, cal *workcal.Calendar) (*cityhubv1.AuditEntry, error) {
	t, err := lookup(Request{Action: Create})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(t.Roles, by.Role) {
		return nil, fmt.Errorf("%w: role %s may not create cases", ErrForbidden, by.Role)
	}
	if c.GetId() == "" || c.GetDistrict() == "" {
		return nil, fmt.Errorf("%w: a case needs an id and a district", ErrInvalid)
	}
	if c.GetTitle() == "" {
		return nil, fmt.Errorf("%w: a case needs a title", ErrInvalid)
	}
	c.Version = 1
	c.Status = t.To
	c.CreatedAt = timestamppb.New(now)
	c.UpdatedAt = c.CreatedAt
	if spec != nil {
		d, _ := lookup(Request{Action: Dispatch})
		if err := d.apply(&step{c: c, req: Request{Action: Dispatch, Dispatch: spec, Calendar: cal}, by: by, now: now}); err != nil {
			return nil, err
		}
		c.Status = d.To
	}
	refresh(c)
	happened := []*cityhubv1.Happening{{Kind: HappenedOpened}}
	if spec != nil {
		happened = append(happened, partHappenings(HappenedDispatched, c)...)
	}
	return &cityhubv1.AuditEntry{
		Happened:   happened,
		Version:    1,
		Action:     string(Create),
		Actor:      by.Subject,
		Role:       string(by.Role),
		Department: by.Dept,
		At:         timestamppb.New(now),
		From:       none,
		To:         c.GetStatus(),
	}, nil
}

func cloneCase(c *cityhubv1.Case) *cityhubv1.Case { return proto.CloneOf(c) }

// replace makes dst equal to src.
func replace(dst, src *cityhubv1.Case) {
	proto.Reset(dst)
	proto.Merge(dst, src)
}
