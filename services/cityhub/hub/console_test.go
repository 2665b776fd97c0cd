package hub_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// devSignIn signs the console of tab in through the hub's dev sign-in as
// role (and department), and waits until it follows the live feed.
func devSignIn(t *testing.T, ctx context.Context, role, dept string) {
	t.Helper()
	waitFor(t, ctx, "the dev sign-in form", `!document.querySelector('#dev-form').hidden && document.querySelector('#dev-role').options.length > 0`)
	do(t, ctx, "dev sign-in",
		chromedp.SetValue(chromedp.CSS(`#dev-role`), role),
		chromedp.SetValue(chromedp.CSS(`#dev-dept`), dept),
		chromedp.Click(chromedp.CSS(`#dev-submit`)),
	)
	waitFor(t, ctx, "the console to sign in and connect", `!document.querySelector('#desk').hidden && document.querySelector('#conn').dataset.state === 'connected'`)
}

// openInConsole waits for a case in the console's queue, opens it and
// waits for its detail.
func openInConsole(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	row := `#queue tr[data-case-id="` + id + `"]`
	waitFor(t, ctx, "the case in the queue", `document.querySelector('`+row+`') !== null`)
	do(t, ctx, "open the case", chromedp.Click(chromedp.CSS(row)))
	waitFor(t, ctx, "the case's detail", `document.querySelector('#detail').dataset.caseId === '`+id+`'`)
}

// firstCase waits for a case on the page and returns its id.
func firstCase(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	waitFor(t, ctx, "a case", `document.querySelector('`+selector+`') !== null`)
	return eval[string](t, ctx, `document.querySelector('`+selector+`').dataset.caseId`)
}

// TestConsoleActsAndWallFollows signs the console in as the lead
// department through the dev sign-in, accepts and handles a case with the
// buttons the hub allows, and watches a wall screen in a second tab follow
// each step live.
func TestConsoleActsAndWallFollows(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	viewer := h.token(t, auth.Principal{Subject: "wall", Role: auth.RoleViewer})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})

	wall := browser(t)
	wall, cancel := context.WithTimeout(wall, 5*pageWait)
	defer cancel()
	do(t, wall, "open the wall screen", chromedp.Navigate(h.info.URL+"/#token="+viewer))
	waitFor(t, wall, "the wall screen to connect", `document.querySelector('#conn').dataset.state === 'connected'`)

	console := newTab(t, wall, "console")
	do(t, console, "open the console", chromedp.Navigate(h.info.URL+"/console"))
	// Water standing 20 cm deep is the drainage company's alone.
	devSignIn(t, console, "department", "drainage")
	if who := eval[string](t, console, `document.querySelector('#who').textContent`); !strings.Contains(who, "dev-department-drainage") {
		t.Errorf("the console names its user %q, want the dev sign-in's subject", who)
	}

	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("console-1", 20)); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	id := firstCase(t, console, `#queue tr[data-case-id][data-status="dispatched"]`)
	openInConsole(t, console, id)
	waitFor(t, wall, "the case on the wall", `document.querySelector('#cases [data-case-id="`+id+`"][data-status="dispatched"]') !== null`)

	// Accept: one click, no reason needed.
	waitFor(t, console, "the accept button", `document.querySelector('#actions button[data-action="accept"]') !== null`)
	do(t, console, "accept", chromedp.Click(chromedp.CSS(`#actions button[data-action="accept"]`)))
	waitFor(t, console, "the case accepted in the console", `document.querySelector('#detail').dataset.status === 'accepted' && document.querySelector('#notice').dataset.kind === 'done'`)
	waitFor(t, wall, "the wall to follow the accept", `document.querySelector('#cases [data-case-id="`+id+`"]')?.dataset.status === 'accepted'`)
	waitFor(t, console, "the handle countdown", `document.querySelector('#d-deadlines .due[data-what="handle"]') !== null`)

	// Ask for more time: an action that needs more than a note shows its
	// fields on the first click and goes out on the second.
	do(t, console, "ask for an extension", chromedp.Click(chromedp.CSS(`#actions button[data-action="request_extension"]`)))
	waitFor(t, console, "the extension's fields", `!document.querySelector('[data-field="extend_by"]').hidden && document.querySelector('#actions button.armed') !== null`)
	do(t, console, "confirm the extension",
		chromedp.SetValue(chromedp.CSS(`#a-extend-by`), "2h"),
		chromedp.SetValue(chromedp.CSS(`#note`), "需封闭车道施工，申请延期"),
		chromedp.Click(chromedp.CSS(`#actions button[data-action="request_extension"]`)),
	)
	waitFor(t, console, "the pending extension", `document.querySelector('#d-flags .flag-extension') !== null && document.querySelector('[data-field="extend_by"]').hidden`)

	// Handle, with a report of what was done.
	waitFor(t, console, "the handle button", `document.querySelector('#actions button[data-action="handle"]') !== null`)
	if accept := eval[bool](t, console, `document.querySelector('#actions button[data-action="accept"]') !== null`); accept {
		t.Error("the console still offers accept on an accepted case")
	}
	const report = "已抽排积水，道路恢复通行"
	do(t, console, "handle",
		chromedp.SetValue(chromedp.CSS(`#note`), report),
		chromedp.Click(chromedp.CSS(`#actions button[data-action="handle"]`)),
	)
	waitFor(t, console, "the case handled in the console", `document.querySelector('#detail').dataset.status === 'handled'`)
	waitFor(t, wall, "the wall to follow the handle", `document.querySelector('#cases [data-case-id="`+id+`"]')?.dataset.status === 'handled'`)
	waitFor(t, console, "the report in the history", `[...document.querySelectorAll('#d-history li[data-action]')].some(li => li.textContent.includes('`+report+`'))`)
	waitFor(t, console, "the queue row to follow", `document.querySelector('#queue tr[data-case-id="`+id+`"]')?.dataset.status === 'handled'`)
	if n := eval[int](t, console, `document.querySelectorAll('#actions button[data-action="accept"], #actions button[data-action="handle"]').length`); n != 0 {
		t.Errorf("a handled case still offers the department %d accept or handle buttons", n)
	}
	saveScreenshot(t, console, "console-handled")
	saveScreenshot(t, wall, "wall-following-console")
}

