package alertmanager

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// FuzzDecode feeds bodies to Decode and what it accepts through the
// mapping: nothing panics, a refusal is an ErrPayload, and every event
// made has the alert's id, a catalog type, attributes of the types the
// catalog declares and bounded text, the same every time — so that what
// intake could still refuse is only what the alert itself says (a
// district label the catalog lacks, an overlong street, a start in the
// future).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		f.Add(readFile(f, file))
	}
	f.Add([]byte(`{"version":"4","alerts":[{"status":"resolved","labels":{"alertname":"UtilityTunnelMethane","sensor":"s\u00e9"},"annotations":{"summary":"\ud800"},"startsAt":"2026-07-01T08:00:00+08:00","fingerprint":"x"}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"TunnelWaterDepth","district":"xuhui","lon":"1e400","lat":"31"},"annotations":{"depth_cm":"-0"},"startsAt":"2026-07-01T08:00:00Z","fingerprint":"y"}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))

	cat := testCatalog(f)
	cfg := testConfig(f, cat)
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	dec := events.Decoder{Catalog: cat, Now: func() time.Time { return now.Add(1000 * time.Hour) }}

	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("Decode: %v is not an ErrPayload", err)
			}
			return
		}
		if len(msg.Alerts) == 0 || len(msg.Alerts) > MaxAlerts {
			t.Fatalf("Decode accepted %d alerts", len(msg.Alerts))
		}
		results := translate(cfg, cat, msg, now)
		if first, again := snapshot(results), snapshot(translate(cfg, cat, msg, now)); first != again {
			t.Fatalf("the same notification mapped twice differs:\n%s\n%s", first, again)
		}
		if len(results) != len(msg.Alerts) {
			t.Fatalf("%d results for %d alerts", len(results), len(msg.Alerts))
		}
		for i, res := range results {
			a := &msg.Alerts[i]
			in := res.input
			if in == nil {
				if res.matched && len(res.errs) == 0 {
					t.Fatalf("alert %d matched, made no event and says no why", i)
				}
				continue
			}
			checkEvent(t, cat, a, in)
			if _, errs := dec.Validate(in); len(errs) > 0 {
				for _, fe := range errs {
					aliens := strings.HasPrefix(fe.Field, "location.") || fe.Field == "occurred_at" ||
						strings.Contains(fe.Message, "want valid UTF-8 of at most")
					if !aliens {
						t.Fatalf("alert %d: intake would refuse %s: %s (%+v)", i, fe.Field, fe.Message, in)
					}
				}
			}
		}
	})
}

// snapshot spells out what translate made of each alert.
func snapshot(results []result) string {
	var b strings.Builder
	for _, r := range results {
		j, err := json.Marshal(struct {
			Matched bool
			Input   *events.Input
			Errs    []events.FieldError
		}{r.matched, r.input, r.errs})
		if err != nil {
			return err.Error()
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func checkEvent(t *testing.T, cat *catalog.Catalog, a *Alert, in *events.Input) {
	t.Helper()
	if in.ID != EventID(a.Fingerprint, a.Status, a.StartsAt) || !idRE.MatchString(in.ID) {
		t.Fatalf("id %q", in.ID)
	}
	et, ok := cat.EventType(in.Type)
	if !ok {
		t.Fatalf("type %q is not the catalog's", in.Type)
	}
	if len(in.Text) > events.MaxTextBytes || !utf8.ValidString(in.Text) {
		t.Fatalf("text of %d bytes, valid UTF-8 %v", len(in.Text), utf8.ValidString(in.Text))
	}
	if _, err := time.Parse(time.RFC3339Nano, in.OccurredAt); err != nil {
		t.Fatalf("occurred_at %q", in.OccurredAt)
	}
	if in.Attrs[AttrResolved] != (a.Status == StatusResolved) || in.Attrs[AttrStatus] != a.Status || in.Attrs[AttrFingerprint] != a.Fingerprint {
		t.Fatalf("receiver attributes %v", in.Attrs)
	}
	for name, v := range in.Attrs {
		want, declared := et.Attrs[name]
		if _, reserved := reservedAttrs[name]; !declared && !reserved {
			t.Fatalf("attribute %s is not declared for %s", name, et.Code)
		}
		var got catalog.AttrType
		switch v.(type) {
		case float64:
			got = catalog.AttrNumber
		case string:
			got = catalog.AttrString
		case bool:
			got = catalog.AttrBool
		}
		if declared && got != want {
			t.Fatalf("attribute %s is a %s, the catalog declares %s", name, got, want)
		}
	}
}
