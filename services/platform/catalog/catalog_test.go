package catalog

import (
	"strings"
	"testing"
)

const good = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
departments:
  - {code: water-affairs, name: 水务局}
event_types:
  - code: waterlogging
    name: 道路积水
    owner: water-affairs
    attrs: {water_depth_cm: number, camera_id: string}
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	et, ok := c.EventType("waterlogging")
	if !ok || et.Attrs["water_depth_cm"] != AttrNumber {
		t.Errorf("waterlogging = %+v, %v", et, ok)
	}
	if _, ok := c.District("xuhui"); !ok {
		t.Error("xuhui missing")
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", good + "colour: red\n", "field colour not found"},
		{"unknown owner", strings.Replace(good, "owner: water-affairs", "owner: nobody", 1), `owner "nobody"`},
		{"bad attr type", strings.Replace(good, "water_depth_cm: number", "water_depth_cm: float", 1), `type "float"`},
		{"bad code", strings.Replace(good, "code: xuhui", "code: Xu Hui", 1), `code "Xu Hui"`},
		{"empty", "{}", "no districts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
