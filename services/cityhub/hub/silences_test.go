package hub_test

import (
	"context"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// silenceView is what GET /v1/silences/{id} answers, as far as the test
// reads it.
type silenceView struct {
	ID        string              `json:"id"`
	Source    string              `json:"source"`
	State     string              `json:"state"`
	Matchers  map[string][]string `json:"matchers"`
	EndsAt    time.Time           `json:"ends_at"`
	Comment   string              `json:"comment"`
	CreatedBy string              `json:"created_by"`
	ExpiredBy string              `json:"expired_by"`
}

// mutedAlert is an alert of the live feed with what mutes it.
type mutedAlert struct {
	ID         string   `json:"id"`
	Rule       string   `json:"rule"`
	State      string   `json:"state"`
	SilencedBy []string `json:"silenced_by"`
}

// TestSilenceFromTheConsole has a dispatcher of one district mute a rule
// on one street through the console's form, at a desk's 1280×800: the hub
// refuses a silence without a reason and the form says so beside the
// comment; the silence it takes is listed. An event that fires the rule on
// that street then shows on the wall dimmed, with the reason on hover, and
// opens no case, while the same rule on another street opens one; the
// console offers to silence that case's alert too, prefilled. Ending the
// silence from the console takes it off the list and the alert is no
// longer muted on the wall.
func TestSilenceFromTheConsole(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	dispatcher := h.token(t, auth.Principal{Subject: "xuhui-dispatch", Role: auth.RoleDispatcher, Districts: []string{"xuhui"}})
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	viewer := h.token(t, auth.Principal{Subject: "wall-screen", Role: auth.RoleViewer})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot"}})
	const rule = "flood-control/deep-waterlogging"

	console := browser(t)
	console, cancel := context.WithTimeout(console, 6*pageWait)
	defer cancel()
	do(t, console, "open the console at 1280×800", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(h.info.URL+"/console"))
	waitFor(t, console, "the sign-in form", `!document.querySelector('#signin').hidden`)
	do(t, console, "sign in as the dispatcher of xuhui",
		chromedp.SetValue(chromedp.CSS(`#token-input`), dispatcher),
		chromedp.Click(chromedp.CSS(`#token-submit`)),
	)
	waitFor(t, console, "the console to connect", `document.querySelector('#conn').dataset.state === 'connected'`)
	do(t, console, "open the silences", chromedp.Click(chromedp.CSS(`#silences-toggle`)))
	waitFor(t, console, "the silences in place of the case", `!document.querySelector('#silences').hidden && document.querySelector('#detail').hidden && !document.querySelector('#sil-empty').hidden`)
	// The dispatcher may silence its own district only, and must name it:
	// the form offers that one and no "any district".
	if got := eval[[]string](t, console, `[...document.querySelectorAll('#sil-district option')].map((o) => o.value)`); !slices.Equal(got, []string{"xuhui"}) {
		t.Errorf("the form offers the districts %q, want only xuhui", got)
	}

	// Without a reason the hub refuses, naming the comment; the form shows
	// its message beside the comment and nothing is set.
	do(t, console, "set a silence without a reason",
		chromedp.SetValue(chromedp.CSS(`#sil-rule`), rule),
		chromedp.SetValue(chromedp.CSS(`#sil-street`), "tianping"),
		chromedp.SetValue(chromedp.CSS(`#sil-duration`), "4"),
		chromedp.Click(chromedp.CSS(`#sil-submit`)),
	)
	waitFor(t, console, "the hub's reason beside the comment", `!document.querySelector('[data-error-for="comment"]').hidden`)
	if msg := eval[string](t, console, `document.querySelector('[data-error-for="comment"]').textContent`); msg != "必填" {
		t.Errorf("the comment's error reads %q, want the hub's reason in Chinese (必填)", msg)
	}
	if ok := eval[bool](t, console, `document.querySelector('[data-field="comment"]').classList.contains('invalid') && document.querySelector('#sil-error').hidden && document.querySelector('[data-error-for="rule"]').hidden`); !ok {
		t.Error("the refusal is not shown on the comment alone")
	}
	saveScreenshot(t, console, "console-silence-refused")
	if n := len(silences(t, h, commander)); n != 0 {
		t.Fatalf("a refused silence was kept: %d silences", n)
	}

	const reason = "天平路泵站检修，积水由现场人员处置"
	do(t, console, "set the silence with a reason",
		chromedp.SetValue(chromedp.CSS(`#sil-comment`), reason),
		chromedp.Click(chromedp.CSS(`#sil-submit`)),
	)
	row := `#sil-list li[data-source="api"][data-state="active"]`
	waitFor(t, console, "the silence in the list", `document.querySelector('`+row+`') !== null && document.querySelector('[data-error-for="comment"]').hidden && document.querySelector('#sil-notice').dataset.kind === 'done'`)
	id := eval[string](t, console, `document.querySelector('`+row+`').dataset.silenceId`)
	text := eval[string](t, console, `document.querySelector('`+row+`').textContent`)
	for _, want := range []string{rule, "徐汇区", "tianping", reason, "xuhui-dispatch"} {
		if !strings.Contains(text, want) {
			t.Errorf("the silence's row reads %q, without %q", text, want)
		}
	}
	sil := silenceByID(t, h, commander, id)
	wantMatchers := map[string][]string{"rule": {rule}, "district": {"xuhui"}, "street": {"tianping"}}
	if sil.Source != "api" || sil.State != "active" || sil.CreatedBy != "xuhui-dispatch" || sil.Comment != reason || !maps.EqualFunc(sil.Matchers, wantMatchers, slices.Equal) {
		t.Errorf("the hub keeps %+v, want the form's silence", sil)
	}
	if left := time.Until(sil.EndsAt); left < 3*time.Hour || left > 4*time.Hour {
		t.Errorf("the silence ends in %v, want the 4 hours chosen", left)
	}
	if n := eval[string](t, console, `document.querySelector('#silences-count').hidden ? '' : document.querySelector('#silences-count').textContent`); n != "1" {
		t.Errorf("the silences button counts %q active, want 1", n)
	}

	wall := newTab(t, console, "wall")
	do(t, wall, "open the wall screen", chromedp.Navigate(h.info.URL+"/#token="+viewer))
	waitFor(t, wall, "the wall screen to connect", `document.querySelector('#conn').dataset.state === 'connected'`)
	waitFor(t, wall, "the active silence counted", `!document.querySelector('#silences-active').hidden && document.querySelector('#silences-active').dataset.count === '1'`)

	ws := subscribe(t, h, commander)
	await(t, ws, "the alerts snapshot", func(f frame) bool { return f.Type == "snapshot" && f.Stream == "alerts" })
	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("silenced-1", 45)); code != http.StatusAccepted {
		t.Fatalf("POST the event under the silence = %d %s", code, body)
	}
	muted := decode[mutedAlert](t, await(t, ws, "the silenced alert", func(f frame) bool { return f.Type == "alert" }).Data)
	if muted.Rule != rule || muted.State != "firing" || !slices.Equal(muted.SilencedBy, []string{id}) {
		t.Fatalf("the alert under the silence is %+v, want %s firing, silenced by %s", muted, rule, id)
	}
	// The same rule on another street of the district: not silenced, it
	// opens a case. The district keeps its order through Kafka, so once
	// this case is open the silenced alert has been through dispatch too.
	other := waterlogging("yongjia-1", 40)
	other["location"] = map[string]any{"district": "xuhui", "street": "yongjia", "lon": 121.44, "lat": 31.21}
	if code, body := h.do(t, "POST", "/v1/events", source, other); code != http.StatusAccepted {
		t.Fatalf("POST the other street's event = %d %s", code, body)
	}
	frames := awaitEach(t, ws, "the other street's alert and case",
		func(f frame) bool { return f.Type == "alert" && decode[mutedAlert](t, f.Data).ID != muted.ID },
		func(f frame) bool { return f.Type == "case" })
	loud, opened := decode[mutedAlert](t, frames[0].Data), decode[item](t, frames[1].Data)
	if len(loud.SilencedBy) != 0 {
		t.Errorf("the alert of another street is silenced by %v", loud.SilencedBy)
	}
	if opened.AlertID != loud.ID {
		t.Fatalf("the case opened is of alert %s, want %s (the silenced alert is %s)", opened.AlertID, loud.ID, muted.ID)
	}
	code, body := h.do(t, "GET", "/v1/cases?district=xuhui", commander, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/cases = %d %s", code, body)
	}
	for _, c := range decode[struct{ Items []item }](t, body).Items {
		if c.AlertID == muted.ID {
			t.Errorf("the silenced alert opened case %s", c.ID)
		}
	}

	mutedRow := `#alerts [data-alert-id="` + muted.ID + `"]`
	waitFor(t, wall, "the silenced alert dimmed on the wall", `document.querySelector('`+mutedRow+`')?.dataset.muted === 'silenced' && document.querySelector('`+mutedRow+`').classList.contains('muted')`)
	waitFor(t, wall, "the silence's reason on the alert", `document.querySelector('`+mutedRow+`').title.includes('`+reason+`')`)
	if dimmed := eval[bool](t, wall, `document.querySelector('#alerts [data-alert-id="`+loud.ID+`"]')?.classList.contains('muted') ?? true`); dimmed {
		t.Error("the alert of the other street is dimmed or missing on the wall")
	}
	saveScreenshot(t, wall, "wall-silenced")

	// From the other street's case, a silence of its alert: the form comes
	// prefilled with its rule, district and street.
	do(t, console, "back to the cases", chromedp.Click(chromedp.CSS(`#sil-close`)))
	openInConsole(t, console, opened.ID)
	waitFor(t, console, "the shortcut to silence the case's alert", `!document.querySelector('#d-silence').hidden`)
	do(t, console, "silence the case's alert", chromedp.Click(chromedp.CSS(`#d-silence`)))
	waitFor(t, console, "the prefilled form", `!document.querySelector('#silences').hidden && document.querySelector('#sil-street').value === 'yongjia'`)
	if got := eval[[]string](t, console, `['#sil-rule', '#sil-district', '#sil-street'].map((s) => document.querySelector(s).value)`); !slices.Equal(got, []string{rule, "xuhui", "yongjia"}) {
		t.Errorf("the shortcut fills the form with %q, want the case's rule, district and street", got)
	}
	do(t, console, "type a reason", chromedp.SetValue(chromedp.CSS(`#sil-comment`), "永嘉路管网改造，至今晚收工"))
	if wide := eval[bool](t, console, `document.documentElement.scrollWidth > window.innerWidth || document.querySelector('#silences').scrollWidth > document.querySelector('#silences').clientWidth`); wide {
		t.Error("the silences do not fit a 1280-pixel-wide window")
	}
	consolePNG := saveScreenshot(t, console, "console-silences")

	// End the first silence from the console: it leaves the list, the hub
	// records who ended it, and the alert is no longer muted.
	do(t, console, "end the silence", chromedp.Click(chromedp.CSS(`#sil-list li[data-silence-id="`+id+`"] button[data-expire]`)))
	waitFor(t, console, "the silence off the list", `document.querySelector('#sil-list li[data-silence-id="`+id+`"]') === null && document.querySelector('#sil-notice-text').textContent.includes('`+id+`')`)
	if sil := silenceByID(t, h, commander, id); sil.State != "expired" || sil.ExpiredBy != "xuhui-dispatch" {
		t.Errorf("after the console ended it the hub has %+v, want expired by xuhui-dispatch", sil)
	}
	waitFor(t, wall, "the alert no longer muted on the wall", `(() => { const r = document.querySelector('`+mutedRow+`'); return r !== null && !r.classList.contains('muted') && r.dataset.muted === undefined; })()`)

	// Narrower, the desk stacks the queue above the silences, and the
	// form above the list.
	do(t, console, "narrow the console", chromedp.EmulateViewport(900, 800))
	waitFor(t, console, "the narrow layout", `document.querySelector('#sil-form').getBoundingClientRect().bottom <= document.querySelector('#sil-list').getBoundingClientRect().top`)
	if wide := eval[bool](t, console, `document.documentElement.scrollWidth > window.innerWidth`); wide {
		t.Error("the console does not fit a 900-pixel-wide window")
	}
	saveScreenshot(t, console, "console-silences-narrow")

	// In English, the form's own choices follow.
	do(t, console, "switch to English", chromedp.Click(chromedp.CSS(`#lang`)))
	waitFor(t, console, "the silences in English", `document.querySelector('#sil-heading').textContent.startsWith('Alert silences') && document.querySelector('#sil-duration option[value="2"]').textContent === '2 h' && document.querySelector('#sil-district').selectedOptions[0].textContent === 'Xuhui'`)
	if wide := eval[bool](t, console, `document.documentElement.scrollWidth > window.innerWidth`); wide {
		t.Error("the console in English does not fit a 900-pixel-wide window")
	}
	saveScreenshot(t, console, "console-silences-en")

	if *updateScreenshots {
		dir := filepath.Join("..", "..", "..", "docs", "screenshots")
		if len(consolePNG) == 0 {
			t.Fatal("no screenshot of the console's silences")
		}
		if err := os.WriteFile(filepath.Join(dir, "console-silences.png"), consolePNG, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// silences lists the silences tok may see.
func silences(t *testing.T, h *running, tok string) []silenceView {
	t.Helper()
	code, body := h.do(t, "GET", "/v1/silences", tok, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/silences = %d %s", code, body)
	}
	return decode[struct{ Items []silenceView }](t, body).Items
}

func silenceByID(t *testing.T, h *running, tok, id string) silenceView {
	t.Helper()
	code, body := h.do(t, "GET", "/v1/silences/"+id, tok, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/silences/%s = %d %s", id, code, body)
	}
	return decode[silenceView](t, body)
}
