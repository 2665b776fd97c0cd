package hub_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// A gas leak reported to the embedded hub pages the gas company's person on
// duty: the message is in the dev inbox with its acknowledgement link, and
// the case lists the attempt.
func TestGasLeakPagesTheGasCompany(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	if !h.info.DevSignIn {
		t.Fatal("the hub does not run embedded Kafka")
	}
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	source := h.token(t, auth.Principal{Subject: "gas-sensors", Role: auth.RoleSource, Sources: []string{"iot"}})
	ev := map[string]any{
		"id": "gas-1", "source": "iot", "type": "gas_leak", "occurred_at": time.Now().UTC().Format(time.RFC3339),
		"location": map[string]any{"district": "xuhui", "street": "tianping", "address": "天平路 100 号"},
		"attrs":    map[string]any{"lel_percent": 32, "sensor_id": "g-17"},
	}
	if code, body := h.do(t, "POST", "/v1/events", source, ev); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events = %d %s", code, body)
	}
	type inbox struct {
		Items []struct {
			Receiver string `json:"receiver"`
			Person   string `json:"person"`
			CaseID   string `json:"case_id"`
			Title    string `json:"title"`
			AckURL   string `json:"ack_url"`
		} `json:"items"`
	}
	var page inbox
	var caseID, ackURL string
	deadline := time.Now().Add(45 * time.Second)
	for caseID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no page in the inbox: %+v", page.Items)
		}
		code, body := h.do(t, "GET", "/dev/inbox?format=json", "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /dev/inbox = %d %s", code, body)
		}
		page = decode[inbox](t, body)
		for _, it := range page.Items {
			if it.Receiver == "sms" && it.Person != "" && strings.Contains(it.Title, "燃气") {
				caseID, ackURL = it.CaseID, it.AckURL
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body := h.do(t, "GET", "/v1/cases/"+caseID+"/notifications", commander, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"receiver":"sms"`) || !strings.Contains(string(body), `"outcome":"sent"`) {
		t.Errorf("GET notifications = %d %s", code, body)
	}
	// Another department cannot see the case, nor what was sent about it.
	water := h.token(t, auth.Principal{Subject: "w", Role: auth.RoleDepartment, Dept: "water-affairs"})
	if code, _ := h.do(t, "GET", "/v1/cases/"+caseID+"/notifications", water, nil); code != http.StatusNotFound {
		t.Errorf("water-affairs reading the gas case's notifications: %d, want 404", code)
	}
	// The person paged accepts from the message's link, without signing in:
	// the case records it as theirs, through the SMS.
	if !strings.HasPrefix(ackURL, h.info.URL+"/ack/") {
		t.Fatalf("ack link %q", ackURL)
	}
	resp, err := http.PostForm(ackURL, url.Values{"action": {"accept"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST the ack link = %d", resp.StatusCode)
	}
	code, body = h.do(t, "GET", "/v1/cases/"+caseID, commander, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"via":"notify:sms"`) {
		t.Errorf("the case after the link: %d %s", code, body)
	}
	// The page is HTML for a browser.
	code, body = h.do(t, "GET", "/dev/inbox", "", nil)
	if code != http.StatusOK || !strings.Contains(string(body), "消息收件箱") || !strings.Contains(string(body), caseID) {
		t.Errorf("GET /dev/inbox = %d", code)
	}
}