// TestConsoleRefreshesOnStaleVersion holds the console's live feed back,
// changes the case through the API behind its back, and clicks a button
// with the version the page still shows: the hub answers 409 and the
// console must say so and show the case as it now is.
func TestConsoleRefreshesOnStaleVersion(t *testing.T) {
	redis := redistest.Start(t)
	proxy := newFeedProxy(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL, AllowedOrigins: []string{proxy.URL()}})
	proxy.forwardTo(h.info.URL)
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 4*pageWait)
	defer cancel()
	// A pasted token, this time.
	do(t, ctx, "open the console", chromedp.Navigate(proxy.URL()+"/console"))
	waitFor(t, ctx, "the sign-in form", `!document.querySelector('#signin').hidden`)
	do(t, ctx, "paste a token",
		chromedp.SetValue(chromedp.CSS(`#token-input`), commander),
		chromedp.Click(chromedp.CSS(`#token-submit`)),
	)
	waitFor(t, ctx, "the console to connect", `document.querySelector('#conn').dataset.state === 'connected'`)

	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("stale-1", 20)); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	id := firstCase(t, ctx, `#queue tr[data-case-id]`)
	openInConsole(t, ctx, id)
	waitFor(t, ctx, "the accept button", `document.querySelector('#actions button[data-action="accept"]') !== null`)
	shown := eval[string](t, ctx, `document.querySelector('#detail').dataset.version`)

	// Behind the console's back: the live feed is held, and the department
	// accepts by itself.
	proxy.hold()
	drainage := h.token(t, auth.Principal{Subject: "drainage-duty", Role: auth.RoleDepartment, Dept: "drainage"})
	v, _ := strconv.Atoi(shown)
	code, body := h.do(t, "POST", "/v1/cases/"+id+"/actions", drainage, map[string]any{
		"action": "accept", "expected_version": v, "request_id": "behind-the-back",
	})
	if code != http.StatusOK {
		t.Fatalf("accept through the API = %d %s", code, body)
	}
	if now := eval[string](t, ctx, `document.querySelector('#detail').dataset.version`); now != shown {
		t.Fatalf("the console saw v%s while its feed was held; the test cannot make it stale", now)
	}

	do(t, ctx, "act on the stale case", chromedp.Click(chromedp.CSS(`#actions button[data-action="accept"]`)))
	waitFor(t, ctx, "the conflict notice", `document.querySelector('#notice').dataset.kind === 'conflict' && !document.querySelector('#notice').hidden`)
	waitFor(t, ctx, "the refreshed case", `document.querySelector('#detail').dataset.status === 'accepted' && document.querySelector('#detail').dataset.version !== '`+shown+`'`)
	notice := eval[string](t, ctx, `document.querySelector('#notice-text').textContent`)
	if !strings.Contains(notice, "v"+shown) {
		t.Errorf("the notice reads %q, want it to name the version the page had (v%s)", notice, shown)
	}
	saveScreenshot(t, ctx, "console-conflict")
	proxy.release()

	// An action that needs a reason is refused by the page itself, before
	// it asks the hub, when the note is empty.
	waitFor(t, ctx, "the comment button", `document.querySelector('#actions button[data-action="comment"]') !== null`)
	if note := eval[string](t, ctx, `document.querySelector('#note').value`); note != "" {
		t.Fatalf("the note holds %q before anything was typed", note)
	}
	do(t, ctx, "comment without a note", chromedp.Click(chromedp.CSS(`#actions button[data-action="comment"]`)))
	waitFor(t, ctx, "the missing-note error", `!document.querySelector('#act-error').hidden`)
}

// TestConsoleSignInRefusals pastes a token the hub does not take: the
// console says why, with the hub's message, and stays signed out.
func TestConsoleSignInRefusals(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 2*pageWait)
	defer cancel()
	do(t, ctx, "open the console", chromedp.Navigate(h.info.URL+"/console"))
	waitFor(t, ctx, "the sign-in form", `!document.querySelector('#signin').hidden`)
	do(t, ctx, "paste a bad token",
		chromedp.SetValue(chromedp.CSS(`#token-input`), "not-a-token"),
		chromedp.Click(chromedp.CSS(`#token-submit`)),
	)
	waitFor(t, ctx, "the refusal", `!document.querySelector('#token-error').hidden && document.querySelector('#token-error').textContent.includes('unauthenticated')`)
	if signedIn := eval[bool](t, ctx, `!document.querySelector('#desk').hidden`); signedIn {
		t.Error("a bad token opened the desk")
	}
}
