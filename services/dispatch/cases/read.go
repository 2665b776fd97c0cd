package cases

import (
	"context"
	"errors"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/scope"
)

// Get returns case id with its history, and what p may do with it now. It
// fails with ErrNotFound when there is no such case or p may not see it,
// and with an *OpError when the case could not be read.
func (s *Service) Get(ctx context.Context, p *auth.Principal, id string) (Case, error) {
	c, hist, err := s.store.Get(ctx, id)
	if errors.Is(err, casestore.ErrNotFound) || (err == nil && !scope.Case(p, c)) {
		return Case{}, ErrNotFound
	}
	if err != nil {
		return Case{}, &OpError{Op: "read case", Err: err}
	}
	// c is the store's copy for this call: no need for answer's.
	return Case{Case: c, History: hist, Allowed: lifecycle.Allowed(c, actor(p))}, nil
}

// ListRequest selects the cases List returns; conditions combine with AND.
// An *InvalidError names its fields as the dispatcher API's query
// parameters do.
type ListRequest struct {
	// Status keeps only cases in this status; Open only cases that still
	// need work.
	Status cityhubv1.CaseStatus
	Open   bool
	// Department keeps only cases in which it leads or assists; District
	// only the cases of that district. Each must be in the catalog.
	Department string
	District   string
	// Arbitration keeps only open cases flagged for arbitration.
	Arbitration bool
	// Limit is the page size: casestore.DefaultLimit when zero, at most
	// casestore.MaxLimit.
	Limit int
	// Cursor continues a listing where the page that returned it ended.
	Cursor string
}

// maxCursorBytes bounds a cursor before it is decoded.
const maxCursorBytes = 1024

// Page is one page of a listing.
type Page struct {
	// Cases are newest first; cases p may not see are left out, so a page
	// may be short and still have a next one.
	Cases []*cityhubv1.Case
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string
}

// List returns the cases r selects that p may see, a page at a time. What r
// asks outside p's scope is narrowed away, not refused: a query about
// nothing p may see returns an empty page. List fails with *InvalidError
// and with an *OpError when the cases could not be read.
func (s *Service) List(ctx context.Context, p *auth.Principal, r ListRequest) (Page, error) {
	f := casestore.Filter{Status: r.Status, Open: r.Open, Arbitration: r.Arbitration, Cursor: r.Cursor}
	if r.Department != "" {
		if _, ok := s.cat.Department(r.Department); !ok {
			return Page{}, invalid("department", "unknown department %q", r.Department)
		}
	}
	if r.District != "" {
		if _, ok := s.cat.District(r.District); !ok {
			return Page{}, invalid("district", "unknown district %q", r.District)
		}
		f.Districts = []string{r.District}
	}
	if r.Limit < 0 || r.Limit > casestore.MaxLimit {
		return Page{}, invalid("limit", "want a whole number from 1 to %d", casestore.MaxLimit)
	}
	f.Limit = r.Limit
	if len(r.Cursor) > maxCursorBytes {
		return Page{}, invalid("cursor", "too long")
	}
	var ok bool
	if f.Districts, f.Department, ok = scope.Narrow(p, f.Districts, r.Department); !ok {
		return Page{}, nil
	}
	page, err := s.store.List(ctx, f)
	if errors.Is(err, casestore.ErrBadCursor) {
		return Page{}, &InvalidError{Field: "cursor", Reason: "not a cursor this API returned", err: err}
	}
	if err != nil {
		return Page{}, &OpError{Op: "list cases", Err: err}
	}
	out := Page{NextCursor: page.NextCursor}
	for _, c := range page.Cases {
		if scope.Case(p, c) {
			out.Cases = append(out.Cases, c)
		}
	}
	return out, nil
}

// Denials returns what case id keeps of the requests refused on it
// (casestore.DenialLog), newest first. Only a commander reads them: p of
// any other role gets a *ForbiddenError. Denials fails with ErrNotFound
// when there is no such case and with an *OpError when the log could not
// be read.
func (s *Service) Denials(ctx context.Context, p *auth.Principal, id string) (casestore.DenialLog, error) {
	if p.Role != auth.RoleCommander {
		return casestore.DenialLog{}, &ForbiddenError{Reason: "only a commander reads the refusals on a case"}
	}
	log, err := s.store.Denials(ctx, id)
	if errors.Is(err, casestore.ErrNotFound) {
		return casestore.DenialLog{}, ErrNotFound
	}
	if err != nil {
		return casestore.DenialLog{}, &OpError{Op: "read refused actions", Err: err}
	}
	return log, nil
}
