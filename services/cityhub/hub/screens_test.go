package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// cityEvents is an afternoon of a city: alerts of every severity across
// the districts, most of them opening cases.
func cityEvents() []map[string]any {
	now := time.Now().UTC().Format(time.RFC3339)
	ev := func(id, source, typ, district, street, address string, attrs map[string]any) map[string]any {
		return map[string]any{
			"id": id, "source": source, "type": typ, "occurred_at": now,
			"location": map[string]any{"district": district, "street": street, "address": address},
			"attrs":    attrs,
		}
	}
	return []map[string]any{
		ev("s-gas-1", "iot", "gas_leak", "huangpu", "nanjing-dong", "南京东路 353 号地下商场", map[string]any{"lel_percent": 32, "sensor_id": "hp-g-017"}),
		ev("s-water-1", "iot", "waterlogging", "xuhui", "tianping", "天平路 广元路口", map[string]any{"water_depth_cm": 45}),
		ev("s-water-2", "video", "waterlogging", "pudong", "zhangyang", "张杨路 浦东南路口", map[string]any{"water_depth_cm": 38}),
		ev("s-water-3", "iot", "waterlogging", "changning", "yuyuan", "愚园路 江苏路口", map[string]any{"water_depth_cm": 22}),
		ev("s-cover-1", "inspector", "manhole_cover_missing", "jingan", "nanjing-xi", "南京西路 1266 号", map[string]any{"cover_id": "ja-0042"}),
		ev("s-cover-2", "iot", "manhole_cover_displaced", "hongkou", "sichuan-bei", "四川北路 1545 号", map[string]any{"cover_id": "hk-0311", "displacement_cm": 8}),
		ev("s-rain-1", "iot", "rainfall", "minhang", "", "", map[string]any{"rain_mm_h": 62, "gauge_id": "mh-r-03"}),
		ev("s-smell-1", "hotline", "gas_smell_report", "yangpu", "changyang", "长阳路 1080 弄", map[string]any{}),
		ev("s-smell-2", "hotline", "gas_smell_report", "yangpu", "changyang", "长阳路 1080 弄", map[string]any{}),
		ev("s-gas-2", "iot", "gas_leak", "putuo", "zhenping", "真北路 3199 号", map[string]any{"lel_percent": 12, "sensor_id": "pt-g-004"}),
		ev("s-water-4", "iot", "waterlogging", "baoshan", "youyi", "友谊路 牡丹江路口", map[string]any{"water_depth_cm": 18}),
	}
}

// seedCity posts cityEvents and moves some of their cases along, and
// returns the ids of the cases by district.
func seedCity(t *testing.T, h *running) map[string]string {
	t.Helper()
	source := h.token(t, auth.Principal{Subject: "iot-platform", Role: auth.RoleSource, Sources: []string{"iot", "video", "hotline", "inspector"}})
	commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
	if code, body := h.do(t, "POST", "/v1/events", source, cityEvents()); code != http.StatusAccepted {
		t.Fatalf("POST the city's events = %d %s", code, body)
	}
	ids := map[string]string{}
	deadline := time.Now().Add(pageWait)
	for len(ids) < 9 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 9 cases opened: %v", len(ids), ids)
		}
		_, body := h.do(t, "GET", "/v1/cases?status=open", commander, nil)
		for _, c := range decode[struct{ Items []item }](t, body).Items {
			var full struct {
				District string `json:"district"`
			}
			_, b := h.do(t, "GET", "/v1/cases/"+c.ID, commander, nil)
			json.Unmarshal(b, &full)
			ids[full.District] = c.ID
		}
		time.Sleep(100 * time.Millisecond) // polling the API, not asserting on time
	}
	act := func(id string, p auth.Principal, action, note string) {
		tok := h.token(t, p)
		_, body := h.do(t, "GET", "/v1/cases/"+id, tok, nil)
		v := decode[item](t, body).Version
		req := map[string]any{"action": action, "department": p.Dept, "expected_version": v, "request_id": fmt.Sprintf("seed-%s-%s-%d", action, id, v)}
		if note != "" {
			req["note"] = note
		}
		if code, body := h.do(t, "POST", "/v1/cases/"+id+"/actions", tok, req); code != http.StatusOK {
			t.Fatalf("%s %s = %d %s", action, id, code, body)
		}
	}
	water := auth.Principal{Subject: "water-duty", Role: auth.RoleDepartment, Dept: "water-affairs"}
	drainage := auth.Principal{Subject: "drainage-duty", Role: auth.RoleDepartment, Dept: "drainage"}
	gas := auth.Principal{Subject: "gas-duty", Role: auth.RoleDepartment, Dept: "gas"}
	act(ids["xuhui"], water, "accept", "")
	act(ids["xuhui"], water, "comment", "泵车已到场，预计 40 分钟排空")
	act(ids["changning"], drainage, "accept", "")
	act(ids["changning"], drainage, "handle", "疏通雨水口 2 处，积水已退")
	act(ids["huangpu"], gas, "accept", "")
	return ids
}

