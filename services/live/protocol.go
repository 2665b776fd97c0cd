package live

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Stream names a client may subscribe to.
const (
	streamAlerts = "alerts"
	streamCases  = "cases"
)

// Frame types.
const (
	frameSubscribe   = "subscribe"
	frameUnsubscribe = "unsubscribe"
	frameSnapshot    = "snapshot"
	frameAlert       = "alert"
	frameCase        = "case"
	frameError       = "error"
	frameReset       = "reset"
	frameRemoved     = "removed"
)

// Bounds on what a subscribe frame may name.
const (
	maxFilterValues = 256
	maxFilterValue  = 128
)

// clientFrame is a frame as a client sends it.
type clientFrame struct {
	Type    string        `json:"type"`
	Streams []string      `json:"streams,omitempty"`
	Filter  *filterFields `json:"filter,omitempty"`
}

type filterFields struct {
	Districts   []string `json:"districts,omitempty"`
	Departments []string `json:"departments,omitempty"`
	MinSeverity string   `json:"min_severity,omitempty"`
	States      []string `json:"states,omitempty"`
}

// request is a decoded, checked client frame.
type request struct {
	unsubscribe bool
	filter      filter
}

// filter is what a subscriber asked for, within its scope. Empty lists
// mean any.
type filter struct {
	alerts, cases bool
	districts     []string
	departments   []string
	minSeverity   cityhubv1.Severity
	// alertStates and caseStates are the states named in the filter, split
	// by the stream they belong to.
	alertStates, caseStates []string
}

// decodeFrame parses a client frame. Its errors are meant for the client:
// they name what is wrong with the frame.
func decodeFrame(b []byte) (request, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f clientFrame
	if err := dec.Decode(&f); err != nil {
		return request{}, fmt.Errorf("malformed frame: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return request{}, errors.New("malformed frame: data after the JSON object")
	}
	switch f.Type {
	case frameSubscribe:
	case frameUnsubscribe:
		if len(f.Streams) > 0 || f.Filter != nil {
			return request{}, errors.New("unsubscribe takes no streams or filter")
		}
		return request{unsubscribe: true}, nil
	case "":
		return request{}, errors.New(`missing "type" (want subscribe or unsubscribe)`)
	default:
		return request{}, fmt.Errorf("unknown type %q (want subscribe or unsubscribe)", clip(f.Type))
	}

	var r request
	if len(f.Streams) == 0 {
		return request{}, errors.New(`subscribe needs "streams": alerts, cases or both`)
	}
	for _, s := range f.Streams {
		switch s {
		case streamAlerts:
			r.filter.alerts = true
		case streamCases:
			r.filter.cases = true
		default:
			return request{}, fmt.Errorf("unknown stream %q (want alerts or cases)", clip(s))
		}
	}
	if f.Filter == nil {
		return r, nil
	}
	var err error
	if r.filter.districts, err = checkValues("districts", f.Filter.Districts); err != nil {
		return request{}, err
	}
	if r.filter.departments, err = checkValues("departments", f.Filter.Departments); err != nil {
		return request{}, err
	}
	states, err := checkValues("states", f.Filter.States)
	if err != nil {
		return request{}, err
	}
	for _, st := range states {
		switch {
		case alertStateName(st):
			r.filter.alertStates = append(r.filter.alertStates, st)
		case caseStateName(st):
			r.filter.caseStates = append(r.filter.caseStates, st)
		default:
			return request{}, fmt.Errorf("filter.states: unknown state %q (want firing, pending or resolved for alerts; new, dispatched, accepted, handled, closed or cancelled for cases)", clip(st))
		}
	}
	if f.Filter.MinSeverity != "" {
		if r.filter.minSeverity, err = cityhubv1.ParseSeverity(f.Filter.MinSeverity); err != nil {
			return request{}, fmt.Errorf("bad min_severity: unknown severity %q (want minor, moderate, severe or extreme)", clip(f.Filter.MinSeverity))
		}
	}
	return r, nil
}

func alertStateName(s string) bool {
	for _, st := range []cityhubv1.AlertState{cityhubv1.AlertState_ALERT_STATE_FIRING, cityhubv1.AlertState_ALERT_STATE_PENDING, cityhubv1.AlertState_ALERT_STATE_RESOLVED} {
		if st.Name() == s {
			return true
		}
	}
	return false
}

func caseStateName(s string) bool {
	_, err := cityhubv1.ParseCaseStatus(s)
	return err == nil
}

// checkValues bounds a filter list and drops its duplicates.
func checkValues(field string, vs []string) ([]string, error) {
	if len(vs) > maxFilterValues {
		return nil, fmt.Errorf("filter.%s: at most %d values", field, maxFilterValues)
	}
	var out []string
	for _, v := range vs {
		if v == "" || len(v) > maxFilterValue {
			return nil, fmt.Errorf("filter.%s: values must be 1 to %d bytes", field, maxFilterValue)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// jsonProblem describes a decoding error without echoing the frame.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return "want a JSON object"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "incomplete JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return clip(strings.TrimPrefix(err.Error(), "json: "))
	}
	return "invalid JSON"
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "an array"
	case "struct", "ptr":
		return "an object"
	}
	return "a " + k
}

// clip bounds client-supplied text echoed in an error frame.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// Server frames.

type snapshotFrame struct {
	Type   string            `json:"type"`
	Stream string            `json:"stream"`
	Items  []json.RawMessage `json:"items"`
}

type deltaFrame struct {
	Type    string          `json:"type"`
	Version int64           `json:"version"`
	Data    json.RawMessage `json:"data"`
}

// removedFrame tells a subscriber that an item it holds has moved out of
// its scope or filter at version Version: the client drops the item unless
// it already holds a newer version.
type removedFrame struct {
	Type    string `json:"type"`
	Stream  string `json:"stream"`
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

func encodeRemoved(stream, id string, version int64) []byte {
	b, _ := json.Marshal(removedFrame{Type: frameRemoved, Stream: stream, ID: id, Version: version}) // strings and numbers always encode
	return b
}

type messageFrame struct {
	Type    string `json:"type"`
	Message string `json:"message,omitempty"`
}

// resetFrame is sent, once, to a client that fell behind.
var resetFrame = messageJSON(frameReset, "")

func errorFrame(msg string) []byte { return messageJSON(frameError, msg) }

func messageJSON(typ, msg string) []byte {
	b, _ := json.Marshal(messageFrame{Type: typ, Message: msg}) // strings always encode
	return b
}
