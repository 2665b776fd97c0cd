package hub_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// browser starts headless Chromium for t. The suite needs it: a machine
// without it fails the test with how to install it, never skips.
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
		chromedp.WindowSize(1600, 900),
		// Nothing may leave the machine; without these Chromium keeps
		// trying to reach its vendor's services.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// TestWallScreenShowsAlertAndCase opens the wall screen in Chromium, posts a
// waterlogging event, and waits for its alert and case on the page.
func TestWallScreenShowsAlertAndCase(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	viewer := h.token(t, auth.Principal{Subject: "wall", Role: auth.RoleViewer})
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource})

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(h.info.URL+"/#token="+viewer),
		chromedp.Poll[chromedp.Void](`document.querySelector('#conn')?.dataset.state === 'connected'`),
	); err != nil {
		t.Fatalf("the wall screen did not connect: %v", err)
	}
	// The token left the address bar once the page had it.
	clean, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!location.href.includes('token=')`))
	if err != nil {
		t.Fatal(err)
	}
	if !clean {
		t.Error("the token is still in the address bar")
	}

	if code, body := h.do(t, "POST", "/v1/events", source, waterlogging("page-1", 45)); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	if err := chromedp.Do(ctx,
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-alert-id]') !== null`),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-case-id][data-status="dispatched"]') !== null`),
	); err != nil {
		t.Fatalf("the alert and the case did not appear on the wall screen: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Text(`[data-case-id]`))
	if err != nil {
		t.Fatal(err)
	}
	if title == "" {
		t.Error("the case row is empty")
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.ArtifactDir(), "wall-screen.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}
