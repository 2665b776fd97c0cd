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

// Sla is the JSON form of case deadlines. AcceptIn and HandleIn name the
// clock of each limit, "working" or "natural", on cases (not on alerts).
type Sla struct {
	Accept    string `json:"accept,omitempty"`
	Handle    string `json:"handle,omitempty"`
	CaseClass string `json:"case_class,omitempty"`
	AcceptIn  string `json:"accept_in,omitempty"`
	HandleIn  string `json:"handle_in,omitempty"`
}

// Dispatch is the JSON form of an alert's dispatch spec.
type Dispatch struct {
	Lead      string   `json:"lead"`
	Assist    []string `json:"assist,omitempty"`
	Sla       *Sla     `json:"sla,omitempty"`
	CaseClass string   `json:"case_class,omitempty"`
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
	Summary     string            `json:"summary,omitempty"`
	// SilencedBy names the silences muting the alert, InhibitedBy the ids
	// of the alerts inhibiting it; a muted alert opens no case.
	SilencedBy  []string `json:"silenced_by,omitempty"`
	InhibitedBy []string `json:"inhibited_by,omitempty"`
	// PreviousSeverity and SeverityChangedAt record the last escalation
	// or de-escalation.
	PreviousSeverity  string     `json:"previous_severity,omitempty"`
	SeverityChangedAt *time.Time `json:"severity_changed_at,omitempty"`
	// FiresAt is when a pending alert fires if its condition still holds,
	// or when a firing one fired.
	FiresAt *time.Time `json:"fires_at,omitempty"`
}

// Part is the JSON form of one department's part of a case.
type Part struct {
	Department     string     `json:"department"`
	Lead           bool       `json:"lead"`
	Status         string     `json:"status"`
	AcceptedAt     *time.Time `json:"accepted_at,omitempty"`
	HandledAt      *time.Time `json:"handled_at,omitempty"`
	Note           string     `json:"note,omitempty"`
	AcceptDeadline *Deadline  `json:"accept_deadline,omitempty"`
	HandleDeadline *Deadline  `json:"handle_deadline,omitempty"`
	// Suspended is true while the part's clocks stand still.
	Suspended      bool       `json:"suspended,omitempty"`
	SuspendedAt    *time.Time `json:"suspended_at,omitempty"`
	SuspendReason  string     `json:"suspend_reason,omitempty"`
	SuspendedTotal string     `json:"suspended_total,omitempty"`
	Extension      *Extension `json:"extension,omitempty"`
	ReworkNote     string     `json:"rework_note,omitempty"`
}

// Deadline is the JSON form of one deadline of a part. State is "running"
// until warn_at, then "warned", "missed" (past due_at, with the district
// centre) and "missed_twice" (past final_at, with the city centre).
type Deadline struct {
	DueAt   *time.Time `json:"due_at,omitempty"`
	WarnAt  *time.Time `json:"warn_at,omitempty"`
	FinalAt *time.Time `json:"final_at,omitempty"`
	State   string     `json:"state"`
	// In is the clock: "working" or "natural".
	In      string `json:"in"`
	Allowed string `json:"allowed,omitempty"`
}