// TestScreens draws both screens over a busy city: the wall screen at
// 1920×1080 in Chinese and English, and the console with a case open. It
// checks that the district map keeps every tile and label apart and that
// the language choice survives a reload, saves the screenshots as
// artifacts, and with -update-screenshots also writes them to
// docs/screenshots.
func TestScreens(t *testing.T) {
	redis := redistest.Start(t)
	h := startHub(t, hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL})
	viewer := h.token(t, auth.Principal{Subject: "wall-screen", Role: auth.RoleViewer})

	wall := browser(t)
	wall, cancel := context.WithTimeout(wall, 5*pageWait)
	defer cancel()
	do(t, wall, "open the wall screen", chromedp.Navigate(h.info.URL+"/#token="+viewer))
	waitFor(t, wall, "the wall screen to connect", `document.querySelector('#conn').dataset.state === 'connected'`)
	ids := seedCity(t, h)

	waitFor(t, wall, "every alert", `document.querySelector('#alert-total').dataset.count === '10'`)
	waitFor(t, wall, "every case", `document.querySelector('#case-total').dataset.count === '9' && document.querySelector('#count-status-handled').dataset.count === '1' && document.querySelector('#count-status-accepted').dataset.count === '2'`)
	if n := eval[int](t, wall, `document.querySelectorAll('#alerts [data-alert-id]').length`); n != 10 {
		t.Errorf("the feed shows %d alerts, want 10", n)
	}
	// The newest alert comes first.
	if first := eval[string](t, wall, `document.querySelector('#alerts [data-alert-id] .where').textContent`); first == "" {
		t.Error("the first alert of the feed names no place")
	}

	// The map: one tile per district, no tile on another, every name
	// inside its tile.
	var layout struct {
		Tiles int      `json:"tiles"`
		Bad   []string `json:"bad"`
	}
	raw := eval[string](t, wall, `(() => {
		const gs = [...document.querySelectorAll('#map g.district')];
		const boxes = gs.map((g) => g.querySelector('rect.tile').getBoundingClientRect());
		const bad = [];
		for (let i = 0; i < boxes.length; i++) {
			for (let j = i + 1; j < boxes.length; j++) {
				const a = boxes[i], b = boxes[j];
				if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) bad.push(gs[i].dataset.district + ' overlaps ' + gs[j].dataset.district);
			}
			const n = gs[i].querySelector('text.name').getBoundingClientRect();
			const b = boxes[i];
			if (n.width === 0 || n.left < b.left || n.right > b.right || n.top < b.top || n.bottom > b.bottom) bad.push(gs[i].dataset.district + ' label outside its tile');
			if (b.width < 80) bad.push(gs[i].dataset.district + ' tile only ' + b.width + 'px wide');
		}
		return JSON.stringify({ tiles: gs.length, bad });
	})()`)
	if err := json.Unmarshal([]byte(raw), &layout); err != nil {
		t.Fatal(err)
	}
	if layout.Tiles != 10 || len(layout.Bad) > 0 {
		t.Errorf("the map has %d tiles (want 10), problems: %v", layout.Tiles, layout.Bad)
	}
	waitFor(t, wall, "the extreme alert on the map", `document.querySelector('#map [data-district="huangpu"]').classList.contains('level-extreme')`)
	waitFor(t, wall, "yangpu's case on the map", `document.querySelector('#map [data-district="yangpu"]').dataset.cases === '1'`)
	waitFor(t, wall, "the sources speaking", `document.querySelectorAll('#sources [data-source]').length > 0 && document.querySelector('#source-total').dataset.count !== '0'`)
	wallZh := saveScreenshot(t, wall, "wall-zh")

	// English, remembered across a reload.
	do(t, wall, "switch to English", chromedp.Click(chromedp.CSS(`#lang`)))
	waitFor(t, wall, "English labels", `document.querySelector('#h-feed').textContent === 'Latest alerts' && document.documentElement.lang === 'en-GB'`)
	do(t, wall, "reload", chromedp.Reload())
	waitFor(t, wall, "the wall screen to reconnect", `document.querySelector('#conn').dataset.state === 'connected'`)
	waitFor(t, wall, "English after the reload", `document.querySelector('#h-feed').textContent === 'Latest alerts' && document.querySelector('#cases [data-status="handled"] .status')?.textContent === 'To verify'`)
	wallEn := saveScreenshot(t, wall, "wall-en")
	do(t, wall, "switch back to Chinese", chromedp.Click(chromedp.CSS(`#lang`)))
	waitFor(t, wall, "Chinese labels", `document.querySelector('#h-feed').textContent === '最新告警'`)

	// The console, signed in as the lead of the Xuhui case, with it open.
	console := newTab(t, wall, "console")
	do(t, console, "open the console", chromedp.Navigate(h.info.URL+"/console"))
	devSignIn(t, console, "department", "water-affairs")
	openInConsole(t, console, ids["xuhui"])
	waitFor(t, console, "the case's history", `document.querySelectorAll('#d-history li[data-action]').length >= 3`)
	waitFor(t, console, "the handle countdown", `document.querySelector('#d-deadlines .due[data-what="handle"]') !== null`)
	consoleZh := saveScreenshot(t, console, "console-zh")

	if *updateScreenshots {
		dir := filepath.Join("..", "..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, png := range map[string][]byte{"wall.png": wallZh, "wall-en.png": wallEn, "console.png": consoleZh} {
			if len(png) == 0 {
				t.Fatalf("no screenshot for %s", name)
			}
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote the screenshots to %s", dir)
	}
}
