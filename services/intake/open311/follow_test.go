package open311_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/intake/open311"
)

// requests GETs path, with {f} the format, in both formats, checks that
// they say the same, and returns the requests.
func (h *harness) requests(t *testing.T, path string) []specRequest {
	t.Helper()
	var out [2][]specRequest
	for i, f := range []string{"xml", "json"} {
		p := strings.ReplaceAll(path, "{f}", f)
		a := h.get(t, open311.Prefix+p)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", p, a.status, a.body)
		}
		out[i] = append([]specRequest{}, conforms(t, "requests", f, a.body).([]specRequest)...)
	}
	if !reflect.DeepEqual(out[0], out[1]) {
		t.Errorf("GET %s: XML and JSON differ:\n%+v\n%+v", path, out[0], out[1])
	}
	return out[0]
}

func TestGetRequest(t *testing.T) {
	h := start(t)
	form := h.report(t)
	form.Set("media_url", "https://img.example.com/p/1.jpg")
	closed := h.create(t, form)
	h.cases.set("citizen_app", closed, open311.Status{
		CaseID: "xuhui-01k0000000000000000000000", Open: false,
		Notes: "已排水，路面恢复通行", Agency: "水务局",
		Updated: t0.Add(2 * time.Hour), Expected: t0.Add(4 * time.Hour),
	})
	h.clock.Set(t0.Add(time.Minute))
	form = h.report(t)
	form.Del("lat")
	form.Del("long")
	form.Set("address_string", "徐汇区天平路 200 号")
	form.Del("description")
	open := h.create(t, form)

	got := h.requests(t, "requests/"+closed+".{f}?jurisdiction_id=city.example.gov")
	want := []specRequest{{
		ServiceRequestID:  closed,
		Status:            "closed",
		StatusNotes:       "已排水，路面恢复通行",
		ServiceName:       "道路积水",
		ServiceCode:       "waterlogging",
		Description:       "积水没过脚踝，车辆绕行",
		AgencyResponsible: "水务局",
		ServiceNotice:     "已受理，可凭编号查询处理进度。",
		RequestedDatetime: "2026-07-01T10:00:00+08:00",
		UpdatedDatetime:   "2026-07-01T12:00:00+08:00",
		ExpectedDatetime:  "2026-07-01T14:00:00+08:00",
		Address:           "漕溪北路 88 号",
		Lat:               ptr(31.188),
		Long:              ptr(121.4372),
		MediaURL:          "https://img.example.com/p/1.jpg",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closed:\n%+v\nwant\n%+v", got, want)
	}

	// No case holds it yet: open, updated when it was made.
	got = h.requests(t, "requests/"+open+".{f}")
	want = []specRequest{{
		ServiceRequestID:  open,
		Status:            "open",
		ServiceName:       "道路积水",
		ServiceCode:       "waterlogging",
		ServiceNotice:     "已受理，可凭编号查询处理进度。",
		RequestedDatetime: "2026-07-01T10:01:00+08:00",
		UpdatedDatetime:   "2026-07-01T10:01:00+08:00",
		Address:           "徐汇区天平路 200 号",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("open:\n%+v\nwant\n%+v", got, want)
	}

	for _, f := range []string{"xml", "json"} {
		a := h.get(t, open311.Prefix+"requests/01k0nothing."+f)
		if a.status != http.StatusNotFound {
			t.Fatalf("unknown: %d %s", a.status, a.body)
		}
		if descs := errorsOf(t, f, a); !containsAny(descs, `service_request_id: "01k0nothing" not found`) {
			t.Errorf("%q", descs)
		}
	}

	h.cases.err = errors.New("dispatch: connection refused")
	a := h.get(t, open311.Prefix+"requests/"+open+".xml")
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("cases down: %d %s", a.status, a.body)
	}
	if descs := errorsOf(t, "xml", a); !containsAny(descs, "the case store is out of reach") {
		t.Errorf("%q", descs)
	}
}

func TestGetRequests(t *testing.T) {
	h := start(t)
	day := 24 * time.Hour
	post := func(at time.Time, service string, edit func(url.Values)) string {
		h.clock.Set(at)
		form := h.report(t)
		form.Set("service_code", service)
		form.Del("attribute[water_depth_cm]")
		if edit != nil {
			edit(form)
		}
		return h.create(t, form)
	}
	old := post(t0.Add(-100*day), "waterlogging", nil)
	w10 := post(t0.Add(-10*day), "waterlogging", nil)
	w5 := post(t0.Add(-5*day), "waterlogging", nil)
	m1 := post(t0.Add(-day), "manhole_cover_missing", func(f url.Values) { f.Set("attribute[on_carriageway]", "true") })
	p0 := post(t0, "illegal_parking", func(f url.Values) { f.Set("attribute[plate]", "沪A12345") })
	h.clock.Set(t0)
	h.cases.set("citizen_app", w10, open311.Status{Open: false, Agency: "水务局", Updated: t0.Add(-9 * day)})
	h.cases.set("citizen_app", m1, open311.Status{Open: true, Agency: "城管执法局", Updated: t0.Add(-day + time.Hour)})

	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"the last 90 days", "", []string{p0, m1, w5, w10}},
		{"from a start", "start_date=2026-06-24T00:00:00%2B08:00", []string{p0, m1, w5}},
		{"from a date", "start_date=2026-06-25", []string{p0, m1, w5}},
		{"to an end", "end_date=2026-06-29T00:00:00Z", []string{w5, w10}},
		{"an old window", "start_date=2026-03-01T00:00:00Z&end_date=2026-04-01T00:00:00Z", []string{old}},
		{"both ends included", "start_date=2026-06-26T10:00:00%2B08:00&end_date=2026-06-30T10:00:00%2B08:00", []string{m1, w5}},
		{"one service", "service_code=waterlogging", []string{w5, w10}},
		{"two services", "service_code=illegal_parking,waterlogging", []string{p0, w5, w10}},
		{"two services, each named", "service_code=illegal_parking&service_code=manhole_cover_missing", []string{p0, m1}},
		{"open ones", "status=open", []string{p0, m1, w5}},
		{"closed ones", "status=closed", []string{w10}},
		{"either", "status=open,closed", []string{p0, m1, w5, w10}},
		{"open of one service", "status=open&service_code=waterlogging", []string{w5}},
		{"by id, whatever else", "service_request_id=" + w5 + "," + old + ",nothing&status=closed&service_code=illegal_parking", []string{w5, old}},
		{"no service matching", "service_code=rainfall", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := "?jurisdiction_id=city.example.gov"
			if tc.query != "" {
				q += "&" + tc.query
			}
			got := h.requests(t, "requests.{f}"+q)
			ids := []string{}
			for _, r := range got {
				ids = append(ids, r.ServiceRequestID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("got %v\nwant %v", ids, tc.want)
			}
		})
	}

	// What each says of its case.
	got := h.requests(t, "requests.{f}?service_request_id="+w10+","+m1)
	if r := got[0]; r.Status != "closed" || r.AgencyResponsible != "水务局" || r.UpdatedDatetime != "2026-06-22T10:00:00+08:00" {
		t.Errorf("w10: %+v", r)
	}
	if r := got[1]; r.Status != "open" || r.AgencyResponsible != "城管执法局" || r.ServiceName != "井盖缺失" || r.UpdatedDatetime != "2026-06-30T11:00:00+08:00" {
		t.Errorf("m1: %+v", r)
	}

	for _, tc := range []struct{ query, want string }{
		{"start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "may not span more than 90 days"},
		{"start_date=2026-06-01T00:00:00Z&end_date=2026-05-01T00:00:00Z", "end_date: before start_date"},
		{"start_date=last+week", `start_date: "last week"`},
		{"status=pending", `status: "pending": want open or closed`},
		{"service_code=Water+Logging", `service_code: "Water Logging" is not a service code`},
	} {
		for _, f := range []string{"xml", "json"} {
			a := h.get(t, open311.Prefix+"requests."+f+"?"+tc.query)
			if a.status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s", tc.query, a.status, a.body)
			}
			if descs := errorsOf(t, f, a); !containsAny(descs, tc.want) {
				t.Errorf("%s: %q", tc.query, descs)
			}
		}
	}
}

