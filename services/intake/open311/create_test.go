package open311_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/intake/open311"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/events"
)

func TestCreate(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, form url.Values)
		// want is what the event carries: Source, Type, Location and
		// Attrs are compared; the rest comes from the form.
		want events.Input
	}{
		{
			name: "coordinates",
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "lon for long",
			edit: func(_ *testing.T, f url.Values) { f.Del("long"); f.Set("lon", "121.4372") },
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "lon and long agreeing",
			edit: func(_ *testing.T, f url.Values) { f.Set("lon", "121.4372") },
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "an address naming its district",
			edit: func(_ *testing.T, f url.Values) {
				f.Del("lat")
				f.Del("long")
				f.Set("address_string", "上海市徐汇区漕溪北路 88 号")
			},
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{District: "xuhui", Address: "上海市徐汇区漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "an address by the district's short name",
			edit: func(_ *testing.T, f url.Values) {
				f.Del("lat")
				f.Del("long")
				f.Set("address_string", "浦东张杨路 500 号")
			},
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{District: "pudong", Address: "浦东张杨路 500 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "a full name before a river's",
			edit: func(_ *testing.T, f url.Values) {
				f.Del("lat")
				f.Del("long")
				f.Set("address_string", "浦东新区滨江大道黄浦江边")
			},
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{District: "pudong", Address: "浦东新区滨江大道黄浦江边"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "an address by the district's code",
			edit: func(_ *testing.T, f url.Values) {
				f.Del("lat")
				f.Del("long")
				f.Set("address_string", "88 Caoxi Road North, Xuhui, Shanghai")
			},
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{District: "xuhui", Address: "88 Caoxi Road North, Xuhui, Shanghai"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "the district chosen over the coordinates",
			edit: func(_ *testing.T, f url.Values) { f.Set("attribute[district]", "huangpu") },
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "huangpu", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "datetime and text answers",
			edit: func(_ *testing.T, f url.Values) {
				f.Set("attribute[noticed_at]", "2026-07-01T08:30")
				f.Set("attribute[remarks]", "第一行\n第二行")
			},
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0, "noticed_at": "2026-07-01T08:30:00+08:00", "remarks": "第一行\n第二行"}},
		},
		{
			name: "list answers",
			edit: func(_ *testing.T, f url.Values) {
				f.Del("attribute[water_depth_cm]")
				f.Set("service_code", "manhole_cover_missing")
				f.Set("attribute[on_carriageway]", "false")
				f["attribute[kind][]"] = []string{"sewage", "rain", "sewage"}
			},
			want: events.Input{Source: "citizen_app", Type: "manhole_cover_missing",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"on_carriageway": false, "kind": "rain,sewage"}},
		},
		{
			name: "a datetime with its offset, a media_url, empty fields",
			edit: func(_ *testing.T, f url.Values) {
				f.Set("attribute[noticed_at]", "2026-07-01T00:30:00Z")
				f.Set("media_url", "https://img.example.com/p/1.jpg")
				f.Set("attribute[remarks]", "")
				f.Set("address_id", "")
			},
			want: events.Input{Source: "citizen_app", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0, "noticed_at": "2026-07-01T00:30:00Z", "media_url": "https://img.example.com/p/1.jpg"}},
		},
		{
			name: "a commander posts as open311",
			edit: func(t *testing.T, f url.Values) { f.Set("api_key", h.key(t, auth.Principal{Role: auth.RoleCommander})) },
			want: events.Input{Source: "open311", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
		{
			name: "a key of several sources posts as open311",
			edit: func(t *testing.T, f url.Values) {
				f.Set("api_key", h.key(t, auth.Principal{Role: auth.RoleSource, Sources: []string{"hotline", "open311"}}))
				f.Del("jurisdiction_id")
			},
			want: events.Input{Source: "open311", Type: "waterlogging",
				Location: &events.LocationInput{Lat: ptr(31.1880), Lon: ptr(121.4372), District: "xuhui", Address: "漕溪北路 88 号"},
				Attrs:    map[string]any{"water_depth_cm": 15.0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []string{"xml", "json"} {
				form := h.report(t)
				if tc.edit != nil {
					tc.edit(t, form)
				}
				before := len(h.intake.submitted())
				a := h.post(t, f, form)
				if a.status != http.StatusOK {
					t.Fatalf("%s: POST = %d %s", f, a.status, a.body)
				}
				if ct := a.header.Get("Content-Type"); ct != map[string]string{"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}[f] {
					t.Errorf("%s: Content-Type %s", f, ct)
				}
				got := conforms(t, "post_response", f, a.body).([]specRequest)
				if len(got) != 1 {
					t.Fatalf("%s: %d requests in the answer", f, len(got))
				}
				subs := h.intake.submitted()
				if len(subs) != before+1 {
					t.Fatalf("%s: %d events submitted, want 1", f, len(subs)-before)
				}
				ev := subs[len(subs)-1]
				if ev.ID != got[0].ServiceRequestID || len(ev.ID) != 26 || strings.ToLower(ev.ID) != ev.ID {
					t.Errorf("%s: event id %q, service_request_id %q", f, ev.ID, got[0].ServiceRequestID)
				}
				if ev.OccurredAt != "2026-07-01T10:00:00+08:00" || ev.Text != form.Get("description") {
					t.Errorf("%s: occurred_at %s, text %q", f, ev.OccurredAt, ev.Text)
				}
				if ev.Source != tc.want.Source || ev.Type != tc.want.Type || !reflect.DeepEqual(ev.Location, tc.want.Location) || !reflect.DeepEqual(ev.Attrs, tc.want.Attrs) {
					t.Errorf("%s: event\n%+v %+v %v\nwant\n%+v %+v %v", f, ev, *ev.Location, ev.Attrs, tc.want, *tc.want.Location, tc.want.Attrs)
				}
				notice := "已受理，可凭编号查询处理进度。"
				if tc.want.Type == "manhole_cover_missing" {
					notice = "已受理，请注意绕行。"
				}
				if got[0].ServiceNotice != notice || got[0].AccountID != "" {
					t.Errorf("%s: answered %+v", f, got[0])
				}
				recs, err := h.store.Get(t.Context(), ev.ID)
				if err != nil || len(recs) != 1 {
					t.Fatalf("%s: recorded %v, %v", f, recs, err)
				}
				if r := recs[0]; r.Source != ev.Source || r.District != ev.Location.District || r.ServiceCode != ev.Type || !r.Requested.Equal(t0) || r.Notice != notice {
					t.Errorf("%s: recorded %+v", f, r)
				}
			}
		})
	}
}

// TestCreatePersonalData checks that the reporter's details reach neither
// the event nor the store: the event says only that they can be reached.
func TestCreatePersonalData(t *testing.T) {
	h := start(t)
	form := h.report(t)
	personal := map[string]string{
		"email": "li.ming@example.com", "phone": "13800138000", "first_name": "明",
		"last_name": "李", "device_id": "device-7781", "account_id": "acct-99120",
	}
	for k, v := range personal {
		form.Set(k, v)
	}
	id := h.create(t, form)
	ev := h.intake.submitted()[0]
	if ev.Attrs["contact_given"] != true {
		t.Errorf("attrs %v: want contact_given", ev.Attrs)
	}
	evJSON, _ := json.Marshal(ev)
	stored, err := h.rdb.Get(t.Context(), "cityhub:open311:{requests}:r:"+id).Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range personal {
		if strings.Contains(string(evJSON), v) || strings.Contains(stored, v) {
			t.Errorf("%s %q kept:\nevent %s\nstored %s", k, v, evJSON, stored)
		}
	}
	// Without email or phone, nothing says anybody can be reached.
	form = h.report(t)
	form.Set("device_id", "device-7781")
	h.create(t, form)
	if ev := h.intake.submitted()[1]; ev.Attrs["contact_given"] != nil {
		t.Errorf("attrs %v: contact_given without a way to contact", ev.Attrs)
	}
}

func TestCreateRefused(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		name   string
		edit   func(t *testing.T, form url.Values)
		status int
		want   []string // each is in one of the descriptions
	}{
		{"no service_code", func(_ *testing.T, f url.Values) { f.Del("service_code") }, 400, []string{"service_code: required"}},
		{"a service citizens do not report", func(_ *testing.T, f url.Values) { f.Set("service_code", "rainfall") }, 404, []string{`service_code: "rainfall" not found`}},
		{"no location", func(_ *testing.T, f url.Values) { f.Del("lat"); f.Del("long"); f.Del("address_string") }, 400, []string{"a location is required"}},
		{"an address id alone", func(_ *testing.T, f url.Values) {
			f.Del("lat")
			f.Del("long")
			f.Del("address_string")
			f.Set("address_id", "8812")
		}, 400, []string{"address_id: addresses are not known here by id"}},
		{"lat without long", func(_ *testing.T, f url.Values) { f.Del("long") }, 400, []string{"lat: send lat and long together"}},
		{"lat not a number", func(_ *testing.T, f url.Values) { f.Set("lat", "north") }, 400, []string{`lat: "north" is not a number`}},
		{"long out of range", func(_ *testing.T, f url.Values) { f.Set("long", "191") }, 400, []string{"long: 191 is outside -180..180"}},
		{"lon and long differ", func(_ *testing.T, f url.Values) { f.Set("lon", "121.5") }, 400, []string{"lon: differs from long"}},
		{"far from the city", func(_ *testing.T, f url.Values) { f.Set("lat", "39.9042"); f.Set("long", "116.4074") }, 400, []string{"km from the nearest district", "attribute[district]"}},
		{"an address naming no district", func(_ *testing.T, f url.Values) { f.Del("lat"); f.Del("long") }, 400, []string{"attribute[district]: address_string names no district"}},
		{"an address naming two", func(_ *testing.T, f url.Values) {
			f.Del("lat")
			f.Del("long")
			f.Set("address_string", "徐汇区与黄浦区交界处")
		}, 400, []string{"names several districts (huangpu, xuhui)"}},
		{"an unknown district chosen", func(_ *testing.T, f url.Values) { f.Set("attribute[district]", "chongming") }, 400, []string{`attribute[district]: "chongming" is not a district`}},
		{"a number that is not", func(_ *testing.T, f url.Values) { f.Set("attribute[water_depth_cm]", "deep") }, 400, []string{`attribute[water_depth_cm]: want a number, got "deep"`}},
		{"a question the service does not ask", func(_ *testing.T, f url.Values) { f.Set("attribute[colour]", "brown") }, 400, []string{"attribute[colour]: not an attribute of service waterlogging"}},
		{"a required answer missing", func(_ *testing.T, f url.Values) {
			f.Set("service_code", "illegal_parking")
			f.Del("attribute[water_depth_cm]")
		}, 400, []string{"attribute[plate]: required: 车牌号？"}},
		{"a string over two lines", func(_ *testing.T, f url.Values) {
			f.Set("service_code", "illegal_parking")
			f.Del("attribute[water_depth_cm]")
			f.Set("attribute[plate]", "沪A\n12345")
		}, 400, []string{"attribute[plate]: a string is one line"}},
		{"a choice that is not offered", func(_ *testing.T, f url.Values) {
			f.Set("service_code", "manhole_cover_missing")
			f.Del("attribute[water_depth_cm]")
			f.Set("attribute[on_carriageway]", "maybe")
		}, 400, []string{"attribute[on_carriageway]: not one of the values: true, false"}},
		{"choices not offered", func(_ *testing.T, f url.Values) {
			f.Set("service_code", "manhole_cover_missing")
			f.Del("attribute[water_depth_cm]")
			f.Set("attribute[on_carriageway]", "true")
			f["attribute[kind][]"] = []string{"rain", "gas"}
		}, 400, []string{`attribute[kind]: "gas" is not one of the values: rain, sewage, power`}},
		{"two answers to one question", func(_ *testing.T, f url.Values) { f.Add("attribute[water_depth_cm]", "20") }, 400, []string{"attribute[water_depth_cm]: one answer, got 2"}},
		{"a datetime that is not", func(_ *testing.T, f url.Values) { f.Set("attribute[noticed_at]", "yesterday") }, 400, []string{"attribute[noticed_at]: want an ISO 8601 date and time"}},
		{"a description too long", func(_ *testing.T, f url.Values) { f.Set("description", strings.Repeat("水", 4001)) }, 400, []string{"description: 4001 characters, at most 4000"}},
		{"a media_url that is not http", func(_ *testing.T, f url.Values) { f.Set("media_url", "ftp://files.example.com/1.jpg") }, 400, []string{"media_url: want an http or https URL"}},
		{"a control character", func(_ *testing.T, f url.Values) { f.Set("description", "积水\x07") }, 400, []string{"description: control characters other than tab and line breaks"}},
		{"a field twice", func(_ *testing.T, f url.Values) { f.Add("description", "again") }, 400, []string{"description: given 2 times"}},
		{"several problems at once", func(_ *testing.T, f url.Values) { f.Del("service_code"); f.Set("lat", "north") }, 400, []string{"service_code: required", `lat: "north"`}},
		{"an address intake refuses", func(_ *testing.T, f url.Values) { f.Set("address_string", strings.Repeat("路", 600)) }, 400, []string{"address_string: 600 characters, at most 512"}},
		{"no api_key", func(_ *testing.T, f url.Values) { f.Del("api_key") }, 403, []string{"api_key: required"}},
		{"a forged api_key", func(_ *testing.T, f url.Values) { f.Set("api_key", "eyJhbGciOiJub25lIn0.e30.") }, 403, []string{"api_key: refused"}},
		{"a department's key", func(t *testing.T, f url.Values) {
			f.Set("api_key", h.key(t, auth.Principal{Role: auth.RoleDepartment, Dept: "water-affairs"}))
		}, 403, []string{"api_key: a department key may not post requests"}},
		{"a key of several other sources", func(t *testing.T, f url.Values) {
			f.Set("api_key", h.key(t, auth.Principal{Role: auth.RoleSource, Sources: []string{"hotline", "video"}}))
		}, 403, []string{"several sources (hotline, video) and not for open311"}},
		{"the api_key before the form's problems", func(_ *testing.T, f url.Values) { f.Del("api_key"); f.Del("service_code") }, 403, []string{"api_key: required"}},
		{"another jurisdiction", func(_ *testing.T, f url.Values) { f.Set("jurisdiction_id", "elsewhere.gov") }, 404, []string{`jurisdiction_id: "elsewhere.gov" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []string{"xml", "json"} {
				form := h.report(t)
				tc.edit(t, form)
				before := len(h.intake.submitted())
				a := h.post(t, f, form)
				if a.status != tc.status {
					t.Fatalf("%s: POST = %d %s, want %d", f, a.status, a.body, tc.status)
				}
				descs := errorsOf(t, f, a)
				for _, want := range tc.want {
					if !containsAny(descs, want) {
						t.Errorf("%s: errors %q, want one saying %q", f, descs, want)
					}
				}
				if tc.status == 403 && len(descs) != 1 {
					t.Errorf("%s: a refused key answered with %q", f, descs)
				}
				if n := len(h.intake.submitted()) - before; n != 0 {
					t.Errorf("%s: %d events submitted", f, n)
				}
			}
		})
	}
}

func containsAny(descs []string, want string) bool {
	for _, d := range descs {
		if strings.Contains(d, want) {
			return true
		}
	}
	return false
}

// TestCreateHTTP covers what is wrong before the form is read.
func TestCreateHTTP(t *testing.T) {
	h := start(t)
	good := h.report(t).Encode()
	for _, tc := range []struct {
		name, contentType, body string
		header                  []string
		status                  int
		want                    string
	}{
		{"JSON", "application/json", `{"service_code":"waterlogging"}`, nil, 415, "application/x-www-form-urlencoded"},
		{"no content type", "", good, nil, 415, "application/x-www-form-urlencoded"},
		{"another charset", "application/x-www-form-urlencoded; charset=gb2312", good, nil, 415, "charset gb2312: send UTF-8"},
		{"too large", "application/x-www-form-urlencoded", good + "&description=" + strings.Repeat("a", open311.MaxBodyBytes), nil, 413, "at most 65536 bytes"},
		{"not a form", "application/x-www-form-urlencoded", "service_code=%zz", nil, 400, "not a form"},
		{"not UTF-8", "application/x-www-form-urlencoded", good + "&description=" + url.QueryEscape("\xff\xfe"), nil, 400, "description: the value is not UTF-8"},
		{"too many fields", "application/x-www-form-urlencoded", good + manyFields(200), nil, 400, "208 fields, at most 128"},
		{"a bad Idempotency-Key", "application/x-www-form-urlencoded", good, []string{"Idempotency-Key", "has spaces in it"}, 400, "Idempotency-Key: want 1 to 255 printable ASCII characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []string{"xml", "json"} {
				a := h.postBody(t, f, tc.contentType, tc.body, tc.header...)
				if a.status != tc.status {
					t.Fatalf("%s: POST = %d %s, want %d", f, a.status, a.body, tc.status)
				}
				if descs := errorsOf(t, f, a); !containsAny(descs, tc.want) {
					t.Errorf("%s: errors %q, want one saying %q", f, descs, tc.want)
				}
			}
		})
	}
	if n := len(h.intake.submitted()); n != 0 {
		t.Errorf("%d events submitted", n)
	}
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "&f%d=1", i)
	}
	return b.String()
}

// TestCreateUnavailable: when the event log does not acknowledge, the
// client is told to retry, and nothing is recorded; other failures are the
// hub's own.
func TestCreateUnavailable(t *testing.T) {
	h := start(t)
	h.intake.fail(fmt.Errorf("%w: broker gone", errLogDown))
	for _, f := range []string{"xml", "json"} {
		a := h.post(t, f, h.report(t))
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s: POST = %d (Retry-After %q) %s", f, a.status, a.header.Get("Retry-After"), a.body)
		}
		if descs := errorsOf(t, f, a); !containsAny(descs, "the event log is out of reach") {
			t.Errorf("%s: %q", f, descs)
		}
	}
	if recs, _ := h.store.List(t.Context(), open311.Query{From: t0.Add(-open311.Window), To: t0, Limit: 10}); len(recs) != 0 {
		t.Errorf("recorded %v", recs)
	}
	h.intake.fail(fmt.Errorf("encoding failed"))
	if a := h.post(t, "xml", h.report(t)); a.status != http.StatusInternalServerError {
		t.Errorf("another failure: POST = %d %s", a.status, a.body)
	}

	// Without an Unavailable error to tell them apart, every failure is
	// one to retry.
	h = start(t, func(o *open311.Options) { o.Unavailable = nil })
	h.intake.fail(fmt.Errorf("encoding failed"))
	if a := h.post(t, "json", h.report(t)); a.status != http.StatusServiceUnavailable {
		t.Errorf("without Options.Unavailable: POST = %d %s", a.status, a.body)
	}
}

// failingStore fails to record.
type failingStore struct {
	open311.Store
}

func (failingStore) Add(_ context.Context, r open311.Request) (open311.Request, bool, error) {
	return open311.Request{}, false, errors.New("redis: connection refused")
}

func TestCreateStoreDown(t *testing.T) {
	h := start(t)
	h = start(t, func(o *open311.Options) { o.Requests = failingStore{h.store} })
	a := h.post(t, "xml", h.report(t))
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("POST = %d %s", a.status, a.body)
	}
	if descs := errorsOf(t, "xml", a); !containsAny(descs, "the request store is out of reach") {
		t.Errorf("%q", descs)
	}
}

// TestIdempotencyKey: a retry with the same key is the same request, posted
// once; the key with another report is refused; another key is another
// request.
func TestIdempotencyKey(t *testing.T) {
	h := start(t)
	form := h.report(t)
	const key = "app-7f3a-0001"
	first := h.post(t, "xml", form, "Idempotency-Key", key)
	if first.status != http.StatusOK {
		t.Fatalf("POST = %d %s", first.status, first.body)
	}
	id := conforms(t, "post_response", "xml", first.body).([]specRequest)[0].ServiceRequestID

	h.clock.Set(t0.Add(time.Minute)) // a retry comes later
	again := h.post(t, "json", form, "Idempotency-Key", key)
	if again.status != http.StatusOK {
		t.Fatalf("retry: POST = %d %s", again.status, again.body)
	}
	if got := conforms(t, "post_response", "json", again.body).([]specRequest)[0].ServiceRequestID; got != id {
		t.Errorf("retry got id %s, want %s", got, id)
	}
	if n := len(h.intake.submitted()); n != 1 {
		t.Errorf("%d events submitted, want 1", n)
	}

	other := h.report(t)
	other.Set("description", "另一处积水")
	a := h.post(t, "xml", other, "Idempotency-Key", key)
	if a.status != http.StatusConflict {
		t.Fatalf("another report under the key: POST = %d %s", a.status, a.body)
	}
	if descs := errorsOf(t, "xml", a); !containsAny(descs, "Idempotency-Key: this key came before with another report (service_request_id "+id+")") {
		t.Errorf("%q", descs)
	}

	if got := h.create(t, other); got == id {
		t.Error("a report without a key got the id of one with it")
	}
	a = h.post(t, "json", other, "Idempotency-Key", "app-7f3a-0002")
	if got := conforms(t, "post_response", "json", a.body).([]specRequest)[0].ServiceRequestID; got == id {
		t.Error("another key got the same id")
	}

	// The key is the source's: another source's same key is another
	// request.
	form.Set("api_key", h.key(t, auth.Principal{Role: auth.RoleSource, Sources: []string{"hotline"}}))
	a = h.post(t, "json", form, "Idempotency-Key", key)
	if got := conforms(t, "post_response", "json", a.body).([]specRequest)[0].ServiceRequestID; got == id {
		t.Error("another source's key got the same id")
	}

	// A retry after the event log failed is posted again, with the same id.
	h.intake.fail(errLogDown)
	form = h.report(t)
	form.Set("description", "第三处")
	if a := h.post(t, "xml", form, "Idempotency-Key", "k3"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("POST = %d", a.status)
	}
	h.intake.fail(nil)
	a = h.post(t, "xml", form, "Idempotency-Key", "k3")
	id3 := conforms(t, "post_response", "xml", a.body).([]specRequest)[0].ServiceRequestID
	if subs := h.intake.submitted(); subs[len(subs)-1].ID != id3 {
		t.Errorf("submitted %s, answered %s", subs[len(subs)-1].ID, id3)
	}
}