// Extension is the JSON form of an extension request. State is "pending",
// "granted" or "refused".
type Extension struct {
	State        string     `json:"state"`
	ExtendBy     string     `json:"extend_by,omitempty"`
	Until        *time.Time `json:"until,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	RequestedBy  string     `json:"requested_by,omitempty"`
	RequestedAt  *time.Time `json:"requested_at,omitempty"`
	DecidedBy    string     `json:"decided_by,omitempty"`
	DecidedAt    *time.Time `json:"decided_at,omitempty"`
	DecisionNote string     `json:"decision_note,omitempty"`
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
	Effect     string     `json:"effect,omitempty"`
	// Via is the channel a person acted through when not the console: an
	// acknowledgement link in an SMS, a WeCom message.
	Via string `json:"via,omitempty"`
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
	// MergedInto names the case this duplicate was merged into; Merged the
	// duplicates merged into this case.
	MergedInto string   `json:"merged_into,omitempty"`
	Merged     []string `json:"merged,omitempty"`
	// LinkedInto names the case this one is a linked part of (that of a
	// district-wide alert); Linked the cases linked into this one. A
	// linked case carries on as it is.
	LinkedInto string   `json:"linked_into,omitempty"`
	Linked     []string `json:"linked,omitempty"`
	// Arbitration is set while departments dispute the case (two returned
	// it) and the district centre has to decide.
	Arbitration       bool     `json:"arbitration,omitempty"`
	ArbitrationReason string   `json:"arbitration_reason,omitempty"`
	ReturnedBy        []string `json:"returned_by,omitempty"`
	ReworkCount       int32    `json:"rework_count,omitempty"`
	// EscalationLevel is 0 (the departments), 1 (the district centre) or 2
	// (the city centre); EscalatedTo names it when above 0.
	EscalationLevel int32  `json:"escalation_level"`
	EscalatedTo     string `json:"escalated_to,omitempty"`
	// Warned is set while a running deadline is near; Overdue while one
	// has passed.
	Warned  bool         `json:"warned,omitempty"`
	Overdue bool         `json:"overdue,omitempty"`
	History []AuditEntry `json:"history,omitempty"`
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
		Summary:     a.GetSummary(),
		SilencedBy:  a.GetSilencedBy(),
		InhibitedBy: a.GetInhibitedBy(),

		PreviousSeverity:  a.GetPreviousSeverity().Name(),
		SeverityChangedAt: ts(a.GetSeverityChangedAt()),
		FiresAt:           ts(a.GetFiresAt()),
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
		v.Dispatch = &Dispatch{Lead: d.GetLead(), Assist: d.GetAssist(), Sla: sla(d.GetSla()), CaseClass: d.GetCaseClass()}
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
		Sla:          caseSla(c.GetSla()),
		CreatedAt:    ts(c.GetCreatedAt()),
		UpdatedAt:    ts(c.GetUpdatedAt()),
		DispatchedAt: ts(c.GetDispatchedAt()),
		AcceptDueAt:  ts(c.GetAcceptDueAt()),
		HandleDueAt:  ts(c.GetHandleDueAt()),
		ClosedAt:     ts(c.GetClosedAt()),
		EventIDs:     c.GetEventIds(),
		Labels:       c.GetLabels(),

		MergedInto:        c.GetMergedInto(),
		Merged:            c.GetMerged(),
		LinkedInto:        c.GetLinkedInto(),
		Linked:            c.GetLinked(),
		Arbitration:       c.GetArbitration(),
		ArbitrationReason: c.GetArbitrationReason(),
		ReturnedBy:        c.GetReturnedBy(),
		ReworkCount:       c.GetReworkCount(),
		EscalationLevel:   c.GetEscalationLevel(),
		EscalatedTo:       escalatedTo(c.GetEscalationLevel()),
		Warned:            c.GetWarned(),
		Overdue:           c.GetOverdue(),
	}
	for _, p := range c.GetParts() {
		vp := Part{
			Department:     p.GetDepartment(),
			Lead:           p.GetLead(),
			Status:         p.GetStatus().Name(),
			AcceptedAt:     ts(p.GetAcceptedAt()),
			HandledAt:      ts(p.GetHandledAt()),
			Note:           p.GetNote(),
			AcceptDeadline: deadline(p.GetAcceptDeadline()),
			HandleDeadline: deadline(p.GetHandleDeadline()),
			Suspended:      p.GetSuspendedAt() != nil,
			SuspendedAt:    ts(p.GetSuspendedAt()),
			SuspendReason:  p.GetSuspendReason(),
			SuspendedTotal: dur(p.GetSuspendedTotal()),
			ReworkNote:     p.GetReworkNote(),
		}
		if e := p.GetExtension(); e != nil {
			vp.Extension = &Extension{
				State:        e.GetState(),
				ExtendBy:     dur(e.GetExtendBy()),
				Until:        ts(e.GetUntil()),
				Reason:       e.GetReason(),
				RequestedBy:  e.GetRequestedBy(),
				RequestedAt:  ts(e.GetRequestedAt()),
				DecidedBy:    e.GetDecidedBy(),
				DecidedAt:    ts(e.GetDecidedAt()),
				DecisionNote: e.GetDecisionNote(),
			}
		}
		v.Parts = append(v.Parts, vp)
	}
	return v
}

// escalatedTo names the rung of the escalation ladder above the
// departments; "" at the bottom.
func escalatedTo(level int32) string {
	switch {
	case level == 1:
		return "district-centre"
	case level >= 2:
		return "city-centre"
	}
	return ""
}

var deadlineStates = [...]string{"running", "warned", "missed", "missed_twice"}

func deadline(d *cityhubv1.Deadline) *Deadline {
	if d == nil {
		return nil
	}
	v := &Deadline{
		DueAt:   ts(d.GetDueAt()),
		WarnAt:  ts(d.GetWarnAt()),
		FinalAt: ts(d.GetFinalAt()),
		State:   deadlineStates[min(max(d.GetFired(), 0), int32(len(deadlineStates)-1))],
		In:      clock(d.GetWorking()),
		Allowed: dur(d.GetAllowed()),
	}
	return v
}

func clock(working bool) string {
	if working {
		return "working"
	}
	return "natural"
}

func caseSla(s *cityhubv1.Sla) *Sla {
	v := sla(s)
	if v == nil {
		return nil
	}
	v.CaseClass = s.GetCaseClass()
	if s.GetAccept() != nil {
		v.AcceptIn = clock(s.GetAcceptWorking())
	}
	if s.GetHandle() != nil {
		v.HandleIn = clock(s.GetHandleWorking())
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
		Effect:     e.GetEffect(),
		Via:        e.GetVia(),
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
