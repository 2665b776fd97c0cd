// Package view renders alerts, cases and events as the JSON the HTTP API and
// the live websocket send: enums as their lower-case names, times as RFC
// 3339, durations as Go duration strings.
package view

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Location is the JSON form of a location.
type Location struct {
	Lon      float64 `json:"lon,omitempty"`
	Lat      float64 `json:"lat,omitempty"`
	District string  `json:"district"`
	Street   string  `json:"street,omitempty"`
	Grid     string  `json:"grid,omitempty"`
	Address  string  `json:"address,omitempty"`
}

// Sla is the JSON form of case deadlines.
type Sla struct {
	Accept string `json:"accept,omitempty"`
	Handle string `json:"handle,omitempty"`
}

// Dispatch is the JSON form of an alert's dispatch spec.
type Dispatch struct {
	Lead   string   `json:"lead"`
	Assist []string `json:"assist,omitempty"`
	Sla    *Sla     `json:"sla,omitempty"`
}

// Explanation is one sub-expression of a rule and its value.
type Explanation struct {
	Expr  string `json:"expr"`
	Value string `json:"value"`
}

// Alert is the JSON form of an alert.
type Alert struct {
	ID          string            `json:"id"`
	Version     int64             `json:"version"`
	Rule        string            `json:"rule"`
	Pack        string            `json:"pack"`
	PackVersion string            `json:"pack_version,omitempty"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Title       string            `json:"title"`
	Labels      map[string]string `json:"labels"`
	District    string            `json:"district"`
	EventType   string            `json:"event_type,omitempty"`
	Location    *Location         `json:"location,omitempty"`
	EventIDs    []string          `json:"event_ids"`
	EventCount  int64             `json:"event_count"`
	StartsAt    *time.Time        `json:"starts_at,omitempty"`
	EndsAt      *time.Time        `json:"ends_at,omitempty"`
	UpdatedAt   *time.Time        `json:"updated_at,omitempty"`
	Explanation []Explanation     `json:"explanation,omitempty"`
	Dispatch    *Dispatch         `json:"dispatch,omitempty"`
	Shadow      bool              `json:"shadow,omitempty"`
}

// Part is the JSON form of one department's part of a case.
type Part struct {
	Department string     `json:"department"`
	Lead       bool       `json:"lead"`
	Status     string     `json:"status"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	HandledAt  *time.Time `json:"handled_at,omitempty"`
	Note       string     `json:"note,omitempty"`
}

// AuditEntry is the JSON form of one change of a case.
type AuditEntry struct {
	Version    int64      `json:"version"`
	Action     string     `json:"action"`
	Actor      string     `json:"actor"`
	Role       string     `json:"role,omitempty"`
	Department string     `json:"department,omitempty"`
	At         *time.Time `json:"at,omitempty"`
	Note       string     `json:"note,omitempty"`
	RequestID  string     `json:"request_id,omitempty"`
	From       string     `json:"from,omitempty"`
	To         string     `json:"to,omitempty"`
}

