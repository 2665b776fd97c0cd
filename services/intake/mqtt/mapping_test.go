package mqtt_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/platform/events"
)

func testRegistry(t testing.TB) *mqtt.Registry {
	t.Helper()
	r, err := mqtt.LoadRegistry("testdata/registry/mapping.good.yaml", testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// received is when the tests' messages arrive: 2026-07-01T08:30:00Z.
var received = time.UnixMilli(1782894600000).UTC()

func TestMap(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	type ev struct {
		ID, At string
		Attrs  map[string]any
	}
	for _, tc := range []struct {
		name, topic, payload string
		publisher            string
		want                 []ev
		problems             []string // each a part of a problem, in order
	}{
		{
			name: "a ThingsBoard reading", topic: "v1/devices/wl-1/telemetry",
			payload:   `{"ts": 1782894500000, "values": {"depth": 31, "rain": 12.5, "battery": 80}}`,
			publisher: "wl-1",
			want:      []ev{{"wl-1:1782894500000", "2026-07-01T08:28:20Z", map[string]any{"water_depth_cm": 31.0, "rain_mm_h": 12.5, "sensor_id": "wl-1"}}},
		},
		{
			name: "values alone are stamped with the receive time", topic: "v1/devices/wl-1/telemetry",
			payload:   `{"depth": 5}`,
			publisher: "wl-1",
			want:      []ev{{"wl-1:1782894600000:", "2026-07-01T08:30:00Z", map[string]any{"water_depth_cm": 5.0, "sensor_id": "wl-1"}}},
		},
		{
			name: "an array; one ts twice is one event, later values winning", topic: "v1/devices/wl-1/telemetry",
			payload: `[{"ts": 1782894500000, "values": {"depth": 31}}, {"ts": 1782894510000, "values": {"depth": 32}},
			           {"ts": 1782894500000, "values": {"depth": 33, "rain": 1}}]`,
			publisher: "wl-1",
			want: []ev{
				{"wl-1:1782894500000", "2026-07-01T08:28:20Z", map[string]any{"water_depth_cm": 33.0, "rain_mm_h": 1.0, "sensor_id": "wl-1"}},
				{"wl-1:1782894510000", "2026-07-01T08:28:30Z", map[string]any{"water_depth_cm": 32.0, "sensor_id": "wl-1"}},
			},
		},
		{
			name: "a heartbeat raises nothing", topic: "v1/devices/wl-1/telemetry",
			payload: `{"ts": 1782894500000, "values": {"battery": 80}}`, publisher: "wl-1",
		},
		{
			name: "a device without telemetry keys raises an event per reading", topic: "v1/devices/button-1/telemetry",
			payload: `{"ts": 1782894500000, "values": {"pressed": true}}`, publisher: "button-1",
			want: []ev{{"button-1:1782894500000", "2026-07-01T08:28:20Z", nil}},
		},
		{
			name: "a gateway speaks for its devices by name, scaled", topic: "v1/gateway/gw-1/telemetry",
			payload:   `{"Device A": [{"ts": 1782894500000, "values": {"level_mm": 412}}], "button-1": {"ts": 1782894500001, "values": {}}}`,
			publisher: "gw-1",
			want: []ev{ // in the order of the names
				{"wl-2:1782894500000", "2026-07-01T08:28:20Z", map[string]any{"water_depth_cm": 41.2}},
				{"button-1:1782894500001", "2026-07-01T08:28:20.001Z", nil},
			},
		},
		{
			name: "a gateway's good devices pass, the others are problems", topic: "v1/gateway/gw-1/telemetry",
			payload:   `{"Device A": [{"ts": 1782894500000, "values": {"level_mm": 100}}], "wl-1": [{"ts": 1782894500000, "values": {"depth": 1}}], "ghost": []}`,
			publisher: "gw-1",
			want:      []ev{{"wl-2:1782894500000", "2026-07-01T08:28:20Z", map[string]any{"water_depth_cm": 10.0}}},
			problems:  []string{`device "ghost" is not in the registry`, "gateway gw-1 does not speak for device wl-1"},
		},
		{
			name: "types are checked per reading", topic: "v1/devices/gas-1/telemetry",
			payload: `[{"ts": 1782894500000, "values": {"lel": "high"}}, {"ts": 1782894501000, "values": {"lel": 30, "indoor": true, "sensor": "s-9"}},
			           {"ts": 1782894502000, "values": {"indoor": 1}}, {"ts": 1782894503000, "values": {"sensor": 7}}]`,
			publisher: "gas-1",
			want:      []ev{{"gas-1:1782894501000", "2026-07-01T08:28:21Z", map[string]any{"lel_percent": 30.0, "indoor": true, "sensor_id": "s-9"}}},
			problems:  []string{`reading 0: "lel": want a number, got a string`, `reading 2: "indoor": want true or false, got a number`, `reading 3: "sensor": want a string, got a number`},
		},
		{
			name: "times are checked", topic: "v1/devices/wl-1/telemetry",
			payload:   `[{"ts": 1700000000, "values": {"depth": 1}}, {"ts": 1782895300000, "values": {"depth": 1}}, {"ts": 1782894500000.5, "values": {"depth": 1}}, {"ts": "now", "values": {"depth": 1}}, {"values": {"depth": 1}}, {"ts": 1782894500000, "values": {"depth": 1}, "x": 1}]`,
			publisher: "wl-1",
			problems: []string{
				"reading 0: ts 1700000000 is before 2000-01-01",
				"reading 1: ts 1782895300000 is more than 10m0s ahead",
				"reading 2: ts 1.7828945000005e+12: want whole milliseconds",
				"reading 3: ts: want milliseconds since 1970, got a string",
				"reading 4: values without ts",
				"reading 5: a reading with ts carries only ts and values",
			},
		},
		{name: "me says nobody", topic: mqtt.MeTopic, payload: `{"depth": 1}`, problems: []string{"does not say which device published"}},
		{name: "an unknown device", topic: "v1/devices/ghost/telemetry", payload: `{"depth": 1}`, problems: []string{`device "ghost" is not in the registry`}},
		{name: "an unknown gateway", topic: "v1/gateway/ghost/telemetry", payload: `{}`, problems: []string{`gateway "ghost" is not in the registry`}},
		{name: "another topic", topic: "v1/devices/wl-1/attributes", payload: `{}`, problems: []string{"is not one the bridge maps"}},
		{name: "not JSON", topic: "v1/devices/wl-1/telemetry", payload: `depth=3`, publisher: "wl-1", problems: []string{"payload is not JSON"}},
		{name: "two values", topic: "v1/devices/wl-1/telemetry", payload: `{} {}`, publisher: "wl-1", problems: []string{"payload is not JSON: invalid character '{' after top-level value"}},
		{name: "empty", topic: "v1/devices/wl-1/telemetry", payload: ` `, publisher: "wl-1", problems: []string{"empty payload"}},
		{name: "not UTF-8", topic: "v1/devices/gas-1/telemetry", payload: "{\"sensor\": \"\xff\"}", publisher: "gas-1", problems: []string{"not valid UTF-8"}},
		{name: "a lone surrogate", topic: "v1/devices/gas-1/telemetry", payload: `{"sensor": "\ud800"}`, publisher: "gas-1", problems: []string{`"sensor": a \u escape that is not a character`}},
		{name: "a number", topic: "v1/devices/wl-1/telemetry", payload: `42`, publisher: "wl-1", problems: []string{"want a reading object or an array of them, got a number"}},
		{name: "a huge number", topic: "v1/devices/wl-1/telemetry", payload: `{"depth": 1e400}`, publisher: "wl-1", problems: []string{"payload is not JSON: cannot unmarshal number 1e400"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := r.Map(tc.topic, []byte(tc.payload), received)
			if m.Publisher != tc.publisher {
				t.Errorf("publisher %q, want %q", m.Publisher, tc.publisher)
			}
			var got []ev
			for _, e := range m.Events {
				got = append(got, ev{e.ID, e.OccurredAt, e.Attrs})
				if e.Source != "iot" || e.Location == nil || e.Location.District == "" {
					t.Errorf("event %s: source %q, location %+v", e.ID, e.Source, e.Location)
				}
			}
			for i := range got {
				if i < len(tc.want) && strings.HasSuffix(tc.want[i].ID, ":") && strings.HasPrefix(got[i].ID, tc.want[i].ID) {
					got[i].ID = tc.want[i].ID // the payload's hash follows
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tc.want)
				t.Errorf("events\n%s\nwant\n%s", g, w)
			}
			if len(m.Problems) != len(tc.problems) {
				t.Fatalf("problems %q, want %d like %q", m.Problems, len(tc.problems), tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.Contains(m.Problems[i], p) {
					t.Errorf("problem %d: %q, want it to say %q", i, m.Problems[i], p)
				}
			}
			// Whatever Map makes, intake takes.
			if len(m.Events) > 0 {
				if _, err := decoder(t).DecodeInputs(m.Events); err != nil {
					t.Errorf("intake refuses the events: %v", err)
				}
			}
		})
	}
}

// A redelivered message is the same events, ids and all; a reading
// without ts is not.
func TestMapIsDeterministic(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	stamped := []byte(`{"Device A": [{"ts": 1782894500000, "values": {"level_mm": 412}}], "button-1": [{"ts": 1782894500000, "values": {}}]}`)
	a := r.Map("v1/gateway/gw-1/telemetry", stamped, received)
	b := r.Map("v1/gateway/gw-1/telemetry", stamped, received.Add(time.Hour))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the same message later maps differently:\n%+v\n%+v", a, b)
	}
	bare := []byte(`{"depth": 3}`)
	c := r.Map("v1/devices/wl-1/telemetry", bare, received)
	d := r.Map("v1/devices/wl-1/telemetry", bare, received.Add(time.Second))
	if c.Events[0].ID == d.Events[0].ID {
		t.Errorf("readings without ts received apart share id %s", c.Events[0].ID)
	}
	other := r.Map("v1/devices/wl-1/telemetry", []byte(`{"depth": 4}`), received)
	if c.Events[0].ID == other.Events[0].ID {
		t.Errorf("two readings without ts in one millisecond share id %s", c.Events[0].ID)
	}
}

func TestMapBounds(t *testing.T) {
	t.Parallel()
	r := testRegistry(t)
	var sb strings.Builder
	sb.WriteString("[")
	for i := range events.MaxBatch + 5 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"ts": ` + strconv.FormatInt(1782894500000+int64(i), 10) + `, "values": {"depth": 1}}`)
	}
	sb.WriteString("]")
	m := r.Map("v1/devices/wl-1/telemetry", []byte(sb.String()), received)
	if len(m.Events) != events.MaxBatch || len(m.Problems) != 1 || !strings.Contains(m.Problems[0], "more than 1000 readings") {
		t.Errorf("%d events, problems %q", len(m.Events), m.Problems)
	}
	sb.Reset()
	sb.WriteString("[")
	for i := range 40 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"ts": "x", "values": {}}`)
	}
	sb.WriteString("]")
	m = r.Map("v1/devices/wl-1/telemetry", []byte(sb.String()), received)
	if len(m.Problems) != mqtt.MaxProblems || m.Problems[mqtt.MaxProblems-1] != "(and more problems)" {
		t.Errorf("%d problems: %q", len(m.Problems), m.Problems)
	}
}

// decoder validates events as intake does, its clock at received.
func decoder(t testing.TB) *events.Decoder {
	return &events.Decoder{Catalog: testCatalog(t), Now: func() time.Time { return received }}
}
