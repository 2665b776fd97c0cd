package cap_test

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	capxml "github.com/cityhub/cityhub/services/intake/cap"
	"github.com/cityhub/cityhub/services/platform/events"
)

var eventIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// base is a valid message with one info block, to vary.
func base() *capxml.Alert {
	return &capxml.Alert{
		Identifier: "T-1", Sender: "shmb", Sent: time.Date(2026, 7, 12, 14, 0, 0, 0, time.FixedZone("", 8*3600)),
		Status: "Actual", MsgType: "Alert", Scope: "Public",
		Infos: []capxml.Info{{
			Categories: []string{"Met"}, Event: "暴雨蓝色预警", Urgency: "Expected", Severity: "Minor", Certainty: "Likely",
			Headline: "暴雨蓝色预警",
		}},
	}
}

func area(desc string, f func(*capxml.Area)) []capxml.Area {
	a := capxml.Area{Desc: desc}
	f(&a)
	return []capxml.Area{a}
}

func geocode(v string) func(*capxml.Area) {
	return func(a *capxml.Area) { a.Geocodes = []capxml.Value{{Name: "GB2260", Value: v}} }
}

// square returns a closed square polygon of side 2d around (lat, lon).
func square(lat, lon, d float64) capxml.Polygon {
	return capxml.Polygon{{Lat: lat - d, Lon: lon - d}, {Lat: lat - d, Lon: lon + d}, {Lat: lat + d, Lon: lon + d}, {Lat: lat + d, Lon: lon - d}, {Lat: lat - d, Lon: lon - d}}
}

// placed is an event as the tests compare it.
type placed struct {
	id, district string
	lonlat       bool
}

