package rulepack

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Env is what a rule's condition sees: the event, as `event`. Its fields
// are those of the event field table (EventFields), as expr's type checker
// needs them: Go types, named by their expr tags.
type Env struct {
	Event Event `expr:"event"`
	// ev is the event Reset filled Env from: labels, distinct values and
	// templates read it through the table.
	ev *cityhubv1.Event
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
// evaluating a stream of events does not allocate one per event. e keeps
// ev until the next Reset.
func (e *Env) Reset(ev *cityhubv1.Event) {
	attrs := e.Event.Attrs
	if attrs == nil {
		attrs = make(map[string]any, 8)
	}
	clear(attrs)
	e.ev = ev
	loc := ev.GetLocation()
	e.Event = Event{
		ID:         ev.GetId(),
		Source:     ev.GetSource(),
		Type:       ev.GetType(),
		OccurredAt: occurredAt(ev),
		Location: Location{
			Lon: loc.GetLon(), Lat: loc.GetLat(),
			District: loc.GetDistrict(), Street: loc.GetStreet(),
			Grid: loc.GetGrid(), Address: loc.GetAddress(),
		},
		Severity: ev.GetSeverity().Name(),
		Text:     ev.GetText(),
		Attrs:    attrs,
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
	event := map[string]any{"attrs": e.Event.Attrs}
	// Paths nest one level (location.street); sub is event[parent].
	var parent string
	var sub map[string]any
	for i := range eventFields {
		f := &eventFields[i]
		p, leaf, nested := strings.Cut(f.Path, ".")
		if !nested {
			event[f.Path] = f.value(e.ev)
			continue
		}
		if p != parent {
			parent = p
			if sub, _ = event[p].(map[string]any); sub == nil {
				sub = map[string]any{}
				event[p] = sub
			}
		}
		sub[leaf] = f.value(e.ev)
	}
	return map[string]any{"event": event, "labels": labels}
}

// FieldPath returns the canonical form of an event field a rule may count
// distinct values of: a field of EventFields with Distinct set, or
// attrs.NAME, written with or without "event." in front.
func FieldPath(s string) (string, bool) {
	s = strings.TrimPrefix(s, "event.")
	if distinctField(s) != nil {
		return s, true
	}
	if attr, ok := trimAttr(s); ok && nameRE.MatchString(attr) {
		return s, true
	}
	return "", false
}

// Value returns the event field path (as FieldPath returns it) as text.
func (e *Env) Value(path string) string {
	if f := distinctField(path); f != nil {
		return f.Text(e.ev)
	}
	return e.Label(path)
}

// Label returns the value of the group label name for the event in e.
func (e *Env) Label(name string) string {
	if f := labelField(name); f != nil {
		return f.Text(e.ev)
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
