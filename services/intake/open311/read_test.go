package open311_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cityhub/cityhub/services/intake/open311"
)

func TestDiscovery(t *testing.T) {
	h := start(t)
	for _, f := range []string{"xml", "json"} {
		a := h.get(t, open311.Prefix+"discovery."+f+"?jurisdiction_id=city.example.gov")
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", f, a.status, a.body)
		}
		got := conforms(t, "discovery", f, a.body).(specDiscovery)
		want := specDiscovery{
			Changeset:  "2026-03-01T08:00:00Z",
			Contact:    "城市运行管理中心（cityhub）值班室",
			KeyService: "api_key 是 cityhub 的数据源令牌，向城市运行管理中心申请（cityhub token --role source --sources open311）",
			Endpoints: []specEndpoint{{
				Specification: "http://wiki.open311.org/GeoReport_v2",
				URL:           h.srv.URL + "/open311/v2",
				Changeset:     "2026-03-01T08:00:00Z",
				Type:          "production",
				Formats:       []string{"text/xml", "application/json"},
			}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n%+v\nwant\n%+v", f, got, want)
		}
	}
	h = start(t, func(o *open311.Options) {
		o.URL = "https://hub.example.gov/open311/v2"
		o.EndpointType = "test"
		o.Contact = "值班室 12345"
	})
	got := conforms(t, "discovery", "xml", h.get(t, open311.Prefix+"discovery.xml").body).(specDiscovery)
	if e := got.Endpoints[0]; e.URL != "https://hub.example.gov/open311/v2" || e.Type != "test" || got.Contact != "值班室 12345" {
		t.Errorf("with options: %+v", got)
	}
}

func TestServices(t *testing.T) {
	h := start(t)
	want := []specService{
		{ServiceCode: "waterlogging", ServiceName: "道路积水", Description: "道路积水影响通行", Metadata: true, Type: "realtime", Keywords: "积水, 淹水", Group: "防汛"},
		{ServiceCode: "manhole_cover_missing", ServiceName: "井盖缺失", Metadata: true, Type: "realtime"},
		{ServiceCode: "illegal_parking", ServiceName: "违法停车", Metadata: true, Type: "realtime", Group: "交通"},
	}
	for _, f := range []string{"xml", "json"} {
		a := h.get(t, open311.Prefix+"services."+f)
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", f, a.status, a.body)
		}
		if got := conforms(t, "services", f, a.body).([]specService); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n%+v\nwant\n%+v", f, got, want)
		}
	}
}

func TestServiceDefinition(t *testing.T) {
	h := start(t)
	district := specAttribute{
		Variable: true, Code: "district", Datatype: "singlevaluelist", Order: 3,
		Description: "所在区。不填时按经纬度取最近的区（50 公里内），或按地址中的区名。",
		Values:      []specValue{{"huangpu", "黄浦区"}, {"xuhui", "徐汇区"}, {"pudong", "浦东新区"}},
	}
	manhole := specDefinition{ServiceCode: "manhole_cover_missing", Attributes: []specAttribute{
		{Variable: true, Code: "on_carriageway", Datatype: "singlevaluelist", Required: true, Order: 1, Description: "井口在机动车道上吗？",
			Values: []specValue{{"true", "是"}, {"false", "否"}}},
		{Variable: true, Code: "kind", Datatype: "multivaluelist", Order: 2, Description: "什么用途的井？",
			Values: []specValue{{"rain", "雨水"}, {"sewage", "污水"}, {"power", "电力"}}},
		district,
	}}
	district.Order = 4
	water := specDefinition{ServiceCode: "waterlogging", Attributes: []specAttribute{
		{Variable: true, Code: "water_depth_cm", Datatype: "number", DatatypeDescription: "厘米", Order: 1, Description: "积水大约多深？"},
		{Variable: true, Code: "noticed_at", Datatype: "datetime", Order: 2, Description: "什么时候开始积水的？"},
		{Variable: true, Code: "remarks", Datatype: "text", Order: 3, Description: "其他情况"},
		district,
	}}
	for _, want := range []specDefinition{manhole, water} {
		for _, f := range []string{"xml", "json"} {
			a := h.get(t, open311.Prefix+"services/"+want.ServiceCode+"."+f+"?jurisdiction_id=city.example.gov")
			if a.status != http.StatusOK {
				t.Fatalf("%s %s: %d %s", want.ServiceCode, f, a.status, a.body)
			}
			if got := conforms(t, "service_definition", f, a.body).(specDefinition); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s:\n%+v\nwant\n%+v", want.ServiceCode, f, got, want)
			}
		}
	}
	for _, tc := range []struct{ path, f, want string }{
		{"services/rainfall.json", "json", `service_code: "rainfall" not found`},
		{"services/nothing.xml", "xml", `service_code: "nothing" not found`},
		{"services/waterlogging.html", "xml", "unknown format"},
		{"services/waterlogging.xml?jurisdiction_id=elsewhere.gov", "xml", "jurisdiction_id"},
	} {
		a := h.get(t, open311.Prefix+tc.path)
		if a.status != http.StatusNotFound {
			t.Fatalf("%s: %d %s", tc.path, a.status, a.body)
		}
		if descs := errorsOf(t, tc.f, a); !containsAny(descs, tc.want) {
			t.Errorf("%s: %q", tc.path, descs)
		}
	}
}

