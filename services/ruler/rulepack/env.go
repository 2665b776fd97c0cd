package rulepack

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Env is what a rule's condition sees: the event, as `event`.
type Env struct {
	Event Event `expr:"event"`
}

// Event is an event as conditions see it. Numbers in attrs are float64.
type Event struct {
	ID         string         `expr:"id"`
	Source     string         `expr:"source"`
	Type       string         `expr:"type"`
	OccurredAt time.Time      `expr:"occurred_at"`
	Location   Location       `expr:"location"`
	Severity   string         `expr:"severity"`
	Text       string         `expr:"text"`
	Attrs      map[string]any `expr:"attrs"`
}

// Location is an event's location as conditions see it.
type Location struct {
	Lon      float64 `expr:"lon"`
	Lat      float64 `expr:"lat"`
	District string  `expr:"district"`
	Street   string  `expr:"street"`
	Grid     string  `expr:"grid"`
	Address  string  `expr:"address"`
}

// Reset fills e from ev, reusing e's attribute map so that a worker
// evaluating a stream of events does not allocate one per event.
func (e *Env) Reset(ev *cityhubv1.Event) {
	attrs := e.Event.Attrs
	if attrs == nil {
		attrs = make(map[string]any, 8)
	}
	clear(attrs)
	loc := ev.GetLocation()
	e.Event = Event{
		ID:     ev.GetId(),
		Source: ev.GetSource(),
		Type:   ev.GetType(),
		Location: Location{
			Lon: loc.GetLon(), Lat: loc.GetLat(),
			District: loc.GetDistrict(), Street: loc.GetStreet(),
			Grid: loc.GetGrid(), Address: loc.GetAddress(),
		},
		Severity: ev.GetSeverity().Name(),
		Text:     ev.GetText(),
		Attrs:    attrs,
	}
	if ts := ev.GetOccurredAt(); ts != nil {
		e.Event.OccurredAt = ts.AsTime()
	}
	for k, v := range ev.GetAttrs().GetFields() {
		attrs[k] = plain(v)
	}
}

// plain converts a protobuf value to the Go value a condition compares.
func plain(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return k.NumberValue
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_ListValue:
		out := make([]any, len(k.ListValue.GetValues()))
		for i, x := range k.ListValue.GetValues() {
			out[i] = plain(x)
		}
		return out
	case *structpb.Value_StructValue:
		out := make(map[string]any, len(k.StructValue.GetFields()))
		for name, x := range k.StructValue.GetFields() {
			out[name] = plain(x)
		}
		return out
	}
	return nil
}

// TemplateData returns what a title template sees: .event with the
// condition's field names, and .labels.
func (e *Env) TemplateData(labels map[string]string) map[string]any {
	ev := e.Event
	return map[string]any{
		"event": map[string]any{
			"id":          ev.ID,
			"source":      ev.Source,
			"type":        ev.Type,
			"occurred_at": ev.OccurredAt,
			"severity":    ev.Severity,
			"text":        ev.Text,
			"attrs":       ev.Attrs,
			"location": map[string]any{
				"lon": ev.Location.Lon, "lat": ev.Location.Lat,
				"district": ev.Location.District, "street": ev.Location.Street,
				"grid": ev.Location.Grid, "address": ev.Location.Address,
			},
		},
		"labels": labels,
	}
}

// FieldPath returns the canonical form of an event field a rule may count
// distinct values of: source, location.district, location.street,
// location.grid, location.address or attrs.NAME, written with or without
// "event." in front.
func FieldPath(s string) (string, bool) {
	s = strings.TrimPrefix(s, "event.")
	switch s {
	case "source", "location.district", "location.street", "location.grid", "location.address":
		return s, true
	}
	if attr, ok := trimAttr(s); ok && nameRE.MatchString(attr) {
		return s, true
	}
	return "", false
}

// Value returns the event field path (as FieldPath returns it) as text.
func (e *Env) Value(path string) string {
	switch path {
	case "source":
		return e.Event.Source
	case "location.district":
		return e.Event.Location.District
	case "location.street":
		return e.Event.Location.Street
	case "location.grid":
		return e.Event.Location.Grid
	case "location.address":
		return e.Event.Location.Address
	}
	return e.Label(path)
}

// Label returns the value of the group label name for the event in e.
func (e *Env) Label(name string) string {
	switch name {
	case "district":
		return e.Event.Location.District
	case "street":
		return e.Event.Location.Street
	case "grid":
		return e.Event.Location.Grid
	case "type":
		return e.Event.Type
	case "source":
		return e.Event.Source
	}
	if attr, ok := trimAttr(name); ok {
		switch v := e.Event.Attrs[attr].(type) {
		case nil:
			return ""
		case string:
			return v
		case float64:
			return formatNumber(v)
		case bool:
			if v {
				return "true"
			}
			return "false"
		}
	}
	return ""
}
