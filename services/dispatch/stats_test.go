package dispatch_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/dispatch"
	"github.com/cityhub/cityhub/services/platform/auth"
)

func secs(d time.Duration) *float64 { v := d.Seconds(); return &v }

// statsCity drives three cases through real actions, at known times, plus
// one opened before the range:
//
//	A (xuhui, t0): water-affairs leads, traffic-police assists. water signs
//	  at +5m and reports at +1h, both on time; traffic signs at +15m (late)
//	  and reports at +3h (late). Closed at +4h.
//	B (xuhui, t0+1m): water-affairs returns it at +2m; dispatched to gas at
//	  +3m, signed at +4m, reported at +30m, fails verification at +40m,
//	  reported again at +50m, closed at +1h.
//	C (huangpu, t0+2m): gas leads and never signs; escalated at +3h.
//
// Every deadline is 10m to sign and 2h to report, from dispatch.
func statsCity(t *testing.T) *harness {
	h := start(t)
	disp := h.as(auth.RoleDispatcher, "")
	water := h.as(auth.RoleDepartment, "water-affairs")
	traffic := h.as(auth.RoleDepartment, "traffic-police")
	gas := h.as(auth.RoleDepartment, "gas")
	cmd := h.as(auth.RoleCommander, "")
	sla := map[string]any{"accept": "10m", "handle": "2h"}
	at := func(d time.Duration) { h.setNow(t0.Add(d)) }
	yes, no := true, false

	at(-24 * time.Hour)
	disp.open("xuhui", "before", map[string]any{"lead": "water-affairs", "sla": sla})

	at(0)
	a := disp.open("xuhui", "a", map[string]any{"lead": "water-affairs", "assist": []string{"traffic-police"}, "sla": sla})
	at(time.Minute)
	b := disp.open("xuhui", "b", map[string]any{"lead": "water-affairs", "sla": sla})
	at(2 * time.Minute)
	c := disp.open("huangpu", "c", map[string]any{"lead": "gas", "sla": sla})
	water.act(b.ID, 200, map[string]any{"action": "return", "note": "not ours: a gas leak", "expected_version": 1, "request_id": "b1"})
	at(3 * time.Minute)
	disp.act(b.ID, 200, map[string]any{"action": "dispatch", "lead": "gas", "sla": sla, "expected_version": 2, "request_id": "b2"})
	at(4 * time.Minute)
	gas.act(b.ID, 200, map[string]any{"action": "accept", "expected_version": 3, "request_id": "b3"})
	at(5 * time.Minute)
	water.act(a.ID, 200, map[string]any{"action": "accept", "expected_version": 1, "request_id": "a1"})
	at(15 * time.Minute)
	traffic.act(a.ID, 200, map[string]any{"action": "accept", "expected_version": 2, "request_id": "a2"})
	at(30 * time.Minute)
	gas.act(b.ID, 200, map[string]any{"action": "handle", "note": "valve shut", "expected_version": 4, "request_id": "b4"})
	at(40 * time.Minute)
	disp.act(b.ID, 200, map[string]any{"action": "verify", "pass": no, "note": "still smells", "expected_version": 5, "request_id": "b5"})
	at(50 * time.Minute)
	gas.act(b.ID, 200, map[string]any{"action": "handle", "note": "pipe replaced", "expected_version": 6, "request_id": "b6"})
	at(time.Hour)
	disp.act(b.ID, 200, map[string]any{"action": "verify", "pass": yes, "expected_version": 7, "request_id": "b7"})
	water.act(a.ID, 200, map[string]any{"action": "handle", "note": "pumped", "expected_version": 3, "request_id": "a3"})
	at(3 * time.Hour)
	traffic.act(a.ID, 200, map[string]any{"action": "handle", "note": "reopened", "expected_version": 4, "request_id": "a4"})
	cmd.act(c.ID, 200, map[string]any{"action": "escalate", "note": "gas has not signed", "expected_version": 1, "request_id": "c1"})
	at(4 * time.Hour)
	disp.act(a.ID, 200, map[string]any{"action": "verify", "pass": yes, "expected_version": 5, "request_id": "a5"})
	at(5 * time.Hour)
	return h
}

