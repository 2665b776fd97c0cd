package hub_test

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "also write the screenshots of both screens to docs/screenshots")

// pageWait bounds one wait for the page: a hub restart and the page's
// backoff fit in it with room to spare on a loaded machine.
const pageWait = 60 * time.Second

// browser starts headless Chromium for t and returns the context of its
// first tab, with a 1920×1080 viewport (a wall screen). The suite needs
// Chromium: a machine without it fails the test with how to install it,
// never skips.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		t.Fatal("no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM to its path")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1920, 1080),
		// Nothing may leave the machine; without these Chromium keeps
		// trying to reach its vendor's services.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// A tab in the background must keep its timers: the wall screen
		// ticks while the console tab is in front.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return newTab(t, ctx, "tab1")
}

// newTab opens a tab next to the one of parent (the first call of the
// browser opens the browser itself) with a 1920×1080 viewport, and copies
// what its pages log as warnings, errors and exceptions into the test log.
func newTab(t *testing.T, parent context.Context, name string) context.Context {
	t.Helper()
	ctx := parent
	if chromedp.FromContext(parent).Target != nil {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(parent)
		t.Cleanup(cancel)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1920, 1080)); err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range chromedp.Console(lctx) {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleWarning, chromedp.ConsoleError, chromedp.ConsoleException:
				t.Logf("%s console %s", name, m)
			}
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	return ctx
}

// waitFor polls a JavaScript expression in the page until it is true. On
// failure it saves a screenshot and logs what the page shows.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(pageWait), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err == nil {
		return
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ''`))
	saveScreenshot(t, ctx, "failed-"+strings.NewReplacer(" ", "-", "/", "-").Replace(what))
	t.Fatalf("waiting for %s: %v\nthe page shows:\n%s", what, err, text)
}

// eval runs a JavaScript expression in the page and returns its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// do runs browser steps or fails the test.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		saveScreenshot(t, ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

// saveScreenshot keeps what the tab shows as a test artifact (go test
// -artifacts) and returns the PNG.
func saveScreenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return nil
	}
	out := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
		return png
	}
	t.Logf("screenshot: %s", out)
	return png
}

// TestWallScreenShowsAlertAndCase opens the wall screen in Chromium, posts a
// waterlogging event, and waits for its alert and case on the page.
func TestWallScreenShowsAlertAndCase(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	viewer := h.token(t, auth.Principal{Subject: "wall", Role: auth.RoleViewer})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*pageWait)
	defer cancel()
	do(t, ctx, "open the wall screen", chromedp.Navigate(h.info.URL+"/#token="+viewer))
	waitFor(t, ctx, "the wall screen to connect", `document.querySelector('#conn')?.dataset.state === 'connected'`)
	// The token left the address bar once the page had it.
	if !eval[bool](t, ctx, `!location.href.includes('token=')`) {
		t.Error("the token is still in the address bar")
	}

	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("page-1", 45)); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	waitFor(t, ctx, "the alert", `document.querySelector('#alerts [data-alert-id][data-severity="severe"]') !== null`)
	waitFor(t, ctx, "the case", `document.querySelector('#cases [data-case-id][data-status="dispatched"]') !== null`)
	if title := eval[string](t, ctx, `document.querySelector('[data-case-id] .title .line').textContent`); !strings.Contains(title, "tianping") {
		t.Errorf("the case row reads %q, want its title", title)
	}
	// The countdown of the running deadline says how long is left to accept.
	waitFor(t, ctx, "the accept countdown", `document.querySelector('[data-case-id] .due .what').textContent === '签收剩余' && /^\d+:\d\d$/.test(document.querySelector('[data-case-id] .due .t').textContent)`)
	waitFor(t, ctx, "the counters", `document.querySelector('#count-severity-severe').dataset.count === '1' && document.querySelector('#count-status-dispatched').dataset.count === '1'`)
	waitFor(t, ctx, "the district on the map", `document.querySelector('#map [data-district="xuhui"]')?.dataset.alerts === '1'`)
	// The sources speaking, read again every 15 seconds.
	waitFor(t, ctx, "the source on the wall", `document.querySelector('#sources [data-source="iot"]') !== null && document.querySelector('#source-total').dataset.count !== '0'`)
	saveScreenshot(t, ctx, "wall-screen")
}