func TestTranslate(t *testing.T) {
	cat := testCatalog(t)
	cfg := testConfig(t, cat)
	parsed := func(file string) func() *capxml.Alert {
		return func() *capxml.Alert {
			a, err := capxml.Parse(read(t, "testdata/"+file))
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	for _, tc := range []struct {
		name    string
		alert   func() *capxml.Alert
		want    []placed
		skipped []string
		check   func(t *testing.T, in []*events.Input)
	}{
		{
			name:  "geocode names the district",
			alert: parsed("rainstorm.good.xml"),
			want:  []placed{{"shmb-warning-centre:SHMB-2026-0712-0031:0.0:xuhui", "xuhui", false}},
			check: func(t *testing.T, in []*events.Input) {
				e := in[0]
				if e.Type != "rainfall" || e.Source != "weather" || e.Severity != "moderate" {
					t.Errorf("type %s source %s severity %s", e.Type, e.Source, e.Severity)
				}
				// The onset is 55 minutes after sent, too far ahead for
				// intake: the effective time stands in.
				if e.OccurredAt != "2026-07-12T14:05:00+08:00" {
					t.Errorf("occurred_at %s", e.OccurredAt)
				}
				if !strings.HasPrefix(e.Text, "徐汇区气象台发布暴雨黄色预警\n预计未来6小时") || e.Location.Address != "上海市徐汇区" {
					t.Errorf("text %q address %q", e.Text, e.Location.Address)
				}
				want := map[string]any{
					"cap_identifier": "SHMB-2026-0712-0031", "cap_sender": "shmb-warning-centre", "cap_sent": "2026-07-12T14:05:00+08:00",
					"cap_msg_type": "Alert", "cap_status": "Actual", "cap_event": "暴雨黄色预警", "cap_urgency": "Expected",
					"cap_severity": "Moderate", "cap_certainty": "Likely", "cap_onset": "2026-07-12T15:00:00+08:00",
					"cap_expires": "2026-07-12T23:00:00+08:00", "cap_area": "上海市徐汇区", "rain_mm_h": 55.5,
				}
				if !reflect.DeepEqual(e.Attrs, want) {
					t.Errorf("attrs\n%v\nwant\n%v", e.Attrs, want)
				}
			},
		},
		{
			name:  "polygons cover district centres; a circle far out at sea is no district's",
			alert: parsed("typhoon-update.good.xml"),
			want: []placed{
				{"shmb-warning-centre:SHMB-2026-0915-0007:0.0:huangpu", "huangpu", true},
				{"shmb-warning-centre:SHMB-2026-0915-0007:1.0:huangpu", "huangpu", true},
			},
			skipped: []string{"alert/info[0]/area[1]"},
			check: func(t *testing.T, in []*events.Input) {
				for _, e := range in {
					if e.Attrs["cap_msg_type"] != "Update" || e.Attrs["cap_references"] != "shmb-warning-centre,SHMB-2026-0914-0042,2026-09-14T18:00:00+08:00" {
						t.Errorf("attrs %v", e.Attrs)
					}
					if *e.Location.Lon != 121.4903 || *e.Location.Lat != 31.2222 {
						t.Errorf("a covered district's event is at its centre, got %v,%v", *e.Location.Lat, *e.Location.Lon)
					}
				}
			},
		},
		{
			name:  "a cancel is an event the rules see as one",
			alert: parsed("cancel.good.xml"),
			want:  []placed{{"shmb-warning-centre:SHMB-2026-0712-0044:0.0:xuhui", "xuhui", false}},
			check: func(t *testing.T, in []*events.Input) {
				if in[0].Attrs["cap_msg_type"] != "Cancel" || in[0].Attrs["cap_references"] == nil || in[0].Severity != "minor" {
					t.Errorf("attrs %v severity %s", in[0].Attrs, in[0].Severity)
				}
			},
		},
		{name: "an exercise is no event", alert: parsed("restricted.good.xml"), skipped: []string{"alert/status"}},
		{name: "an acknowledgement is no event", alert: parsed("ack.good.xml"), skipped: []string{"alert/msgType"}},
		{
			name: "the city's code stands for every district",
			alert: func() *capxml.Alert {
				a := base()
				a.Infos[0].Areas = area("全市", geocode("310000"))
				return a
			},
			want: []placed{{"shmb:T-1:0.0:huangpu", "huangpu", false}, {"shmb:T-1:0.0:xuhui", "xuhui", false}, {"shmb:T-1:0.0:minhang", "minhang", false}, {"shmb:T-1:0.0:pudong", "pudong", false}},
		},
		{
			name: "a small polygon between centres belongs to the nearest",
			alert: func() *capxml.Alert {
				a := base()
				a.Infos[0].Areas = area("漕河泾", func(ar *capxml.Area) { ar.Polygons = []capxml.Polygon{square(31.17, 121.40, 0.005)} })
				return a
			},
			want: []placed{{"shmb:T-1:0.0:xuhui", "xuhui", true}},
			check: func(t *testing.T, in []*events.Input) {
				if lat, lon := *in[0].Location.Lat, *in[0].Location.Lon; abs(lat-31.17) > 1e-9 || abs(lon-121.40) > 1e-9 {
					t.Errorf("located at %v,%v, want the polygon's centre", lat, lon)
				}
			},
		},
		{
			name: "a geocode cap.yaml does not map and no shape: skipped",
			alert: func() *capxml.Alert {
				a := base()
				a.Infos[0].Areas = area("北京市", geocode("110000"))
				return a
			},
			skipped: []string{"alert/info[0]/area[0]"},
		},
		{
			name: "no area and no default districts: skipped",
			alert: func() *capxml.Alert {
				return base()
			},
			skipped: []string{"alert/info[0]"},
		},
		{
			name: "a warning no rule maps: skipped, the others kept",
			alert: func() *capxml.Alert {
				a := base()
				a.Infos[0].Areas = area("徐汇", geocode("310104"))
				heat := a.Infos[0]
				heat.Event = "高温橙色预警"
				a.Infos = append(a.Infos, heat)
				return a
			},
			want:    []placed{{"shmb:T-1:0.0:xuhui", "xuhui", false}},
			skipped: []string{"alert/info[1]"},
		},
		{
			name: "event code rule; parameters converted to the catalog's types; a sender with its own source",
			alert: func() *capxml.Alert {
				a := base()
				a.Sender = "emb-duty-office"
				a.Infos[0].Event = "城市内涝"
				a.Infos[0].EventCodes = []capxml.Value{{Name: "warning_code", Value: "1101"}}
				a.Infos[0].Parameters = []capxml.Value{{Name: "indoor", Value: "false"}, {Name: "depth", Value: "deep"}}
				a.Infos[0].Areas = area("浦东", geocode("310115"))
				return a
			},
			want:    []placed{{"emb-duty-office:T-1:0.0:pudong", "pudong", false}},
			skipped: []string{"alert/info[0]/parameter[1]"},
			check: func(t *testing.T, in []*events.Input) {
				e := in[0]
				if e.Type != "waterlogging" || e.Source != "emergency" || e.Attrs["indoor"] != false || e.Attrs["water_depth_cm"] != nil {
					t.Errorf("type %s source %s attrs %v", e.Type, e.Source, e.Attrs)
				}
			},
		},
		{
			name: "a sender with characters ids cannot hold: a hashed id",
			alert: func() *capxml.Alert {
				a := base()
				a.Sender = "warning@shmb.example"
				a.Identifier = strings.Repeat("长", 40)
				a.Infos[0].Areas = area("徐汇", geocode("310104"))
				return a
			},
			check: func(t *testing.T, in []*events.Input) {
				if len(in) != 1 || !strings.HasPrefix(in[0].ID, "cap-") || !strings.HasSuffix(in[0].ID, ":0.0:xuhui") {
					t.Errorf("ids %v", ids(in))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.alert()
			now := a.Sent
			tr := cfg.Translate(a, cat, now)
			if tc.want != nil {
				var got []placed
				for _, e := range tr.Inputs {
					got = append(got, placed{e.ID, e.Location.District, e.Location.Lon != nil})
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("events\n%v\nwant\n%v", got, tc.want)
				}
			}
			var skipped []string
			for _, s := range tr.Skipped {
				skipped = append(skipped, s.Path)
				if s.Message == "" {
					t.Errorf("%s skipped without a reason", s.Path)
				}
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped %v, want %v", tr.Skipped, tc.skipped)
			}
			if len(tr.Paths) != len(tr.Inputs) {
				t.Fatalf("%d paths for %d inputs", len(tr.Paths), len(tr.Inputs))
			}
			for _, e := range tr.Inputs {
				if !eventIDRE.MatchString(e.ID) {
					t.Errorf("id %q does not fit intake's ids", e.ID)
				}
			}
			// What the adapter makes, intake takes.
			if len(tr.Inputs) > 0 {
				dec := &events.Decoder{Catalog: cat, Now: func() time.Time { return now }}
				if _, err := dec.DecodeInputs(tr.Inputs); err != nil {
					t.Errorf("intake refuses the events: %v", err)
				}
			}
			// The same document is the same events.
			if again := cfg.Translate(tc.alert(), cat, now); !reflect.DeepEqual(ids(again.Inputs), ids(tr.Inputs)) {
				t.Errorf("ids changed: %v then %v", ids(tr.Inputs), ids(again.Inputs))
			}
			if tc.check != nil && len(tr.Inputs) > 0 {
				tc.check(t, tr.Inputs)
			} else if tc.check != nil {
				t.Errorf("no events to check; skipped %v", tr.Skipped)
			}
		})
	}
}

// Long texts are cut to what intake accepts, on a character boundary.
func TestTranslateBounds(t *testing.T) {
	cat := testCatalog(t)
	cfg := testConfig(t, cat)
	a := base()
	a.Infos[0].Description = strings.Repeat("暴", events.MaxTextBytes)
	a.Infos[0].Areas = area(strings.Repeat("区", 1000), geocode("310104"))
	for i := range 200 {
		a.References = append(a.References, capxml.Reference{Sender: "shmb", Identifier: fmt.Sprintf("T-%03d", i), Sent: a.Sent})
	}
	tr := cfg.Translate(a, cat, a.Sent)
	if len(tr.Inputs) != 1 {
		t.Fatalf("skipped %v", tr.Skipped)
	}
	dec := &events.Decoder{Catalog: cat, Now: func() time.Time { return a.Sent }}
	if _, err := dec.DecodeInputs(tr.Inputs); err != nil {
		t.Fatal(err)
	}
	refs := tr.Inputs[0].Attrs["cap_references"].(string)
	if !strings.HasSuffix(refs, "shmb,T-199,2026-07-12T14:00:00+08:00") || strings.Contains(refs, "T-000,") {
		t.Errorf("references keep the latest that fit: %q", refs)
	}
}

func ids(in []*events.Input) []string {
	out := make([]string, len(in))
	for i, e := range in {
		out[i] = e.ID
	}
	return out
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
