package alertmanager

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	firing, err := os.ReadFile("testdata/firing.json")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Decode(firing)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Version != "4" || msg.Receiver != "cityhub" || msg.Status != StatusFiring || len(msg.Alerts) != 2 ||
		msg.GroupLabels["alertname"] != "UnderpassWaterDepth" || msg.ExternalURL != "http://alertmanager.city.example:9093" ||
		!strings.HasPrefix(msg.GroupKey, "{}/") {
		t.Errorf("decoded %+v", msg)
	}
	a := msg.Alerts[0]
	if a.Fingerprint != "7f3c2a91d0b4e6a1" || a.Labels["sensor"] != "wd-xh-17" || a.Annotations["depth_cm"] != "35" ||
		!a.StartsAt.Equal(time.Date(2026, 7, 1, 8, 30, 12, 345e6, time.UTC)) || !a.EndsAt.IsZero() ||
		!strings.Contains(a.GeneratorURL, "&g0.tab=1") {
		t.Errorf("alert %+v", a)
	}

	alert := func(fields string) string {
		return `{"version":"4","status":"firing","alerts":[{` + fields + `}]}`
	}
	const good = `"status":"firing","labels":{},"startsAt":"2026-07-01T08:00:00Z","fingerprint":"ab"`
	for _, tc := range []struct {
		name, body, want string
		tooMany          bool
	}{
		{"unknown fields are tolerated", `{"version":"4","orgId":1,"alerts":[{"status":"firing","startsAt":"2026-07-01T08:00:00Z","fingerprint":"ab","silenceURL":"x","values":{"B":1}}],"notificationReason":"new"}`, "", false},
		{"not JSON", `version=4`, "invalid character", false},
		{"an array", `[]`, "cannot unmarshal array", false},
		{"null", `null`, `version ""`, false},
		{"data after", alert(good) + `{}`, "data after the notification object", false},
		{"version 3", `{"version":"3","alerts":[{` + good + `}]}`, `version "3": this receiver reads version 4`, false},
		{"no version", `{"alerts":[{` + good + `}]}`, `version ""`, false},
		{"no alerts", `{"version":"4","alerts":[]}`, "no alerts", false},
		{"bad status", alert(`"status":"pending","startsAt":"2026-07-01T08:00:00Z","fingerprint":"ab"`), `alerts[0].status "pending": want firing or resolved`, false},
		{"no fingerprint", alert(`"status":"firing","startsAt":"2026-07-01T08:00:00Z"`), "alerts[0].fingerprint: required", false},
		{"long fingerprint", alert(`"status":"firing","startsAt":"2026-07-01T08:00:00Z","fingerprint":"` + strings.Repeat("f", 129) + `"`), "longer than 128 bytes", false},
		{"no start", alert(`"status":"firing","fingerprint":"ab"`), "alerts[0].startsAt: required", false},
		{"bad time", alert(`"status":"firing","fingerprint":"ab","startsAt":"yesterday"`), "cannot parse", false},
		{"labels of the wrong type", alert(`"status":"firing","fingerprint":"ab","startsAt":"2026-07-01T08:00:00Z","labels":{"a":1}`), "alerts.labels", false},
		{"too many alerts", `{"version":"4","alerts":[` + strings.Repeat(`{`+good+`},`, MaxAlerts) + `{` + good + `}]}`, "1001, at most 1000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrPayload) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode: %v; want an ErrPayload saying %q", err, tc.want)
			}
			if errors.Is(err, ErrTooManyAlerts) != tc.tooMany {
				t.Errorf("ErrTooManyAlerts: %v", err)
			}
		})
	}
}

func TestMatcher(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"alertname": "UnderpassWaterDepth", "job": "underpass-gauges", "empty": ""}
	for _, tc := range []struct {
		matcher string
		want    bool
	}{
		{`alertname="UnderpassWaterDepth"`, true},
		{`alertname = "UnderpassWaterDepth"`, true},
		{`alertname=UnderpassWaterDepth`, true},
		{`alertname="Underpass"`, false},
		{`alertname!="Underpass"`, true},
		{`alertname=~"Underpass.*"`, true},
		{`alertname=~"Underpass"`, false}, // anchored, as Alertmanager's
		{`alertname=~"TunnelWaterDepth|UnderpassWaterDepth"`, true},
		{`alertname!~"Tunnel.*"`, true},
		{`site=""`, true}, // an absent label is ""
		{`site!=""`, false},
		{`empty=""`, true},
		{`job=~".+"`, true},
		{`site=~".+"`, false},
		{`job="underpass-gauges"`, true},
	} {
		t.Run(tc.matcher, func(t *testing.T) {
			m, err := ParseMatcher(tc.matcher)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Matches(labels); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
			back, err := ParseMatcher(m.String())
			if err != nil || back.Matches(labels) != tc.want {
				t.Errorf("String %q does not read back: %v", m.String(), err)
			}
		})
	}
	for _, bad := range []string{``, `alertname`, `="x"`, `1a="x"`, `a=="x"`, `a="x`, `a=~"("`, `a=x,b=y`, strings.Repeat("a", MaxMatcherBytes+1) + `="x"`} {
		if _, err := ParseMatcher(bad); err == nil {
			t.Errorf("ParseMatcher(%q) accepted", bad)
		}
	}
	var zero Matcher
	if zero.Matches(labels) || zero.valid() {
		t.Error("the zero Matcher matches")
	}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func TestEventID(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 7, 1, 8, 30, 12, 345e6, time.UTC)
	id := EventID("7f3c2a91d0b4e6a1", StatusFiring, start)
	if !idRE.MatchString(id) {
		t.Fatalf("EventID = %q, not an event id", id)
	}
	shanghai := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		name string
		id   string
		same bool
	}{
		{"the same alert sent again", EventID("7f3c2a91d0b4e6a1", StatusFiring, start), true},
		{"the same start in another zone", EventID("7f3c2a91d0b4e6a1", StatusFiring, start.In(shanghai)), true},
		{"its resolution", EventID("7f3c2a91d0b4e6a1", StatusResolved, start), false},
		{"the same labels firing again later", EventID("7f3c2a91d0b4e6a1", StatusFiring, start.Add(time.Hour)), false},
		{"another alert", EventID("0b9e44c1a7d2f358", StatusFiring, start), false},
		{"fields do not run together", EventID("7f3c2a91d0b4e6a1f", "iring", start), false},
	} {
		if (tc.id == id) != tc.same {
			t.Errorf("%s: %q vs %q", tc.name, tc.id, id)
		}
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	ann := map[string]string{"summary": " 积水 35 cm ", "description": "above 15 cm for 2m", "long": strings.Repeat("水", 2000)}
	for _, tc := range []struct {
		name     string
		names    []string
		resolved bool
		want     string
	}{
		{"default", nil, false, "积水 35 cm\nabove 15 cm for 2m"},
		{"resolved", nil, true, "[resolved] 积水 35 cm\nabove 15 cm for 2m"},
		{"chosen", []string{"description"}, false, "above 15 cm for 2m"},
		{"none given", []string{}, false, ""},
		{"absent", []string{"runbook_url"}, true, ""},
	} {
		if got := text(tc.names, ann, tc.resolved); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	long := text([]string{"long"}, ann, false)
	if len(long) > 4<<10 || !strings.HasSuffix(long, "…") || !strings.HasPrefix(long, "水水") {
		t.Errorf("long text: %d bytes, ends %q", len(long), long[len(long)-6:])
	}
}