func getStats(t *testing.T, c *client, query url.Values, want int) dispatch.StatsResponse {
	t.Helper()
	status, b := c.do("GET", "/v1/stats?"+query.Encode(), nil)
	if status != want {
		t.Fatalf("stats?%s: %d %s, want %d", query.Encode(), status, b, want)
	}
	var resp dispatch.StatsResponse
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

func TestStatsFigures(t *testing.T) {
	h := statsCity(t)
	rng := url.Values{"from": {t0.Add(-time.Hour).Format(time.RFC3339)}, "to": {t0.Add(time.Hour).Format(time.RFC3339)}}

	water := dispatch.Figures{
		Received: 2, Accepted: 1, AcceptedOnTime: 1, Handled: 1, HandledOnTime: 1, Closed: 1, ClosedOnTime: 1,
		Returned: 1, AvgHandleSeconds: secs(time.Hour), AvgCloseSeconds: secs(4 * time.Hour),
	}
	traffic := dispatch.Figures{
		Received: 1, Accepted: 1, Handled: 1, Closed: 1,
		AvgHandleSeconds: secs(3 * time.Hour), AvgCloseSeconds: secs(4 * time.Hour),
	}
	gas := dispatch.Figures{
		Received: 2, Accepted: 1, AcceptedOnTime: 1, Handled: 1, HandledOnTime: 1, Closed: 1, ClosedOnTime: 1,
		Reworked: 1, Escalated: 1, OverdueNow: 1,
		AvgHandleSeconds: secs(47 * time.Minute), AvgCloseSeconds: secs(57 * time.Minute),
	}
	total := dispatch.Figures{
		Received: 3, Accepted: 2, AcceptedOnTime: 2, Handled: 2, HandledOnTime: 1, Closed: 2, ClosedOnTime: 1,
		Returned: 1, Reworked: 1, Escalated: 1, OverdueNow: 1,
		AvgHandleSeconds: secs((3*time.Hour + 47*time.Minute) / 2), AvgCloseSeconds: secs((4*time.Hour + 57*time.Minute) / 2),
	}

	got := getStats(t, h.as(auth.RoleCommander, ""), rng, 200)
	if !got.From.Equal(t0.Add(-time.Hour)) || !got.To.Equal(t0.Add(time.Hour)) || !got.AsOf.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("range %v – %v as of %v", got.From, got.To, got.AsOf)
	}
	want := []dispatch.DepartmentFigures{{Department: "gas", Figures: gas}, {Department: "traffic-police", Figures: traffic}, {Department: "water-affairs", Figures: water}}
	checkFigures(t, "total", got.Total, total)
	if len(got.Departments) != len(want) {
		t.Fatalf("departments %+v, want %d rows", got.Departments, len(want))
	}
	for i, w := range want {
		if got.Departments[i].Department != w.Department {
			t.Errorf("row %d is %s, want %s", i, got.Departments[i].Department, w.Department)
		}
		checkFigures(t, w.Department, got.Departments[i].Figures, w.Figures)
	}

	// Scope.
	t.Run("department sees only its own", func(t *testing.T) {
		got := getStats(t, h.as(auth.RoleDepartment, "gas"), rng, 200)
		if got.Department != "gas" || len(got.Departments) != 1 || got.Departments[0].Department != "gas" {
			t.Fatalf("rows %+v", got.Departments)
		}
		checkFigures(t, "gas", got.Departments[0].Figures, gas)
		if got.Total.Received != 2 {
			t.Errorf("gas's total counts %d cases, want its 2", got.Total.Received)
		}
		q := url.Values{"department": {"water-affairs"}}
		getStats(t, h.as(auth.RoleDepartment, "gas"), q, 403)
	})
	t.Run("dispatcher sees its districts", func(t *testing.T) {
		huangpu := h.as(auth.RoleDispatcher, "", "huangpu")
		got := getStats(t, huangpu, rng, 200)
		if got.Total.Received != 1 || len(got.Districts) != 1 || got.Districts[0] != "huangpu" {
			t.Errorf("huangpu's dispatcher got %+v", got)
		}
		q := url.Values{"district": {"xuhui"}}
		getStats(t, huangpu, q, 403)
	})
	t.Run("commander narrows by district and department", func(t *testing.T) {
		q := url.Values{"district": {"xuhui"}, "department": {"water-affairs"}, "from": rng["from"], "to": rng["to"]}
		got := getStats(t, h.as(auth.RoleCommander, ""), q, 200)
		if len(got.Departments) != 1 {
			t.Fatalf("rows %+v", got.Departments)
		}
		checkFigures(t, "water", got.Departments[0].Figures, water)
	})
	t.Run("the default range is the last 30 days", func(t *testing.T) {
		got := getStats(t, h.as(auth.RoleViewer, ""), nil, 200)
		if got.Total.Received != 4 || !got.To.Equal(t0.Add(5*time.Hour)) {
			t.Errorf("default range: %d cases to %v", got.Total.Received, got.To)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		cmd := h.as(auth.RoleCommander, "")
		for _, q := range []url.Values{
			{"from": {"yesterday"}},
			{"to": {"2025-13-01T00:00:00Z"}},
			{"from": {t0.Format(time.RFC3339)}, "to": {t0.Add(-time.Second).Format(time.RFC3339)}},
			{"from": {t0.Add(-400 * 24 * time.Hour).Format(time.RFC3339)}, "to": {t0.Format(time.RFC3339)}},
			{"district": {"atlantis"}},
			{"department": {"ministry-of-magic"}},
			{"status": {"open"}},
			{"district": {"xuhui", "huangpu"}},
		} {
			status, b := cmd.do("GET", "/v1/stats?"+q.Encode(), nil)
			var e struct {
				Error struct {
					Code    string            `json:"code"`
					Details map[string]string `json:"details"`
				} `json:"error"`
			}
			if status != 400 || json.Unmarshal(b, &e) != nil || e.Error.Code != "invalid_parameter" || e.Error.Details["parameter"] == "" {
				t.Errorf("stats?%s: %d %s, want 400 naming the parameter", q.Encode(), status, b)
			}
		}
		if status, _ := h.as(auth.RoleSource, "").do("GET", "/v1/stats", nil); status != 403 {
			t.Errorf("source: %d, want 403", status)
		}
		if status, _ := (&client{h, ""}).do("GET", "/v1/stats", nil); status != 401 {
			t.Errorf("no token: %d, want 401", status)
		}
	})
}

func checkFigures(t *testing.T, name string, got, want dispatch.Figures) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", name, g, w)
	}
}