// TestPathsAndMethods: whatever is asked under the prefix is answered with
// the protocol's documents.
func TestPathsAndMethods(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		method, path, f string
		status          int
		allow, want     string
	}{
		{"PUT", "requests.xml", "xml", 405, "GET, HEAD, POST", "method PUT not allowed"},
		{"DELETE", "requests/abc.json", "json", 405, "GET, HEAD", "method DELETE not allowed"},
		{"POST", "services.json", "json", 405, "GET, HEAD", "method POST not allowed"},
		{"GET", "tokens/123.xml", "xml", 404, "", "no such resource"},
		{"GET", "nothing.json", "json", 404, "", "no such resource"},
		{"GET", "services.xml?jurisdiction_id=elsewhere.gov", "xml", 404, "", "jurisdiction_id"},
		{"HEAD", "services.xml", "xml", 200, "", ""},
	} {
		req, _ := http.NewRequest(tc.method, h.srv.URL+open311.Prefix+tc.path, nil)
		a := h.do(t, req)
		if a.status != tc.status || a.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d (Allow %q) %s", tc.method, tc.path, a.status, a.header.Get("Allow"), a.body)
			continue
		}
		if tc.want != "" {
			if descs := errorsOf(t, tc.f, a); !containsAny(descs, tc.want) {
				t.Errorf("%s %s: %q", tc.method, tc.path, descs)
			}
		}
	}
}

// TestJSONNulls: the JSON forms say null where the XML has an empty
// element, as the specification's examples do.
func TestJSONNulls(t *testing.T) {
	h := start(t)
	form := h.report(t)
	form.Del("description")
	id := h.create(t, form)
	body := string(h.get(t, open311.Prefix+"requests/"+id+".json").body)
	for _, want := range []string{`"description":null`, `"agency_responsible":null`, `"status_notes":null`, `"expected_datetime":null`, `"zipcode":null`, `"media_url":null`} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in %s", want, body)
		}
	}
	if body := string(h.get(t, open311.Prefix+"services.json").body); !strings.Contains(body, `"description":null`) || !strings.Contains(body, `"group":null`) {
		t.Errorf("services: %s", body)
	}
}

func TestMetrics(t *testing.T) {
	h := start(t)
	h.get(t, open311.Prefix+"services.json")
	h.get(t, open311.Prefix+"services.json")
	h.post(t, "xml", h.report(t))
	h.get(t, open311.Prefix+"requests/nothing.xml")
	const want = `
# HELP cityhub_open311_requests_total Open311 requests by endpoint (discovery, services, service, create, requests, request, unknown), format (xml, json) and HTTP status.
# TYPE cityhub_open311_requests_total counter
cityhub_open311_requests_total{code="200",endpoint="create",format="xml"} 1
cityhub_open311_requests_total{code="200",endpoint="services",format="json"} 2
cityhub_open311_requests_total{code="404",endpoint="request",format="xml"} 1
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "cityhub_open311_requests_total"); err != nil {
		t.Error(err)
	}
}
