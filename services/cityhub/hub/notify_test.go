package hub_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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

// The README's notification tour in Chromium: a gas leak at the embedded
// hub; the SMS to the person on duty in the dev inbox; its link opened on
// a phone-sized screen and the part accepted there; the wall screen shows
// the case accepted, and the console's case view lists every delivery
// attempt and says the accept came through the SMS link.
func TestNotificationTour(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	viewer := h.token(t, auth.Principal{Subject: "wall-screen", Role: auth.RoleViewer})
	source := h.token(t, auth.Principal{Subject: "gas-sensors", Role: auth.RoleSource, Sources: []string{"iot"}})

	wall := browser(t)
	wall, cancel := context.WithTimeout(wall, 5*pageWait)
	defer cancel()
	do(t, wall, "open the wall screen", chromedp.Navigate(h.info.URL+"/#token="+viewer))
	waitFor(t, wall, "the wall screen to connect", `document.querySelector('#conn').dataset.state === 'connected'`)

	ev := map[string]any{
		"id": "gas-tour-1", "source": "iot", "type": "gas_leak", "occurred_at": time.Now().UTC().Format(time.RFC3339),
		"location": map[string]any{"district": "xuhui", "street": "tianping", "address": "天平路 100 号"},
		"attrs":    map[string]any{"lel_percent": 32, "sensor_id": "g-17"},
	}
	if code, body := h.do(t, "POST", "/v1/events", source, ev); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events = %d %s", code, body)
	}

	inbox := newTab(t, wall, "inbox")
	sms := `document.querySelector('article[data-receiver="sms"] a.ack')`
	for deadline := time.Now().Add(pageWait); ; {
		do(t, inbox, "open the dev inbox", chromedp.Navigate(h.info.URL+"/dev/inbox"))
		if eval[bool](t, inbox, sms+` !== null`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no SMS with an acknowledgement link in the dev inbox")
		}
		time.Sleep(300 * time.Millisecond)
	}
	caseID := eval[string](t, inbox, `document.querySelector('article[data-receiver="sms"]').dataset.case`)
	ackURL := eval[string](t, inbox, sms+`.href`)
	inboxPNG := saveScreenshot(t, inbox, "inbox")

	phone := newTab(t, wall, "phone")
	do(t, phone, "open the link on a phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(ackURL))
	waitFor(t, phone, "the accept button", `document.querySelector('button.accept') !== null`)
	ackPNG := saveScreenshot(t, phone, "ack")
	do(t, phone, "accept", chromedp.Click(chromedp.CSS(`button.accept`)))
	// The form posts and the page is replaced by the answer.
	for deadline := time.Now().Add(pageWait); ; {
		done, err := chromedp.Run(phone, chromedp.Evaluate[bool](`document.querySelector('.done') !== null`))
		if err == nil && done {
			break
		}
		if time.Now().After(deadline) {
			saveScreenshot(t, phone, "failed-ack")
			t.Fatalf("the link's page did not say the part was accepted (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	donePNG := saveScreenshot(t, phone, "ack-done")

	// The case waits for its assisting departments too: the wall shows the
	// gas company's part signed for.
	waitFor(t, wall, "the gas company's signature on the wall", `(() => {
		const row = document.querySelector('#cases [data-case-id="`+caseID+`"]');
		return row && (row.dataset.status === 'accepted' || /^[1-9]/.test(row.dataset.signed || ''));
	})()`)

	console := newTab(t, wall, "console")
	do(t, console, "open the console", chromedp.Navigate(h.info.URL+"/console"))
	devSignIn(t, console, "department", "gas")
	openInConsole(t, console, caseID)
	waitFor(t, console, "the delivery attempts", `!document.querySelector('#d-notify').hidden && document.querySelectorAll('#d-notifications li[data-outcome="sent"][data-receiver="sms"]').length >= 1`)
	waitFor(t, console, "the accept through the link", `[...document.querySelectorAll('#d-history .via')].some((p) => p.textContent.includes('sms'))`)
	consolePNG := saveScreenshot(t, console, "console-notifications")

	if *updateScreenshots {
		dir := filepath.Join("..", "..", "..", "docs", "screenshots")
		for name, png := range map[string][]byte{"inbox.png": inboxPNG, "ack.png": ackPNG, "ack-done.png": donePNG, "console-notifications.png": consolePNG} {
			if len(png) == 0 {
				t.Fatalf("no screenshot for %s", name)
			}
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
