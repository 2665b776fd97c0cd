package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// Topics and topic filters of the bridge.
const (
	// MeTopic is ThingsBoard's device topic. It does not say which device
	// published — a subscriber never sees the publisher's username — so
	// only the embedded broker, which knows the connection's device, takes
	// it: it passes the message on under DeviceTopic of that device.
	MeTopic = "v1/devices/me/telemetry"
	// GatewayMeTopic is ThingsBoard's gateway topic; like MeTopic it is
	// passed on by the embedded broker under GatewayTopic of the
	// connection's gateway.
	GatewayMeTopic = "v1/gateway/telemetry"
)

// DefaultFilters are the topic filters the bridge subscribes to.
var DefaultFilters = []string{"v1/devices/+/telemetry", "v1/gateway/+/telemetry"}

// DeviceTopic is the topic a device publishes its readings on when the
// broker, not the topic, has to vouch for who published (see package doc).
func DeviceTopic(id string) string { return "v1/devices/" + id + "/telemetry" }

// GatewayTopic is the topic a gateway publishes on.
func GatewayTopic(name string) string { return "v1/gateway/" + name + "/telemetry" }

// MinTimestamp is the earliest reading time taken, in milliseconds since
// 1970 (2000-01-01): an earlier one comes from a device whose clock was
// never set, or that counts in seconds.
const MinTimestamp = 946684800000

// MaxProblems bounds the problems one Mapping lists.
const MaxProblems = 16

// Mapping is what one MQTT message says, as events.
type Mapping struct {
	// Publisher is the device or gateway the topic names, "" when it names
	// none the registry knows.
	Publisher string
	// Events are the events of the readings that could be mapped, at most
	// events.MaxBatch, each with an id unique within the mapping.
	Events []*events.Input
	// Problems say what of the message could not be mapped. A message
	// with problems is dead-lettered whole, after its events (if any) are
	// bridged.
	Problems []string
}

// Map turns an MQTT message received at received into events.
//
// The topic names the publisher: v1/devices/{device}/telemetry or
// v1/gateway/{gateway}/telemetry. A device's payload is a reading
// ({"ts": ms, "values": {...}}, or the values alone) or an array of them;
// a gateway's is an object from device names (or ids) to a device's
// payload. Each
// reading becomes one event of the device's type, at the device's
// location, with the attributes its telemetry keys map to; a reading with
// none of them raises none. Its id is "{device}:{ts}", so that a
// redelivered message is the same event; a reading without ts is stamped
// with received and its id also carries received and a hash of the
// payload, which a redelivery does not keep. Readings of one device with
// one id are merged, later values winning.
//
// Map never fails: what cannot be mapped is listed in Problems, and every
// event is one that intake accepts (given a clock at received).
func (r *Registry) Map(topic string, payload []byte, received time.Time) Mapping {
	mp := mapper{reg: r, received: received, payload: payload}
	mp.topic(topic)
	return mp.m
}

type mapper struct {
	reg      *Registry
	received time.Time
	payload  []byte
	m        Mapping
	index    map[string]int // event id → index in m.Events
	full     bool           // MaxBatch events reached
	hash     string
}

func (mp *mapper) problem(format string, args ...any) {
	switch n := len(mp.m.Problems); {
	case n < MaxProblems-1:
		mp.m.Problems = append(mp.m.Problems, fmt.Sprintf(format, args...))
	case n == MaxProblems-1:
		mp.m.Problems = append(mp.m.Problems, "(and more problems)")
	}
}

func (mp *mapper) topic(topic string) {
	kind, name, ok := splitTopic(topic)
	if !ok {
		mp.problem("topic %q is not one the bridge maps: want v1/devices/{device}/telemetry or v1/gateway/{gateway}/telemetry", clip(topic))
		return
	}
	switch kind {
	case "devices":
		if name == reservedID {
			mp.problem("%s does not say which device published: on a broker other than the hub's own, devices publish to v1/devices/{device}/telemetry", MeTopic)
			return
		}
		d, ok := mp.reg.devices[name]
		if !ok {
			mp.problem("device %q is not in the registry", clip(name))
			return
		}
		mp.m.Publisher = d.ID
		if v, ok := mp.decode(); ok {
			mp.device(d, v, "")
		}
	case "gateway":
		g, ok := mp.reg.gateways[name]
		if !ok {
			mp.problem("gateway %q is not in the registry", clip(name))
			return
		}
		mp.m.Publisher = g.Name
		if v, ok := mp.decode(); ok {
			mp.gateway(g, v)
		}
	}
}