// Case is the JSON form of a case; History is filled where the API returns
// one case with its audit trail.
type Case struct {
	ID           string            `json:"id"`
	Version      int64             `json:"version"`
	Status       string            `json:"status"`
	Title        string            `json:"title"`
	Description  string            `json:"description,omitempty"`
	Severity     string            `json:"severity,omitempty"`
	District     string            `json:"district"`
	Location     *Location         `json:"location,omitempty"`
	EventType    string            `json:"event_type,omitempty"`
	Origin       string            `json:"origin"`
	AlertID      string            `json:"alert_id,omitempty"`
	Rule         string            `json:"rule,omitempty"`
	Lead         string            `json:"lead,omitempty"`
	Assist       []string          `json:"assist,omitempty"`
	Parts        []Part            `json:"parts,omitempty"`
	Sla          *Sla              `json:"sla,omitempty"`
	CreatedAt    *time.Time        `json:"created_at,omitempty"`
	UpdatedAt    *time.Time        `json:"updated_at,omitempty"`
	DispatchedAt *time.Time        `json:"dispatched_at,omitempty"`
	AcceptDueAt  *time.Time        `json:"accept_due_at,omitempty"`
	HandleDueAt  *time.Time        `json:"handle_due_at,omitempty"`
	ClosedAt     *time.Time        `json:"closed_at,omitempty"`
	EventIDs     []string          `json:"event_ids,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	History      []AuditEntry      `json:"history,omitempty"`
}

// FromAlert renders a.
func FromAlert(a *cityhubv1.Alert) Alert {
	v := Alert{
		ID:          a.GetId(),
		Version:     a.GetVersion(),
		Rule:        a.GetRule(),
		Pack:        a.GetPack(),
		PackVersion: a.GetPackVersion(),
		State:       a.GetState().Name(),
		Severity:    a.GetSeverity().Name(),
		Title:       a.GetTitle(),
		Labels:      a.GetLabels(),
		District:    a.GetDistrict(),
		EventType:   a.GetEventType(),
		Location:    location(a.GetLocation()),
		EventIDs:    a.GetEventIds(),
		EventCount:  a.GetEventCount(),
		StartsAt:    ts(a.GetStartsAt()),
		EndsAt:      ts(a.GetEndsAt()),
		UpdatedAt:   ts(a.GetUpdatedAt()),
		Shadow:      a.GetShadow(),
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.EventIDs == nil {
		v.EventIDs = []string{}
	}
	for _, e := range a.GetExplanation() {
		v.Explanation = append(v.Explanation, Explanation{Expr: e.GetExpr(), Value: e.GetValue()})
	}
	if d := a.GetDispatch(); d != nil {
		v.Dispatch = &Dispatch{Lead: d.GetLead(), Assist: d.GetAssist(), Sla: sla(d.GetSla())}
	}
	return v
}

// FromCase renders c without its history.
func FromCase(c *cityhubv1.Case) Case {
	v := Case{
		ID:           c.GetId(),
		Version:      c.GetVersion(),
		Status:       c.GetStatus().Name(),
		Title:        c.GetTitle(),
		Description:  c.GetDescription(),
		Severity:     c.GetSeverity().Name(),
		District:     c.GetDistrict(),
		Location:     location(c.GetLocation()),
		EventType:    c.GetEventType(),
		Origin:       c.GetOrigin(),
		AlertID:      c.GetAlertId(),
		Rule:         c.GetRule(),
		Lead:         c.GetLead(),
		Assist:       c.GetAssist(),
		Sla:          sla(c.GetSla()),
		CreatedAt:    ts(c.GetCreatedAt()),
		UpdatedAt:    ts(c.GetUpdatedAt()),
		DispatchedAt: ts(c.GetDispatchedAt()),
		AcceptDueAt:  ts(c.GetAcceptDueAt()),
		HandleDueAt:  ts(c.GetHandleDueAt()),
		ClosedAt:     ts(c.GetClosedAt()),
		EventIDs:     c.GetEventIds(),
		Labels:       c.GetLabels(),
	}
	for _, p := range c.GetParts() {
		v.Parts = append(v.Parts, Part{
			Department: p.GetDepartment(),
			Lead:       p.GetLead(),
			Status:     p.GetStatus().Name(),
			AcceptedAt: ts(p.GetAcceptedAt()),
			HandledAt:  ts(p.GetHandledAt()),
			Note:       p.GetNote(),
		})
	}
	return v
}

// FromAudit renders an audit entry.
func FromAudit(e *cityhubv1.AuditEntry) AuditEntry {
	return AuditEntry{
		Version:    e.GetVersion(),
		Action:     e.GetAction(),
		Actor:      e.GetActor(),
		Role:       e.GetRole(),
		Department: e.GetDepartment(),
		At:         ts(e.GetAt()),
		Note:       e.GetNote(),
		RequestID:  e.GetRequestId(),
		From:       e.GetFrom().Name(),
		To:         e.GetTo().Name(),
	}
}

func location(l *cityhubv1.Location) *Location {
	if l == nil {
		return nil
	}
	return &Location{Lon: l.GetLon(), Lat: l.GetLat(), District: l.GetDistrict(), Street: l.GetStreet(), Grid: l.GetGrid(), Address: l.GetAddress()}
}

func sla(s *cityhubv1.Sla) *Sla {
	if s == nil {
		return nil
	}
	return &Sla{Accept: dur(s.GetAccept()), Handle: dur(s.GetHandle())}
}

func dur(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().String()
}

func ts(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime().UTC()
	return &v
}
