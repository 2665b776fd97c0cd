package alertstate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// record is an alert's hash: the body it was given and what the store keeps
// beside it. Times are Unix milliseconds, 0 when unset.
type record struct {
	state        string // pending, firing or resolved
	version      int64
	eventCount   int64
	startsAt     int64
	updatedAt    int64
	endsAt       int64 // 0 while open
	resolveAt    int64 // when an open alert resolves by itself; 0: never
	severity     int64
	prevSeverity int64 // 0: the severity never changed this episode
	severityAt   int64
	fireAt       int64 // when a pending alert fires (the episode's start when it never was)
	silenced     string
	inhibited    string
	body         string // the encoded alert, without the store's fields
}

// column is one field of an alert's hash: num or text points at it in a
// record.
type column struct {
	name string
	num  func(*record) *int64
	text func(*record) *string
}

// columns names the fields of an alert's hash. The scripts write them under
// these names, replies and reads carry them back under them, and Restore
// writes every one.
var columns = []column{
	{name: "state", text: func(r *record) *string { return &r.state }},
	{name: "version", num: func(r *record) *int64 { return &r.version }},
	{name: "event_count", num: func(r *record) *int64 { return &r.eventCount }},
	{name: "starts_at", num: func(r *record) *int64 { return &r.startsAt }},
	{name: "updated_at", num: func(r *record) *int64 { return &r.updatedAt }},
	{name: "ends_at", num: func(r *record) *int64 { return &r.endsAt }},
	{name: "resolve_at", num: func(r *record) *int64 { return &r.resolveAt }},
	{name: "severity", num: func(r *record) *int64 { return &r.severity }},
	{name: "prev_severity", num: func(r *record) *int64 { return &r.prevSeverity }},
	{name: "severity_at", num: func(r *record) *int64 { return &r.severityAt }},
	{name: "fire_at", num: func(r *record) *int64 { return &r.fireAt }},
	{name: "silenced", text: func(r *record) *string { return &r.silenced }},
	{name: "inhibited", text: func(r *record) *string { return &r.inhibited }},
	{name: "body", text: func(r *record) *string { return &r.body }},
}

var (
	columnNames = func() []string {
		names := make([]string, len(columns))
		for i, c := range columns {
			names[i] = c.name
		}
		return names
	}()
	columnByName = func() map[string]*column {
		m := make(map[string]*column, len(columns))
		for i := range columns {
			m[columns[i].name] = &columns[i]
		}
		return m
	}()
)

// set sets the field name to v as Redis holds it. A name that is no column
// is ignored; an empty number is 0 (a field an older store did not write).
func (r *record) set(name, v string) error {
	c, ok := columnByName[name]
	if !ok {
		return nil
	}
	if c.text != nil {
		*c.text(r) = v
		return nil
	}
	if v == "" {
		*c.num(r) = 0
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("stored %s %q: %w", name, v, err)
	}
	*c.num(r) = n
	return nil
}

// field returns the field of c as Redis holds it.
func (r *record) field(c *column) string {
	if c.text != nil {
		return *c.text(r)
	}
	return strconv.FormatInt(*c.num(r), 10)
}

// alert builds the alert r and its event ids describe. When base is given
// it holds the body already and becomes the alert; ids become its EventIds.
func (r *record) alert(base *cityhubv1.Alert, ids []string) (*cityhubv1.Alert, error) {
	a := base
	if a == nil {
		a = &cityhubv1.Alert{}
		if err := proto.Unmarshal([]byte(r.body), a); err != nil {
			return nil, fmt.Errorf("decode stored alert: %w", err)
		}
	}
	var err error
	if a.State, err = parseState(r.state); err != nil {
		return nil, err
	}
	a.Version = r.version
	a.EventCount = r.eventCount
	a.StartsAt = millis(r.startsAt)
	a.UpdatedAt = millis(r.updatedAt)
	a.EndsAt, a.PreviousSeverity, a.SeverityChangedAt, a.FiresAt = nil, 0, nil, nil
	if r.endsAt > 0 {
		a.EndsAt = millis(r.endsAt)
	}
	if r.prevSeverity > 0 {
		a.PreviousSeverity = cityhubv1.Severity(r.prevSeverity)
		a.SeverityChangedAt = millis(r.severityAt)
	}
	if r.fireAt > 0 {
		a.FiresAt = millis(r.fireAt)
	}
	a.SilencedBy, a.InhibitedBy = splitMarks(r.silenced), splitMarks(r.inhibited)
	a.EventIds = nil
	if len(ids) > 0 {
		a.EventIds = ids
	}
	return a, nil
}