// splitTopic splits v1/{kind}/{name}/telemetry.
func splitTopic(topic string) (kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "v1/")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/telemetry")
	if !ok {
		return "", "", false
	}
	kind, name, ok = strings.Cut(rest, "/")
	if !ok || (kind != "devices" && kind != "gateway") || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return kind, name, true
}

// decode parses the payload as JSON.
func (mp *mapper) decode() (any, bool) {
	p := mp.payload
	switch {
	case len(bytes.TrimSpace(p)) == 0:
		mp.problem("empty payload: want JSON")
		return nil, false
	case !utf8.Valid(p):
		mp.problem("payload is not valid UTF-8")
		return nil, false
	}
	var v any
	if err := json.Unmarshal(p, &v); err != nil {
		mp.problem("payload is not JSON: %s", clip(strings.TrimPrefix(err.Error(), "json: ")))
		return nil, false
	}
	return v, true
}

func (mp *mapper) gateway(g *Gateway, v any) {
	obj, ok := v.(map[string]any)
	if !ok {
		mp.problem("a gateway's payload is an object from device names to their readings, got %s", jsonKind(v))
		return
	}
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		d, ok := mp.reg.names[name]
		if !ok {
			d, ok = mp.reg.devices[name]
		}
		switch {
		case !ok:
			mp.problem("device %q is not in the registry", clip(name))
			continue
		case !g.SpeaksFor(d.ID):
			mp.problem("gateway %s does not speak for device %s", g.Name, d.ID)
			continue
		}
		mp.device(d, obj[name], fmt.Sprintf("device %s: ", d.ID))
	}
}

// device maps v, one reading or an array of them, of d.
func (mp *mapper) device(d *Device, v any, where string) {
	switch x := v.(type) {
	case map[string]any:
		mp.reading(d, x, where+"reading")
	case []any:
		if len(x) == 0 {
			mp.problem("%sempty array: want readings", where)
		}
		for i, e := range x {
			if mp.full {
				return
			}
			obj, ok := e.(map[string]any)
			if !ok {
				mp.problem("%sreading %d: want an object, got %s", where, i, jsonKind(e))
				continue
			}
			mp.reading(d, obj, fmt.Sprintf("%sreading %d", where, i))
		}
	default:
		mp.problem("%swant a reading object or an array of them, got %s", where, jsonKind(v))
	}
}

