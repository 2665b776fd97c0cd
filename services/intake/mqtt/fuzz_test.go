package mqtt_test

import (
	"reflect"
	"testing"

	"github.com/cityhub/cityhub/services/intake/mqtt"
)

// FuzzMap holds the mapping to its contract on any topic and payload: it
// never panics, it is deterministic, its bounds hold, ids are unique, and
// every event it makes is one intake accepts. The seeds in
// testdata/fuzz/FuzzMap run with every go test.
func FuzzMap(f *testing.F) {
	for _, s := range []struct{ topic, payload string }{
		{"v1/devices/wl-1/telemetry", `{"ts": 1782894500000, "values": {"depth": 31, "rain": 12.5}}`},
		{"v1/devices/wl-1/telemetry", `{"depth": 31}`},
		{"v1/devices/wl-1/telemetry", `[{"ts": 1782894500000, "values": {"depth": 1}}, {"ts": 1782894500000, "values": {"rain": 2}}]`},
		{"v1/devices/gas-1/telemetry", `{"lel": 30, "indoor": true, "sensor": "s-1"}`},
		{"v1/devices/button-1/telemetry", `{}`},
		{"v1/gateway/gw-1/telemetry", `{"Device A": [{"ts": 1782894500000, "values": {"level_mm": 412}}], "button-1": [{"ts": 1782894500000, "values": {}}]}`},
		{"v1/gateway/gw-1/telemetry", `{"wl-1": [{"ts": 1, "values": {}}], "ghost": null}`},
		{mqtt.MeTopic, `{"depth": 1}`},
		{"v1/devices/wl-1/telemetry", `{"depth": 1e308}`},
		{"v1/devices/gas-1/telemetry", `{"sensor": "\ud800\udc00 \ud800"}`},
	} {
		f.Add(s.topic, []byte(s.payload))
	}
	r := testRegistry(f)
	dec := decoder(f)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		m := r.Map(topic, payload, received)
		if again := r.Map(topic, payload, received); !reflect.DeepEqual(m, again) {
			t.Fatalf("two mappings of one message differ:\n%+v\n%+v", m, again)
		}
		if len(m.Problems) > mqtt.MaxProblems {
			t.Errorf("%d problems", len(m.Problems))
		}
		if len(m.Events) == 0 {
			return
		}
		seen := map[string]bool{}
		for _, ev := range m.Events {
			if seen[ev.ID] {
				t.Errorf("id %s twice", ev.ID)
			}
			seen[ev.ID] = true
		}
		if _, err := dec.DecodeInputs(m.Events); err != nil {
			t.Errorf("intake refuses what Map made of %q %q: %v", topic, payload, err)
		}
	})
}
