package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// The sources' own protocols on the all-in-one hub, each from a report in
// to the case it became: a citizen's Open311 report of a missing manhole
// cover, followed back through Open311 to the department handling it; and
// an Alertmanager notification of an underpass filling with water.
func TestAdapters(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	app := h.token(t, auth.Principal{Subject: "citizen-app", Role: auth.RoleSource, Sources: []string{"open311"}})

	// The catalog says which years' holidays its calendar knows.
	if code, body := h.do(t, "GET", "/v1/catalog", commander, nil); code != http.StatusOK || !strings.Contains(string(body), `"years":[2026`) {
		t.Errorf("GET /v1/catalog = %d, without the calendar's years: %.300s", code, body)
	}

	// Open311: the services are the catalog's reportable types.
	code, body := h.do(t, "GET", "/open311/v2/services.json", "", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"service_code":"manhole_cover_missing"`) {
		t.Fatalf("GET services.json = %d %s", code, body)
	}
	form := url.Values{
		"api_key": {app}, "service_code": {"manhole_cover_missing"}, "lat": {"31.196"}, "long": {"121.437"},
		"address_string": {"天平路 100 号"}, "description": {"人行道上井盖没了，井口敞开"}, "attribute[on_carriageway]": {"false"},
	}
	resp, err := http.PostForm(h.info.URL+"/open311/v2/requests.json", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var created []struct {
		ID string `json:"service_request_id"`
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK || json.Unmarshal(b, &created) != nil || len(created) != 1 || created[0].ID == "" {
		t.Fatalf("POST requests.json = %d %s", resp.StatusCode, b)
	}
	// The report became a case of city-management: Open311 says so.
	type request struct {
		Status string `json:"status"`
		Agency string `json:"agency_responsible"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := h.do(t, "GET", "/open311/v2/requests/"+created[0].ID+".json", "", nil)
		var got []request
		if code == http.StatusOK && json.Unmarshal(body, &got) == nil && len(got) == 1 && got[0].Agency != "" {
			if got[0].Status != "open" || got[0].Agency != "城管执法局" {
				t.Errorf("the report's status: %+v", got[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the report was never followed to a case: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And in XML, as the spec has it.
	code, body = h.do(t, "GET", "/open311/v2/requests/"+created[0].ID+".xml", "", nil)
	if code != http.StatusOK || !strings.Contains(string(body), "<agency_responsible>城管执法局</agency_responsible>") {
		t.Errorf("GET requests/{id}.xml = %d %s", code, body)
	}

	// Alertmanager: an underpass gauge crossing 40 cm.
	monitoring := h.token(t, auth.Principal{Subject: "alertmanager", Role: auth.RoleSource, Sources: []string{"monitoring"}})
	starts := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	payload := fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"UnderpassWaterDepth\"}","truncatedAlerts":0,"status":"firing",
	 "receiver":"cityhub","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager.example",
	 "alerts":[{"status":"firing","labels":{"alertname":"UnderpassWaterDepth","district":"pudong","street":"longyang","severity":"critical"},
	 "annotations":{"summary":"龙阳路下立交积水 45 cm","depth_cm":"45"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z",
	 "generatorURL":"http://prometheus.example/graph","fingerprint":"a1b2c3d4e5f60718"}]}`, starts)
	req, _ := http.NewRequest("POST", h.info.URL+"/v1/adapters/alertmanager", bytes.NewReader([]byte(payload)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+monitoring)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/adapters/alertmanager = %d %s", resp.StatusCode, b)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body := h.do(t, "GET", "/v1/cases?district=pudong", commander, nil)
		if code == http.StatusOK && strings.Contains(string(body), `"event_type":"waterlogging"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no waterlogging case in pudong from the Alertmanager notification: %d %.500s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A rainstorm warning from the meteorological bureau, in CAP, raises the
// rainstorm rule's alert, which the city publishes in its own CAP feed.
func TestCAPInAndOut(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	bureau := h.token(t, auth.Principal{Subject: "weather-bureau", Role: auth.RoleSource, Sources: []string{"weather"}})
	doc, err := os.ReadFile("../../intake/cap/testdata/rainstorm.good.xml")
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte, contentType string) (int, string) {
		req, _ := http.NewRequest("POST", h.info.URL+"/v1/cap", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+bureau)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post([]byte("<alert>not cap</alert>"), "application/cap+xml"); code != http.StatusBadRequest || !strings.Contains(body, "alert") {
		t.Errorf("a document that is not CAP = %d %s", code, body)
	}
	if code, body := post(doc, "application/cap+xml"); code != http.StatusAccepted {
		t.Fatalf("POST /v1/cap = %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := h.do(t, "GET", "/v1/cap/feed.atom", "", nil)
		if code == http.StatusOK && strings.Contains(string(body), "<entry>") && strings.Contains(string(body), "暴雨") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rainstorm warning in the city's CAP feed: %d %.800s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
