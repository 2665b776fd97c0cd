package rulepack

import (
	"slices"
	"strings"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// FieldKind is the type of an event field as conditions see it.
type FieldKind uint8

// The kinds of event fields.
const (
	FieldString FieldKind = iota + 1 // a string
	FieldNumber                      // a float64
	FieldTime                        // a time.Time, zero when the event has none
)

// EventField is one field of an event that rules name. The table of them
// (EventFields) is the only list of event fields: group_by labels,
// count.distinct, Env's Value, Label and TemplateData, the messages that
// list them and the engine's fast path all derive from it. Env is a
// struct, since expr type-checks conditions against Go types; a test
// holds it to the table.
type EventField struct {
	// Path is the field as conditions write it after "event.":
	// "location.street".
	Path string
	// Label names the field in group_by, silences and inhibit rules; ""
	// when alerts cannot be grouped by it.
	Label string
	// Distinct reports whether count.distinct may count its values.
	Distinct bool
	Kind     FieldKind
	// Text, Number and Time read the field from an event: the one of Kind
	// is set. A nil event or message reads as the zero value.
	Text   func(*cityhubv1.Event) string
	Number func(*cityhubv1.Event) float64
	Time   func(*cityhubv1.Event) time.Time
}

// eventFields is the table. Attributes (attrs.NAME) are not rows: their
// names and types are the catalog's.
var eventFields = []EventField{
	{Path: "id", Kind: FieldString, Text: (*cityhubv1.Event).GetId},
	{Path: "type", Label: "type", Kind: FieldString, Text: (*cityhubv1.Event).GetType},
	{Path: "source", Label: "source", Distinct: true, Kind: FieldString, Text: (*cityhubv1.Event).GetSource},
	{Path: "occurred_at", Kind: FieldTime, Time: occurredAt},
	{Path: "severity", Kind: FieldString, Text: func(ev *cityhubv1.Event) string { return ev.GetSeverity().Name() }},
	{Path: "text", Kind: FieldString, Text: (*cityhubv1.Event).GetText},
	{Path: "location.district", Label: "district", Distinct: true, Kind: FieldString,
		Text: func(ev *cityhubv1.Event) string { return ev.GetLocation().GetDistrict() }},
	{Path: "location.street", Label: "street", Distinct: true, Kind: FieldString,
		Text: func(ev *cityhubv1.Event) string { return ev.GetLocation().GetStreet() }},
	{Path: "location.grid", Label: "grid", Distinct: true, Kind: FieldString,
		Text: func(ev *cityhubv1.Event) string { return ev.GetLocation().GetGrid() }},
	{Path: "location.address", Distinct: true, Kind: FieldString,
		Text: func(ev *cityhubv1.Event) string { return ev.GetLocation().GetAddress() }},
	{Path: "location.lon", Kind: FieldNumber, Number: func(ev *cityhubv1.Event) float64 { return ev.GetLocation().GetLon() }},
	{Path: "location.lat", Kind: FieldNumber, Number: func(ev *cityhubv1.Event) float64 { return ev.GetLocation().GetLat() }},
}

// occurredAt is the zero time, not the Unix epoch, for an event without
// one: that is what a condition has always seen.
func occurredAt(ev *cityhubv1.Event) time.Time {
	if ts := ev.GetOccurredAt(); ts != nil {
		return ts.AsTime()
	}
	return time.Time{}
}

// EventFields returns the event fields rules name, in a fixed order.
func EventFields() []EventField { return slices.Clone(eventFields) }

// value returns the field of ev as a template sees it.
func (f *EventField) value(ev *cityhubv1.Event) any {
	switch f.Kind {
	case FieldNumber:
		return f.Number(ev)
	case FieldTime:
		return f.Time(ev)
	}
	return f.Text(ev)
}

// labelFields and distinctFields are the rows Label, Value and the parser
// look names up in: on the path of every matching event, where scanning a
// few short names is quicker than hashing one.
var (
	labelFields    = fieldsWhere(func(f *EventField) bool { return f.Label != "" })
	distinctFields = fieldsWhere(func(f *EventField) bool { return f.Distinct })
)

func fieldsWhere(keep func(*EventField) bool) []*EventField {
	var out []*EventField
	for i := range eventFields {
		if keep(&eventFields[i]) {
			out = append(out, &eventFields[i])
		}
	}
	return out
}

// labelField returns the field labelled name, or nil.
func labelField(name string) *EventField {
	for _, f := range labelFields {
		if f.Label == name {
			return f
		}
	}
	return nil
}

// distinctField returns the field at path when count.distinct may count
// it, or nil.
func distinctField(path string) *EventField {
	for _, f := range distinctFields {
		if f.Path == path {
			return f
		}
	}
	return nil
}

// The lists of what rule authors may write, for messages.
var (
	labelChoices    = choices(labelNames(), "attrs.NAME")
	distinctChoices = choices(distinctPaths(), "attrs.NAME")
	matcherChoices  = choices(append([]string{"rule", "pack", "severity"}, labelNames()...), "attrs.NAME")
)

// labelNames returns the labels of event fields, the location's first:
// alerts are grouped by place before anything else.
func labelNames() []string {
	var place, other []string
	for _, f := range labelFields {
		if strings.HasPrefix(f.Path, "location.") {
			place = append(place, f.Label)
		} else {
			other = append(other, f.Label)
		}
	}
	return append(place, other...)
}

func distinctPaths() []string {
	var out []string
	for _, f := range distinctFields {
		out = append(out, f.Path)
	}
	return out
}

// choices lists names and then last: "a, b or c".
func choices(names []string, last string) string {
	return strings.Join(names, ", ") + " or " + last
}
