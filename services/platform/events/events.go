// Package events decodes city events from their JSON form (ARCHITECTURE.md, "Events"),
// validates every field against the catalog, and converts them to
// cityhubv1.Event. Intake uses it for request bodies; rule tests use it for
// the events they replay.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// Limits of one request and of one event.
const (
	MaxBodyBytes    = 1 << 20
	MaxBatch        = 1000
	MaxTextBytes    = 4 << 10
	MaxAttrs        = 64
	MaxAttrBytes    = 1 << 10
	MaxPlaceRunes   = 128
	MaxAddressRunes = 512
	// MaxFuture is how far ahead of the hub's clock occurred_at may be
	// (sources' clocks drift).
	MaxFuture = 10 * time.Minute
)

var (
	idRE     = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	sourceRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
	attrRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Input is the JSON form of an event as a source sends it.
type Input struct {
	ID         string         `json:"id,omitempty"`
	Source     string         `json:"source"`
	Type       string         `json:"type"`
	OccurredAt string         `json:"occurred_at"`
	Location   *LocationInput `json:"location"`
	Severity   string         `json:"severity,omitempty"`
	Text       string         `json:"text,omitempty"`
	Attrs      map[string]any `json:"attrs,omitempty"`
}

// LocationInput is the JSON form of a location.
type LocationInput struct {
	Lon      *float64 `json:"lon,omitempty"`
	Lat      *float64 `json:"lat,omitempty"`
	District string   `json:"district"`
	Street   string   `json:"street,omitempty"`
	Grid     string   `json:"grid,omitempty"`
	Address  string   `json:"address,omitempty"`
}

// FieldError is one problem with one field of an event.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ItemError lists the problems of the event at Index of a request.
type ItemError struct {
	Index  int          `json:"index"`
	Errors []FieldError `json:"errors"`
}

// BatchError is returned when any event of a request is invalid; the whole
// request is refused.
type BatchError struct {
	Items []ItemError
}

func (e *BatchError) Error() string {
	if len(e.Items) == 0 {
		return "invalid events"
	}
	first := e.Items[0]
	msg := fmt.Sprintf("event %d: %s: %s", first.Index, first.Errors[0].Field, first.Errors[0].Message)
	if n := len(e.Items); n > 1 {
		msg += fmt.Sprintf(" (and %d more invalid events)", n-1)
	}
	return msg
}

// ErrMalformed is wrapped by errors about a body that is not an event or a
// JSON array of events at all.
var ErrMalformed = errors.New("malformed body")

// Decoder validates events against a catalog. It is safe for concurrent use.
type Decoder struct {
	Catalog *catalog.Catalog
	// Now is the hub's clock; time.Now when nil.
	Now func() time.Time
	// SpeaksFor says whether the caller may post events of a source (the
	// sources its token names); an event of another source is invalid.
	// Nil allows every source.
	SpeaksFor func(source string) bool
}

// Key returns the identity of ev: its source and its id. Ids are the
// sources' own idempotency keys, so they are unique only within a source;
// two sources that pick the same id name two events, and one source can
// never take or pre-empt another's. Consumers that deduplicate events, and
// alerts that list them, use this key.
func Key(ev *cityhubv1.Event) string { return ev.GetSource() + "/" + ev.GetId() }

// DecodeBody parses body — one event object or an array of at most MaxBatch
// — and validates every event. It returns all events or none: a *BatchError
// lists the problems of every invalid event; an error wrapping ErrMalformed
// says the body itself cannot be read.
func (d *Decoder) DecodeBody(body []byte) ([]*cityhubv1.Event, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	var raws []json.RawMessage
	switch trimmed[0] {
	case '{':
		raws = []json.RawMessage{trimmed}
	case '[':
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if len(raws) == 0 {
			return nil, fmt.Errorf("%w: empty array: send at least one event", ErrMalformed)
		}
		if len(raws) > MaxBatch {
			return nil, fmt.Errorf("%w: %d events in one request, at most %d", ErrMalformed, len(raws), MaxBatch)
		}
	default:
		return nil, fmt.Errorf("%w: want a JSON object or an array of objects", ErrMalformed)
	}
	out := make([]*cityhubv1.Event, len(raws))
	errs := make([][]FieldError, len(raws))
	for i, raw := range raws {
		out[i], errs[i] = d.decodeOne(raw)
	}
	return batch(out, errs)
}

// DecodeInputs validates events that an adapter built from a source's own
// protocol, exactly as DecodeBody validates the JSON of POST /v1/events:
// all or none, at most MaxBatch, every problem in a *BatchError.
func (d *Decoder) DecodeInputs(in []*Input) ([]*cityhubv1.Event, error) {
	switch {
	case len(in) == 0:
		return nil, fmt.Errorf("%w: no events", ErrMalformed)
	case len(in) > MaxBatch:
		return nil, fmt.Errorf("%w: %d events in one request, at most %d", ErrMalformed, len(in), MaxBatch)
	}
	out := make([]*cityhubv1.Event, len(in))
	errs := make([][]FieldError, len(in))
	for i, x := range in {
		if x == nil {
			errs[i] = []FieldError{{Message: "no event"}}
			continue
		}
		out[i], errs[i] = d.Validate(x)
	}
	return batch(out, errs)
}

// batch returns evs, or a *BatchError naming every event with a problem,
// among them events of one batch that share a source and an id.
func batch(out []*cityhubv1.Event, errs [][]FieldError) ([]*cityhubv1.Event, error) {
	duplicates(out, errs)
	var bad []ItemError
	for i, e := range errs {
		if len(e) > 0 {
			bad = append(bad, ItemError{Index: i, Errors: e})
		}
	}
	if len(bad) > 0 {
		return nil, &BatchError{Items: bad}
	}
	return out, nil
}

// duplicates adds an error to each of two or more events of one request
// that share a source and an id, naming the others: one of them would be
// dropped as a redelivery of the other, while the answer said both were
// accepted. Ids the hub assigned never repeat.
func duplicates(evs []*cityhubv1.Event, errs [][]FieldError) {
	first := make(map[string]int, len(evs))
	var dups map[string][]int
	for i, ev := range evs {
		if ev == nil {
			continue
		}
		k := Key(ev)
		j, seen := first[k]
		if !seen {
			first[k] = i
			continue
		}
		if dups == nil {
			dups = make(map[string][]int)
		}
		if len(dups[k]) == 0 {
			dups[k] = []int{j}
		}
		dups[k] = append(dups[k], i)
	}
	for _, idx := range dups {
		for _, i := range idx {
			var others []string
			for _, j := range idx {
				if j != i {
					others = append(others, fmt.Sprint(j))
				}
			}
			errs[i] = append(errs[i], FieldError{Field: "id", Message: fmt.Sprintf("%q of source %s is also the id of event %s of this request; ids are idempotency keys and must differ", evs[i].GetId(), evs[i].GetSource(), strings.Join(others, ", "))})
		}
	}
}

func (d *Decoder) decodeOne(raw json.RawMessage) (*cityhubv1.Event, []FieldError) {
	// encoding/json turns invalid UTF-8 and lone surrogate escapes into
	// U+FFFD without a word, so they are looked for in the raw bytes first.
	if suspectUnicode(raw) {
		if errs := unicodeErrors(raw); len(errs) > 0 {
			return nil, errs
		}
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, []FieldError{jsonFieldError(err)}
	}
	if dec.More() {
		return nil, []FieldError{{Field: "", Message: "data after the event object"}}
	}
	return d.Validate(&in)
}

// jsonFieldError turns an encoding/json error into a field error.
func jsonFieldError(err error) FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return FieldError{Field: te.Field, Message: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return FieldError{Field: strings.Trim(f, `"`), Message: "unknown field"}
	}
	return FieldError{Message: strings.TrimPrefix(msg, "json: ")}
}

