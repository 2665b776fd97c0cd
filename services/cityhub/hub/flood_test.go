package hub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// TestDistrictFloodLinksStreetCases floods xuhui street by street. The
// first four streets' deep water opens a case each; the fifth raises the
// district-wide alert, which opens the district's case and inhibits the
// street alerts. Each street case that was open becomes a linked part of
// the district case, with the link in both histories, and carries on as it
// was: a street case that was returned in the meantime too. When the
// district case ends before the street work is done, the street cases go
// on and can be worked to the end.
func TestDistrictFloodLinksStreetCases(t *testing.T) {
	h := startHub(t, hub.Options{DataDir: t.TempDir()})
	commander := h.token(t, auth.Principal{Subject: "chief", Role: auth.RoleCommander})
	water := h.token(t, auth.Principal{Subject: "w-1", Role: auth.RoleDepartment, Dept: "water-affairs"})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot"}})
	streets := []string{"tianping", "hengshan", "zhaojiabang", "caoxi", "nandan"}

	post := func(i int) {
		t.Helper()
		ev := map[string]any{
			"id": fmt.Sprintf("flood-%d", i), "source": "iot", "type": "waterlogging",
			"occurred_at": time.Now().UTC().Format(time.RFC3339),
			"location":    map[string]any{"district": "xuhui", "street": streets[i], "lon": 121.43, "lat": 31.19},
			"attrs":       map[string]any{"water_depth_cm": 40.0},
		}
		if code, body := h.do(t, "POST", "/v1/events", source, ev); code != http.StatusAccepted {
			t.Fatalf("POST /v1/events = %d %s", code, body)
		}
	}
	type caseView struct {
		ID         string `json:"id"`
		Status     string `json:"status"`
		Rule       string `json:"rule"`
		Version    int64  `json:"version"`
		Labels     map[string]string
		LinkedInto string   `json:"linked_into"`
		Linked     []string `json:"linked"`
		History    []struct {
			Action string `json:"action"`
			Effect string `json:"effect"`
		} `json:"history"`
	}
	list := func() []caseView {
		t.Helper()
		code, body := h.do(t, "GET", "/v1/cases?district=xuhui&limit=100", commander, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/cases = %d %s", code, body)
		}
		var page struct{ Items []caseView }
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		return page.Items
	}
	get := func(id string) caseView {
		t.Helper()
		code, body := h.do(t, "GET", "/v1/cases/"+id, commander, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/cases/%s = %d %s", id, code, body)
		}
		return decode[caseView](t, body)
	}
	act := func(id, token string, body map[string]any) caseView {
		t.Helper()
		c := get(id)
		body["expected_version"] = c.Version
		body["request_id"] = fmt.Sprintf("%s-%v-%d", id, body["action"], c.Version)
		code, b := h.do(t, "POST", "/v1/cases/"+id+"/actions", token, body)
		if code != http.StatusOK {
			t.Fatalf("%v on %s = %d %s", body["action"], id, code, b)
		}
		return decode[caseView](t, b)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	streetCases := func() map[string]caseView {
		out := map[string]caseView{}
		for _, c := range list() {
			if c.Rule == "flood-control/deep-waterlogging" {
				out[c.Labels["street"]] = c
			}
		}
		return out
	}

	for i := range 4 {
		post(i)
	}
	waitUntil("four street cases", func() bool { return len(streetCases()) == 4 })
	// The water bureau hands one back before the district floods.
	returned := streetCases()["caoxi"].ID
	act(returned, water, map[string]any{"action": "return", "department": "water-affairs", "note": "排水泵站归排水公司"})

	post(4)
	var district caseView
	waitUntil("the district case", func() bool {
		for _, c := range list() {
			if c.Rule == "flood-control/district-flooding" {
				district = c
				return true
			}
		}
		return false
	})
	waitUntil("the open street cases linked into the district case", func() bool {
		d := get(district.ID)
		for street, c := range streetCases() {
			if street == "nandan" {
				continue // its alert was inhibited as it fired: it opened no case, or one that is linked too
			}
			if c.LinkedInto != district.ID || !slices.Contains(d.Linked, c.ID) {
				return false
			}
		}
		return true
	})
	for street, c := range streetCases() {
		c = get(c.ID)
		want := "dispatched"
		if c.ID == returned {
			want = "new"
		}
		if street != "nandan" && c.Status != want {
			t.Errorf("street case %s (%s) is %s after the link, want %s: a link changes no status", c.ID, street, c.Status, want)
		}
		if street != "nandan" && !slices.ContainsFunc(c.History, func(e struct {
			Action string `json:"action"`
			Effect string `json:"effect"`
		}) bool {
			return e.Action == "link"
		}) {
			t.Errorf("street case %s has no link in its history: %+v", c.ID, c.History)
		}
	}
	d := get(district.ID)
	attached := 0
	for _, e := range d.History {
		if e.Action == "attach" {
			attached++
		}
	}
	if attached < 4 {
		t.Errorf("the district case's history records %d linked cases, want at least 4: %+v", attached, d.History)
	}

	// The district case ends first; the street cases carry on, and one is
	// worked to the end.
	act(district.ID, commander, map[string]any{"action": "cancel", "note": "区域内涝解除，各路段继续处置"})
	street := streetCases()["tianping"].ID
	act(street, water, map[string]any{"action": "accept", "department": "water-affairs"})
	if c := get(street); c.Status != "accepted" || c.LinkedInto != district.ID {
		t.Errorf("street case after the district case ended: %s, linked into %q", c.Status, c.LinkedInto)
	}
}
