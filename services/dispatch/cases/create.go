package cases

import (
	"context"
	"strings"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/scope"
	"github.com/cityhub/cityhub/services/platform/view"
)

// CreateRequest opens a case by hand. Its JSON form is the body the
// dispatcher API takes to open a case, and an *InvalidError names its
// fields by their JSON names.
type CreateRequest struct {
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Severity    string         `json:"severity,omitempty"`
	District    string         `json:"district"`
	Location    *view.Location `json:"location,omitempty"`
	EventType   string         `json:"event_type,omitempty"`
	Lead        string         `json:"lead,omitempty"`
	Assist      []string       `json:"assist,omitempty"`
	CaseClass   string         `json:"case_class,omitempty"`
	Sla         *SLA           `json:"sla,omitempty"`
	RequestID   string         `json:"request_id"`
	// Via names the channel the request came through, as ActRequest.Via.
	Via string `json:"-"`
}

// Create opens the case r describes as p, dispatched at once when r names
// a lead, stores and publishes it, and returns it; created is false when
// r's request id opened a case before, which is then answered as it was.
// Create fails with *InvalidError, *ForbiddenError (a district outside p's
// scope, or a role that may not open cases), *ConflictError, or an
// *OpError.
func (s *Service) Create(ctx context.Context, p *auth.Principal, r CreateRequest) (c Case, created bool, err error) {
	nc, spec, err := s.parseCreate(r)
	if err != nil {
		return Case{}, false, err
	}
	if err := checkVia(r.Via); err != nil {
		return Case{}, false, err
	}
	if !scope.District(p, nc.GetDistrict()) {
		return Case{}, false, &ForbiddenError{Reason: "district " + nc.GetDistrict() + " is outside your scope"}
	}
	entry, err := lifecycle.New(nc, spec, actor(p), s.now(), s.cal)
	if err != nil {
		return Case{}, false, refusal("change the case", err)
	}
	entry.RequestId = r.RequestID
	recordVia(entry, r.Via)
	change, created, err := s.store.Create(ctx, nc, entry)
	if err != nil {
		return Case{}, false, refusal("change the case", err)
	}
	if err := s.publish(ctx, change); err != nil {
		return Case{}, false, err
	}
	return answer(change.GetCase(), p), created, nil
}

func (s *Service) parseCreate(b CreateRequest) (*cityhubv1.Case, *cityhubv1.DispatchSpec, error) {
	switch {
	case strings.TrimSpace(b.Title) == "" || len(b.Title) > maxTitleBytes:
		return nil, nil, invalid("title", "required, at most %d bytes", maxTitleBytes)
	case len(b.Description) > maxNoteBytes:
		return nil, nil, invalid("description", "longer than %d bytes", maxNoteBytes)
	case !validRequestID(b.RequestID):
		return nil, nil, invalid("request_id", "%s", requestIDRule)
	case len(b.Assist) > maxAssist:
		return nil, nil, invalid("assist", "more than %d departments", maxAssist)
	}
	if _, ok := s.cat.District(b.District); !ok || !casestore.ValidDistrict(b.District) {
		return nil, nil, invalid("district", "unknown district %q", b.District)
	}
	c := &cityhubv1.Case{
		Id:          casestore.NewID(b.District, s.now()),
		Title:       b.Title,
		Description: b.Description,
		District:    b.District,
		EventType:   b.EventType,
		Origin:      casestore.OriginManual,
	}
	if b.Severity != "" {
		sev, err := cityhubv1.ParseSeverity(b.Severity)
		if err != nil {
			return nil, nil, invalid("severity", "%s", err.Error())
		}
		c.Severity = sev
	}
	if b.EventType != "" {
		if _, ok := s.cat.EventType(b.EventType); !ok {
			return nil, nil, invalid("event_type", "unknown event type %q", b.EventType)
		}
	}
	if l := b.Location; l != nil {
		if l.District != "" && l.District != b.District {
			return nil, nil, invalid("location.district", "differs from district")
		}
		c.Location = &cityhubv1.Location{Lon: l.Lon, Lat: l.Lat, District: b.District, Street: l.Street, Grid: l.Grid, Address: l.Address}
	}
	if b.Lead == "" {
		if len(b.Assist) > 0 || b.Sla != nil || b.CaseClass != "" {
			return nil, nil, invalid("lead", "required with assist, case_class or sla")
		}
		return c, nil, nil
	}
	if err := s.checkDepartments(b.Lead, b.Assist); err != nil {
		return nil, nil, err
	}
	sla, err := parseSLA(b.Sla)
	if err != nil {
		return nil, nil, err
	}
	spec, err := s.ResolveSpec(&cityhubv1.DispatchSpec{Lead: b.Lead, Assist: b.Assist, Sla: sla, CaseClass: b.CaseClass}, b.EventType)
	if err != nil {
		return nil, nil, invalid("case_class", "%s", err.Error())
	}
	return c, spec, nil
}