// reading maps one reading of d: {"ts": ms, "values": {...}} or the
// values alone.
func (mp *mapper) reading(d *Device, obj map[string]any, where string) {
	values := obj
	var ts int64
	stamped := false
	if raw, ok := obj["ts"]; ok {
		vals, isObj := obj["values"].(map[string]any)
		switch {
		case !isObj:
			mp.problem("%s: a reading with ts carries its values in an object under values", where)
			return
		case len(obj) != 2:
			mp.problem("%s: a reading with ts carries only ts and values", where)
			return
		}
		t, msg := mp.timestamp(raw)
		if msg != "" {
			mp.problem("%s: %s", where, msg)
			return
		}
		values, ts, stamped = vals, t, true
	} else if _, ok := obj["values"]; ok {
		mp.problem("%s: values without ts: give ts, or send the values alone", where)
		return
	}

	attrs := make(map[string]any, len(d.Telemetry)+1)
	for _, key := range d.keys {
		raw, ok := values[key]
		if !ok || raw == nil {
			continue
		}
		t := d.Telemetry[key]
		v, msg := mp.value(t, raw)
		if msg != "" {
			mp.problem("%s: %q: %s", where, clip(key), msg)
			return
		}
		attrs[t.Attr] = v
	}
	if len(attrs) == 0 && len(d.Telemetry) > 0 {
		return // none of what the registry maps: a heartbeat, a battery level
	}
	if d.DeviceAttr != "" {
		attrs[d.DeviceAttr] = d.ID
	}
	if len(attrs) == 0 {
		attrs = nil
	}

	var id string
	at := mp.received
	if stamped {
		id = d.ID + ":" + strconv.FormatInt(ts, 10)
		at = time.UnixMilli(ts)
	} else {
		id = d.ID + ":" + strconv.FormatInt(at.UnixMilli(), 10) + ":" + mp.payloadHash()
	}
	if j, ok := mp.index[id]; ok {
		merged := mp.m.Events[j].Attrs
		if merged == nil {
			merged = attrs
		}
		for k, v := range attrs {
			merged[k] = v
		}
		mp.m.Events[j].Attrs = merged
		return
	}
	if len(mp.m.Events) == events.MaxBatch {
		mp.problem("more than %d readings in one message; the rest were not bridged", events.MaxBatch)
		mp.full = true
		return
	}
	if mp.index == nil {
		mp.index = make(map[string]int)
	}
	mp.index[id] = len(mp.m.Events)
	loc := d.Location
	mp.m.Events = append(mp.m.Events, &events.Input{
		ID:         id,
		Source:     mp.reg.source,
		Type:       d.Type,
		OccurredAt: at.UTC().Format(time.RFC3339Nano),
		Location:   &loc,
		Attrs:      attrs,
	})
}

// timestamp reads ts, milliseconds since 1970, or says what is wrong.
func (mp *mapper) timestamp(raw any) (int64, string) {
	f, ok := raw.(float64)
	if !ok {
		return 0, fmt.Sprintf("ts: want milliseconds since 1970, got %s", jsonKind(raw))
	}
	switch {
	case f != math.Trunc(f):
		return 0, fmt.Sprintf("ts %v: want whole milliseconds since 1970", f)
	case f < MinTimestamp:
		return 0, fmt.Sprintf("ts %.0f is before 2000-01-01: want milliseconds since 1970 (is the device's clock set?)", f)
	case f > float64(mp.received.Add(events.MaxFuture).UnixMilli()):
		return 0, fmt.Sprintf("ts %.0f is more than %s ahead of the hub's clock", f, events.MaxFuture)
	}
	return int64(f), ""
}

// value converts a telemetry value to the type of its attribute.
func (mp *mapper) value(t Telemetry, raw any) (any, string) {
	switch t.Kind {
	case catalog.AttrNumber:
		n, ok := raw.(float64)
		if !ok {
			return nil, "want a number, got " + jsonKind(raw)
		}
		f := n * t.Scale
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Sprintf("%g scaled by %g is out of range", n, t.Scale)
		}
		return f, ""
	case catalog.AttrString:
		s, ok := raw.(string)
		switch {
		case !ok:
			return nil, "want a string, got " + jsonKind(raw)
		case len(s) > events.MaxAttrBytes:
			return nil, fmt.Sprintf("%d bytes, at most %d", len(s), events.MaxAttrBytes)
		case strings.ContainsRune(s, utf8.RuneError) && !mp.spellsReplacement():
			// encoding/json turns a lone surrogate escape into U+FFFD
			// without a word; intake refuses such text as it was sent.
			return nil, "a \\u escape that is not a character"
		}
		return s, ""
	case catalog.AttrBool:
		b, ok := raw.(bool)
		if !ok {
			return nil, "want true or false, got " + jsonKind(raw)
		}
		return b, ""
	}
	return nil, "the catalog's type " + string(t.Kind) + " is not one the bridge maps"
}

// spellsReplacement reports whether the payload itself writes U+FFFD, so
// that a decoded U+FFFD may be what the device meant.
func (mp *mapper) spellsReplacement() bool {
	p := mp.payload
	return bytes.Contains(p, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(p), []byte(`\ufffd`))
}

// payloadHash tells apart readings without ts that arrive in one
// millisecond.
func (mp *mapper) payloadHash() string {
	if mp.hash == "" {
		h := fnv.New32a()
		h.Write(mp.payload)
		mp.hash = fmt.Sprintf("%08x", h.Sum32())
	}
	return mp.hash
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
