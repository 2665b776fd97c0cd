package open311_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/open311"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// TestThroughIntake posts a report through the real intake to a Kafka over
// TCP: the event in the log is the report, keyed by its district.
func TestThroughIntake(t *testing.T) {
	k := kafkatest.Start(t)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	var svc *intake.Service
	h := start(t, func(o *open311.Options) {
		svc, err = intake.New(intake.Options{Writer: w, Topics: k.Topics, Catalog: o.Catalog, Verifier: o.Verifier, Now: o.Now})
		if err != nil {
			t.Fatal(err)
		}
		o.Submit = svc.Submit
		o.Unavailable = intake.ErrUnavailable
	})
	form := h.report(t)
	form.Set("service_code", "manhole_cover_missing")
	form.Del("attribute[water_depth_cm]")
	form.Set("attribute[on_carriageway]", "true")
	form.Add("attribute[kind][]", "power")
	form.Set("email", "li.ming@example.com")
	id := h.create(t, form)

	var evs []*cityhubv1.Event
	var keys []string
	if err := stream.Replay(context.Background(), k.Brokers, k.Topics.Events, func(m kafka.Message) error {
		var ev cityhubv1.Event
		if err := stream.Unmarshal(m, &ev); err != nil {
			return err
		}
		evs, keys = append(evs, &ev), append(keys, string(m.Key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events in the log", len(evs))
	}
	ev := evs[0]
	attrs := ev.GetAttrs().AsMap()
	if ev.GetId() != id || ev.GetSource() != "citizen_app" || ev.GetType() != "manhole_cover_missing" || keys[0] != "xuhui" ||
		ev.GetLocation().GetDistrict() != "xuhui" || ev.GetLocation().GetLat() != 31.188 || ev.GetLocation().GetLon() != 121.4372 ||
		ev.GetText() != "积水没过脚踝，车辆绕行" || !ev.GetOccurredAt().AsTime().Equal(t0) ||
		attrs["on_carriageway"] != true || attrs["kind"] != "power" || attrs["contact_given"] != true || len(attrs) != 3 {
		t.Errorf("event %v keyed %s", ev, keys[0])
	}

	// intake's refusal comes back in the form's terms.
	form.Set("address_string", strings.Repeat("路", 600))
	a := h.post(t, "xml", form)
	if a.status != http.StatusBadRequest {
		t.Fatalf("POST = %d %s", a.status, a.body)
	}
	if descs := errorsOf(t, "xml", a); !containsAny(descs, "address_string: 600 characters, at most 512") {
		t.Errorf("%q", descs)
	}

	// A key of a role that posts nothing is refused before intake.
	form = h.report(t)
	form.Set("api_key", h.key(t, auth.Principal{Role: auth.RoleViewer}))
	if a := h.post(t, "json", form); a.status != http.StatusForbidden {
		t.Errorf("a viewer's key: POST = %d %s", a.status, a.body)
	}
}