// restoreRecord returns the record of a, as read back from the alerts
// topic, that resolves by itself at resolveAt (zero: never).
func restoreRecord(a *cityhubv1.Alert, resolveAt time.Time) (record, error) {
	if a.GetId() == "" || a.GetVersion() <= 0 {
		return record{}, fmt.Errorf("alertstate: restore needs an alert with an id and a version")
	}
	r := record{
		version: a.GetVersion(), eventCount: a.GetEventCount(),
		startsAt: ms(a.GetStartsAt()), updatedAt: ms(a.GetUpdatedAt()), endsAt: ms(a.GetEndsAt()),
		severity: int64(a.GetSeverity()), prevSeverity: int64(a.GetPreviousSeverity()),
		severityAt: ms(a.GetSeverityChangedAt()), fireAt: ms(a.GetFiresAt()),
		silenced: joinMarks(a.GetSilencedBy()), inhibited: joinMarks(a.GetInhibitedBy()),
	}
	switch a.GetState() {
	case cityhubv1.AlertState_ALERT_STATE_FIRING:
		r.state = stateFiring
	case cityhubv1.AlertState_ALERT_STATE_RESOLVED:
		r.state = stateResolved
	case cityhubv1.AlertState_ALERT_STATE_PENDING:
		r.state = statePending
	default:
		return record{}, fmt.Errorf("alertstate: restore alert %s: no state", a.GetId())
	}
	if !resolveAt.IsZero() && r.state != stateResolved {
		r.resolveAt = resolveAt.UnixMilli()
	}
	b, err := proto.Marshal(body(a))
	if err != nil {
		return record{}, err
	}
	r.body = string(b)
	return r, nil
}

// The states as the hash holds them.
const (
	statePending  = "pending"
	stateFiring   = "firing"
	stateResolved = "resolved"
)

func (r *record) open() bool { return r.state == stateFiring || r.state == statePending }

func parseState(s string) (cityhubv1.AlertState, error) {
	switch s {
	case stateFiring:
		return cityhubv1.AlertState_ALERT_STATE_FIRING, nil
	case stateResolved:
		return cityhubv1.AlertState_ALERT_STATE_RESOLVED, nil
	case statePending:
		return cityhubv1.AlertState_ALERT_STATE_PENDING, nil
	}
	return 0, fmt.Errorf("stored state %q", s)
}

// body returns the fields of a that the store keeps as given.
func body(a *cityhubv1.Alert) *cityhubv1.Alert {
	b := proto.Clone(a).(*cityhubv1.Alert)
	b.State = cityhubv1.AlertState_ALERT_STATE_UNSPECIFIED
	b.Version = 0
	b.EventIds = nil
	b.EventCount = 0
	b.StartsAt, b.EndsAt, b.UpdatedAt, b.FiresAt, b.SeverityChangedAt = nil, nil, nil, nil, nil
	b.PreviousSeverity = 0
	b.SilencedBy, b.InhibitedBy = nil, nil
	return b
}

// encodeBody encodes body(a). An alert described for a Fire update holds
// none of the store's fields but its marks, which are left out in place
// rather than by copying the whole alert.
func encodeBody(a *cityhubv1.Alert) ([]byte, error) {
	if a.State != 0 || a.Version != 0 || len(a.EventIds) != 0 || a.EventCount != 0 || a.PreviousSeverity != 0 ||
		a.StartsAt != nil || a.EndsAt != nil || a.UpdatedAt != nil || a.FiresAt != nil || a.SeverityChangedAt != nil {
		return proto.Marshal(body(a))
	}
	silenced, inhibited := a.SilencedBy, a.InhibitedBy
	a.SilencedBy, a.InhibitedBy = nil, nil
	b, err := proto.Marshal(a)
	a.SilencedBy, a.InhibitedBy = silenced, inhibited
	return b, err
}

// joinMarks joins silence names or alert ids, which hold no commas, for
// one hash field.
func joinMarks(marks []string) string { return strings.Join(marks, ",") }

func splitMarks(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func millis(ms int64) *timestamppb.Timestamp {
	return timestamppb.New(time.UnixMilli(ms).UTC())
}

func ms(t *timestamppb.Timestamp) int64 {
	if t == nil {
		return 0
	}
	return t.AsTime().UnixMilli()
}
