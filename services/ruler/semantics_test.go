package ruler_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
)

const trialPack = `
pack: trial
owner: water-affairs
rules:
  - id: shadowed
    description: A rule on trial
    when: event.type == "waterlogging"
    severity: minor
    group_by: [district, street]
    shadow: true
    dispatch: default
  - id: broken
    when: event.type == "waterlogging" && event.attrs.water_depth_cm > 3
    severity: minor
  - id: manholes
    when: event.type == "manhole_cover_missing"
    severity: severe
    group_by: [district, attrs.cover_id]
`

// TestShadowAndFailingRules runs the ruler over Kafka and Redis: a shadow
// rule's alert is published marked shadow (dispatch skips those), and a
// rule failing at run time is counted while the event still reaches the
// other rules and consumption goes on.
func TestShadowAndFailingRules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "trial.yaml"), []byte(trialPack), 0o644); err != nil {
		t.Fatal(err)
	}
	k := kafkatest.Start(t)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reg := prometheus.NewRegistry()
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("ruler"),
		Redis: redistest.Start(t).Client, Writer: w, PacksDir: dir, Catalog: loadCatalog(t),
		Logger: logging.Discard(), Registerer: reg, PollInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// No depth: the broken rule fails on it; the shadow rule matches.
	produce(t, w, k.Topics.Events, event("ev-1", "waterlogging", "xuhui", "tianping", nil))
	produce(t, w, k.Topics.Events, event("ev-2", "manhole_cover_missing", "xuhui", "hengshan", map[string]any{"cover_id": "mh-1"}))
	var got []*cityhubv1.Alert
	waitFor(t, "both alerts", func() bool { got = alerts(t, k); return len(got) >= 2 })
	i := slices.IndexFunc(got, func(a *cityhubv1.Alert) bool { return a.Rule == "trial/shadowed" })
	if i < 0 || !got[i].Shadow || got[i].State != cityhubv1.AlertState_ALERT_STATE_FIRING || got[i].Dispatch.GetLead() != "water-affairs" {
		t.Fatalf("shadow alert = %v", got)
	}
	if !slices.ContainsFunc(got, func(a *cityhubv1.Alert) bool { return a.Rule == "trial/manholes" && !a.Shadow }) {
		t.Errorf("the event after the failing one was not evaluated: %v", got)
	}
	want := `
# HELP cityhub_ruler_rule_errors_total Evaluations of a rule's condition that failed at run time, by rule; the event still reaches the other rules.
# TYPE cityhub_ruler_rule_errors_total counter
cityhub_ruler_rule_errors_total{rule="trial/broken"} 1
cityhub_ruler_rule_errors_total{rule="trial/manholes"} 0
cityhub_ruler_rule_errors_total{rule="trial/shadowed"} 0
`
	waitFor(t, "the events to be counted", func() bool { return counterValue(t, reg, "cityhub_ruler_events_total") >= 2 })
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cityhub_ruler_rule_errors_total"); err != nil {
		t.Error(err)
	}
}

// counterValue returns the sum of the series of the counter name.
func counterValue(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	return metricSum(tb, reg, name, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
}

// metricSum returns the sum of value over the series of the metric name.
func metricSum(tb testing.TB, reg *prometheus.Registry, name string, value func(*dto.Metric) float64) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += value(m)
			}
		}
	}
	return sum
}
