package events

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

const testCatalog = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
departments:
  - {code: water-affairs, name: 水务局}
event_types:
  - {code: waterlogging, name: 道路积水, owner: water-affairs, attrs: {water_depth_cm: number, camera_id: string}}
`

func testDecoder(t testing.TB) *Decoder {
	t.Helper()
	c, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	return &Decoder{Catalog: c, Now: func() time.Time { return now }}
}

const good = `{"id":"hl-1","source":"hotline","type":"waterlogging","occurred_at":"2026-07-01T08:30:00+08:00",
 "location":{"lon":121.43,"lat":31.18,"district":"xuhui","street":"tianping"},"severity":"severe",
 "text":"路口积水没过脚踝","attrs":{"water_depth_cm":35,"camera_id":"c-17"}}`

func TestDecodeGood(t *testing.T) {
	d := testDecoder(t)
	evs, err := d.DecodeBody([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	ev := evs[0]
	if ev.Id != "hl-1" || ev.Location.District != "xuhui" || ev.Severity.Name() != "severe" {
		t.Errorf("event = %v", ev)
	}
	if got := ev.Attrs.Fields["water_depth_cm"].GetNumberValue(); got != 35 {
		t.Errorf("water_depth_cm = %v", got)
	}
	if ev.ReceivedAt == nil || ev.OccurredAt.AsTime().Hour() != 0 {
		t.Errorf("times: occurred %v received %v", ev.OccurredAt, ev.ReceivedAt)
	}

	// An array, and an event with no id gets one.
	noID := strings.Replace(good, `"id":"hl-1",`, "", 1)
	evs, err = d.DecodeBody([]byte("[" + good + "," + noID + "]"))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Id == "" || evs[1].Id == evs[0].Id {
		t.Errorf("ids %q %q", evs[0].Id, evs[1].Id)
	}
}

func TestDecodeBadFieldsNamed(t *testing.T) {
	d := testDecoder(t)
	for _, tc := range []struct {
		name, body, field, msg string
	}{
		{"unknown field", strings.Replace(good, `"text"`, `"txet"`, 1), "txet", "unknown field"},
		{"no source", strings.Replace(good, `"source":"hotline",`, "", 1), "source", "required"},
		{"bad source", strings.Replace(good, `"hotline"`, `"Hot Line"`, 1), "source", "lower-case"},
		{"unknown type", strings.Replace(good, `"type":"waterlogging"`, `"type":"alien_landing"`, 1), "type", "not an event type"},
		{"bad time", strings.Replace(good, `2026-07-01T08:30:00+08:00`, `yesterday`, 1), "occurred_at", "RFC 3339"},
		{"future", strings.Replace(good, `2026-07-01T08:30:00+08:00`, `2026-07-02T08:30:00Z`, 1), "occurred_at", "future"},
		{"unknown district", strings.Replace(good, `"xuhui"`, `"atlantis"`, 1), "location.district", "not a district"},
		{"lat without lon", strings.Replace(good, `"lon":121.43,`, "", 1), "location", "together"},
		{"lat range", strings.Replace(good, `"lat":31.18`, `"lat":91`, 1), "location.lat", "outside"},
		{"severity", strings.Replace(good, `"severe"`, `"apocalyptic"`, 1), "severity", "unknown severity"},
		{"bad id", strings.Replace(good, `"hl-1"`, `"hl 1"`, 1), "id", "want 1 to 128"},
		{"attr type", strings.Replace(good, `"water_depth_cm":35`, `"water_depth_cm":"deep"`, 1), "attrs.water_depth_cm", "declares number"},
		{"nested attr", strings.Replace(good, `"camera_id":"c-17"`, `"camera_id":{"a":1}`, 1), "attrs.camera_id", "want a number"},
		{"wrong json type", strings.Replace(good, `"source":"hotline"`, `"source":7`, 1), "source", "want string"},
		{"long text", strings.Replace(good, `路口积水没过脚踝`, strings.Repeat("x", MaxTextBytes+1), 1), "text", "at most"},
		{"no location", strings.Replace(good, `"location":{"lon":121.43,"lat":31.18,"district":"xuhui","street":"tianping"},`, "", 1), "location", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.DecodeBody([]byte(tc.body))
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("DecodeBody error = %v, want a *BatchError", err)
			}
			for _, fe := range be.Items[0].Errors {
				if fe.Field == tc.field && strings.Contains(fe.Message, tc.msg) {
					return
				}
			}
			t.Errorf("errors %+v do not name %s with %q", be.Items[0].Errors, tc.field, tc.msg)
		})
	}
}

func TestDecodeBatchIsAllOrNothing(t *testing.T) {
	d := testDecoder(t)
	badOne := strings.Replace(good, `"xuhui"`, `"atlantis"`, 1)
	good2 := strings.Replace(good, `"hl-1"`, `"hl-2"`, 1)
	_, err := d.DecodeBody([]byte("[" + good + "," + badOne + "," + good2 + "," + badOne + "]"))
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("error = %v", err)
	}
	if len(be.Items) != 2 || be.Items[0].Index != 1 || be.Items[1].Index != 3 {
		t.Errorf("items = %+v, want indexes 1 and 3", be.Items)
	}
}

func TestDecodeMalformed(t *testing.T) {
	d := testDecoder(t)
	many := "[" + strings.Repeat(good+",", MaxBatch) + good + "]"
	for name, body := range map[string]string{
		"empty":     "",
		"array":     "[]",
		"scalar":    "42",
		"truncated": "[" + good,
		"too many":  many,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := d.DecodeBody([]byte(body)); !errors.Is(err, ErrMalformed) {
				t.Errorf("error = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeInvalidUnicodeNamed(t *testing.T) {
	d := testDecoder(t)
	for _, tc := range []struct {
		name, body, field string
	}{
		{"text", strings.Replace(good, `路口积水`, "路口\xff积水", 1), "text"},
		{"street", strings.Replace(good, `"tianping"`, "\"tian\xc3ping\"", 1), "location.street"},
		{"attribute", strings.Replace(good, `"c-17"`, "\"c-\xed\xa0\x80\"", 1), "attrs.camera_id"},
		{"lone surrogate escape", strings.Replace(good, `路口积水`, `路口\ud800积水`, 1), "text"},
		{"reversed surrogate pair", strings.Replace(good, `"tianping"`, `"\udc00\ud800"`, 1), "location.street"},
		{"attribute name", strings.Replace(good, `"camera_id"`, "\"camera\xff\"", 1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.DecodeBody([]byte(tc.body))
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("DecodeBody error = %v, want a *BatchError", err)
			}
			for _, fe := range be.Items[0].Errors {
				if fe.Field == tc.field && strings.Contains(fe.Message, "UTF-8") {
					return
				}
			}
			t.Errorf("errors %+v do not name %q as invalid UTF-8", be.Items[0].Errors, tc.field)
		})
	}
	// What the sender wrote on purpose stays.
	for name, body := range map[string]string{
		"surrogate pair":        strings.Replace(good, `路口积水`, `路口\ud83c\udf0a积水`, 1),
		"replacement character": strings.Replace(good, `路口积水`, "路口\uFFFD积水", 1),
		"escaped replacement":   strings.Replace(good, `路口积水`, `路口\uFFFD积水`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			evs, err := d.DecodeBody([]byte(body))
			if err != nil {
				t.Fatalf("DecodeBody = %v", err)
			}
			if !utf8.ValidString(evs[0].Text) {
				t.Errorf("text %q", evs[0].Text)
			}
		})
	}
}

func TestDecodeDuplicateIDsNameEachOther(t *testing.T) {
	d := testDecoder(t)
	other := strings.Replace(good, `"hl-1"`, `"hl-2"`, 1)
	_, err := d.DecodeBody([]byte("[" + good + "," + other + "," + good + "]"))
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("DecodeBody error = %v, want a *BatchError", err)
	}
	if len(be.Items) != 2 || be.Items[0].Index != 0 || be.Items[1].Index != 2 {
		t.Fatalf("items = %+v, want 0 and 2", be.Items)
	}
	if fe := be.Items[0].Errors[0]; fe.Field != "id" || !strings.Contains(fe.Message, "event 2") {
		t.Errorf("item 0: %+v, want the id naming event 2", fe)
	}
	if fe := be.Items[1].Errors[0]; fe.Field != "id" || !strings.Contains(fe.Message, "event 0") {
		t.Errorf("item 2: %+v, want the id naming event 0", fe)
	}
	// Ids are per source: the same id from another source is another event,
	// and events without ids get ids of their own.
	video := strings.Replace(good, `"hotline"`, `"video"`, 1)
	noID := strings.Replace(good, `"id":"hl-1",`, "", 1)
	if evs, err := d.DecodeBody([]byte("[" + good + "," + video + "," + noID + "," + noID + "]")); err != nil || len(evs) != 4 {
		t.Fatalf("DecodeBody = %d events, %v", len(evs), err)
	} else if Key(evs[0]) == Key(evs[1]) || evs[2].Id == evs[3].Id {
		t.Errorf("keys %s %s %s %s", Key(evs[0]), Key(evs[1]), Key(evs[2]), Key(evs[3]))
	}
}

func TestDecodeOnlySpokenForSources(t *testing.T) {
	d := testDecoder(t)
	d.SpeaksFor = func(s string) bool { return s == "video" }
	video := strings.Replace(good, `"hotline"`, `"video"`, 1)
	_, err := d.DecodeBody([]byte("[" + video + "," + good + "]"))
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("DecodeBody error = %v, want a *BatchError", err)
	}
	if len(be.Items) != 1 || be.Items[0].Index != 1 || be.Items[0].Errors[0].Field != "source" {
		t.Fatalf("items = %+v, want the source of item 1", be.Items)
	}
	if _, err := d.DecodeBody([]byte(video)); err != nil {
		t.Errorf("an event of a spoken-for source: %v", err)
	}
}

func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[" + good + "," + good + "]"))
	f.Add([]byte(`{"attrs":{"a":[1,2,{"b":null}]}}`))
	f.Add([]byte(`[{"location":{"lon":1e400}}]`))
	// The shapes of the trust holes: invalid UTF-8 and lone surrogates in
	// free text, duplicate ids, a source the caller does not speak for.
	f.Add([]byte(strings.Replace(good, `路口积水`, "路口\xff积水", 1)))
	f.Add([]byte(strings.Replace(good, `"c-17"`, `"\ud800"`, 1)))
	f.Add([]byte(strings.Replace(good, `"camera_id"`, "\"cam\xc3\"", 1)))
	f.Add([]byte("[" + good + "," + strings.Replace(good, `"hotline"`, `"video"`, 1) + "]"))
	f.Add([]byte(strings.Replace(good, `"hotline"`, `"iot"`, 1)))
	d := testDecoder(f)
	d.SpeaksFor = func(s string) bool { return s != "iot" }
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := d.DecodeBody(body)
		if err == nil {
			if len(evs) == 0 {
				t.Fatal("no error and no events")
			}
			keys := map[string]bool{}
			for _, ev := range evs {
				if ev.Id == "" || ev.Location.GetDistrict() != "xuhui" || ev.OccurredAt == nil {
					t.Fatalf("accepted an incomplete event %v", ev)
				}
				if ev.Source == "iot" {
					t.Fatal("accepted an event of a source the caller does not speak for")
				}
				if keys[Key(ev)] {
					t.Fatalf("accepted two events %s in one request", Key(ev))
				}
				keys[Key(ev)] = true
				if !utf8.Valid(body) {
					for _, s := range []string{ev.Text, ev.Location.GetStreet(), ev.Location.GetAddress(), ev.Location.GetGrid()} {
						if strings.ContainsRune(s, utf8.RuneError) {
							t.Fatalf("accepted %q from a body that is not UTF-8", s)
						}
					}
				}
			}
			return
		}

		var be *BatchError
		if !errors.As(err, &be) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}

// An adapter's events go through the same checks as POST /v1/events.
func TestDecodeInputsIsDecodeBody(t *testing.T) {
	d := testDecoder(t)
	d.SpeaksFor = func(s string) bool { return s == "hotline" }
	lon, lat := 121.43, 31.18
	in := func(id, source, district string) *Input {
		return &Input{ID: id, Source: source, Type: "waterlogging", OccurredAt: "2026-07-01T08:30:00+08:00",
			Location: &LocationInput{Lon: &lon, Lat: &lat, District: district}, Attrs: map[string]any{"water_depth_cm": 35.0}}
	}
	evs, err := d.DecodeInputs([]*Input{in("a", "hotline", "xuhui"), in("", "hotline", "xuhui")})
	if err != nil || len(evs) != 2 || evs[0].GetId() != "a" || evs[1].GetId() == "" || evs[0].GetAttrs().GetFields()["water_depth_cm"].GetNumberValue() != 35 {
		t.Fatalf("DecodeInputs = %v, %v", evs, err)
	}
	_, err = d.DecodeInputs([]*Input{in("a", "hotline", "xuhui"), in("a", "hotline", "xuhui"), in("b", "hotline", "nowhere"), in("c", "video", "xuhui"), nil})
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("DecodeInputs error = %v, want a *BatchError", err)
	}
	var got []string
	for _, it := range be.Items {
		for _, fe := range it.Errors {
			got = append(got, fmt.Sprintf("%d %s", it.Index, fe.Field))
		}
	}
	want := []string{"0 id", "1 id", "2 location.district", "3 source", "4 "}
	if !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
	for _, n := range []int{0, MaxBatch + 1} {
		if _, err := d.DecodeInputs(make([]*Input, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d inputs: %v, want ErrMalformed", n, err)
		}
	}
}