// Validate checks in and converts it; it returns every problem at once.
// An absent id is assigned a ULID.
func (d *Decoder) Validate(in *Input) (*cityhubv1.Event, []FieldError) {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	ev := &cityhubv1.Event{Id: in.ID, Source: in.Source, Type: in.Type, Text: in.Text}

	switch {
	case in.ID == "":
		ev.Id = strings.ToLower(ulid.Make().String())
	case !idRE.MatchString(in.ID):
		bad("id", "want 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	switch {
	case in.Source == "":
		bad("source", "required")
	case !sourceRE.MatchString(in.Source):
		bad("source", "%q: want lower-case letters, digits and _", clip(in.Source))
	case d.SpeaksFor != nil && !d.SpeaksFor(in.Source):
		bad("source", "%q: the token does not speak for this source", in.Source)
	}
	var et *catalog.EventType
	if in.Type == "" {
		bad("type", "required")
	} else if t, ok := d.Catalog.EventType(in.Type); !ok {
		bad("type", "%q is not an event type of the catalog", clip(in.Type))
	} else {
		et = t
	}
	if in.OccurredAt == "" {
		bad("occurred_at", "required")
	} else if t, err := time.Parse(time.RFC3339Nano, in.OccurredAt); err != nil {
		bad("occurred_at", "%q: want an RFC 3339 time such as 2026-07-01T08:30:00+08:00", clip(in.OccurredAt))
	} else if t.After(now().Add(MaxFuture)) {
		bad("occurred_at", "%s is more than %s in the future", in.OccurredAt, MaxFuture)
	} else {
		ev.OccurredAt = timestamppb.New(t)
	}
	if l := in.Location; l == nil {
		bad("location", "required")
	} else {
		loc := &cityhubv1.Location{District: l.District, Street: l.Street, Grid: l.Grid, Address: l.Address}
		if l.District == "" {
			bad("location.district", "required")
		} else if _, ok := d.Catalog.District(l.District); !ok {
			bad("location.district", "%q is not a district of the catalog", clip(l.District))
		}
		if (l.Lon == nil) != (l.Lat == nil) {
			bad("location", "give lon and lat together, or neither")
		}
		if l.Lon != nil {
			if *l.Lon < -180 || *l.Lon > 180 {
				bad("location.lon", "%v is outside -180..180", *l.Lon)
			}
			loc.Lon = *l.Lon
		}
		if l.Lat != nil {
			if *l.Lat < -90 || *l.Lat > 90 {
				bad("location.lat", "%v is outside -90..90", *l.Lat)
			}
			loc.Lat = *l.Lat
		}
		for _, f := range []struct {
			name, v string
			max     int
		}{{"location.street", l.Street, MaxPlaceRunes}, {"location.grid", l.Grid, MaxPlaceRunes}, {"location.address", l.Address, MaxAddressRunes}} {
			if !utf8.ValidString(f.v) {
				bad(f.name, "not valid UTF-8")
			} else if n := utf8.RuneCountInString(f.v); n > f.max {
				bad(f.name, "%d characters, at most %d", n, f.max)
			}
		}
		ev.Location = loc
	}
	if in.Severity != "" {
		s, err := cityhubv1.ParseSeverity(in.Severity)
		if err != nil {
			bad("severity", "%v", err)
		}
		ev.Severity = s
	}
	if !utf8.ValidString(in.Text) {
		bad("text", "not valid UTF-8")
	} else if len(in.Text) > MaxTextBytes {
		bad("text", "%d bytes, at most %d", len(in.Text), MaxTextBytes)
	}
	if len(in.Attrs) > MaxAttrs {
		bad("attrs", "%d attributes, at most %d", len(in.Attrs), MaxAttrs)
	} else if len(in.Attrs) > 0 {
		fields := make(map[string]*structpb.Value, len(in.Attrs))
		for name, v := range in.Attrs {
			field := "attrs." + clip(name)
			if !attrRE.MatchString(name) {
				bad(field, "attribute names are lower-case letters, digits and _, starting with a letter")
				continue
			}
			pv, kind, ok := scalar(v)
			if !ok {
				bad(field, "want a number, a string or a boolean")
				continue
			}
			if s, isStr := v.(string); isStr && (len(s) > MaxAttrBytes || !utf8.ValidString(s)) {
				bad(field, "want valid UTF-8 of at most %d bytes", MaxAttrBytes)
				continue
			}
			if et != nil {
				if want, declared := et.Attrs[name]; declared && want != kind {
					bad(field, "the catalog declares %s for %s events, got a %s", want, et.Code, kind)
					continue
				}
			}
			fields[name] = pv
		}
		ev.Attrs = &structpb.Struct{Fields: fields}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	ev.ReceivedAt = timestamppb.New(now())
	return ev, nil
}

func scalar(v any) (*structpb.Value, catalog.AttrType, bool) {
	switch x := v.(type) {
	case float64:
		return structpb.NewNumberValue(x), catalog.AttrNumber, true
	case string:
		return structpb.NewStringValue(x), catalog.AttrString, true
	case bool:
		return structpb.NewBoolValue(x), catalog.AttrBool, true
	}
	return nil, "", false
}

// clip shortens what a client sent before it is echoed in an error.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	for i := 64; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