// TestGetRequestsLimit: at most MaxResults, the newest; a status filter
// pages through the window to fill them.
func TestGetRequestsLimit(t *testing.T) {
	h := start(t)
	const n = open311.MaxResults + 5
	for i := range n {
		r := open311.Request{
			ID: fmt.Sprintf("r%04d", i), Source: "citizen_app", ServiceCode: "waterlogging",
			ServiceName: "道路积水", District: "xuhui", Requested: t0.Add(-time.Duration(n-i) * time.Minute),
		}
		if _, _, err := h.store.Add(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			h.cases.set("citizen_app", r.ID, open311.Status{Open: false})
		}
	}
	for _, tc := range []struct {
		query       string
		count       int
		first, last string
	}{
		{"", open311.MaxResults, "r1004", "r0005"},
		{"?status=closed", 503, "r1004", "r0000"},
		{"?status=open", 502, "r1003", "r0001"},
	} {
		got := h.requests(t, "requests.{f}"+tc.query)
		if len(got) != tc.count || got[0].ServiceRequestID != tc.first || got[len(got)-1].ServiceRequestID != tc.last {
			t.Errorf("%q: %d requests, %s … %s; want %d, %s … %s", tc.query, len(got), got[0].ServiceRequestID, got[len(got)-1].ServiceRequestID, tc.count, tc.first, tc.last)
		}
	}
	var many []byte
	for i := range open311.MaxResults + 1 {
		many = fmt.Appendf(many, "r%d,", i)
	}
	if a := h.get(t, open311.Prefix+"requests.xml?service_request_id="+string(many)); a.status != http.StatusBadRequest {
		t.Errorf("%d ids: %d", open311.MaxResults+1, a.status)
	}
}

// One request is followed by its id, which only its reporter was told; the
// list of everyone's reports wants a token.
func TestListingNeedsAToken(t *testing.T) {
	h := start(t)
	id := h.create(t, h.report(t))
	if a := h.getAnon(t, "/open311/v2/requests/"+id+".json"); a.status != http.StatusOK {
		t.Errorf("following one request without a token = %d %s", a.status, a.body)
	}
	for _, f := range []string{"json", "xml"} {
		a := h.getAnon(t, "/open311/v2/requests."+f)
		if a.status != http.StatusUnauthorized || !strings.Contains(string(a.body), "Authorization") {
			t.Errorf("listing requests.%s without a token = %d %s", f, a.status, a.body)
		}
	}
	if a := h.get(t, "/open311/v2/requests.json"); a.status != http.StatusOK || !strings.Contains(string(a.body), id) {
		t.Errorf("listing with a viewer token = %d %s", a.status, a.body)
	}
}
