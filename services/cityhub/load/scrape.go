package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The hub's metrics the driver reads.
const (
	metricCPU      = "process_cpu_seconds_total"
	metricRuled    = "cityhub_ruler_events_total"
	metricIntake   = "cityhub_intake_events_total"
	metricAlerts   = "cityhub_ruler_alerts_published_total"
	metricDispatch = "cityhub_dispatch_alerts_total"
)

// LagSource says how Step.Lag is measured. The hub does not export its
// consumer groups' lag, so the driver takes the difference of two of its
// counters, read from one scrape.
const LagSource = "cityhub_intake_events_total{outcome=\"accepted\"} − cityhub_ruler_events_total, both counted from the run's start (not Kafka consumer-group lag, which the hub does not export)"

// sample is one reading of the hub's counters.
type sample struct {
	at     time.Time
	cpu    float64
	hasCPU bool
	// intake counts events intake accepted (all sources, every way in),
	// ruled events the ruler evaluated, alerts alert states it
	// published, cases the cases dispatch opened from alerts.
	intake, ruled, alerts, cases float64
}

// scraper reads /metrics.
type scraper struct {
	url, token string
	client     *http.Client
}

func (s *scraper) scrape(ctx context.Context) (sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return sample{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "text/plain")
	resp, err := s.client.Do(req)
	if err != nil {
		return sample{}, fmt.Errorf("read %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	at := time.Now()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return sample{}, fmt.Errorf("%w the watch token for %s (%s): %s", ErrRefused, s.url, resp.Status, bytes.TrimSpace(msg))
		}
		return sample{}, fmt.Errorf("read %s: %s: %s", s.url, resp.Status, bytes.TrimSpace(msg))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return sample{}, fmt.Errorf("read %s: %w", s.url, err)
	}
	out := sample{at: at}
	if _, ok := fams[metricRuled]; !ok {
		return sample{}, fmt.Errorf("%s has no %s: point the driver at an all-in-one hub (cityhub run), whose one /metrics covers intake and the ruler", s.url, metricRuled)
	}
	out.ruled = sum(fams[metricRuled], nil)
	out.intake = sum(fams[metricIntake], map[string]string{"outcome": "accepted"})
	out.alerts = sum(fams[metricAlerts], nil)
	out.cases = sum(fams[metricDispatch], map[string]string{"outcome": "opened"})
	if f, ok := fams[metricCPU]; ok {
		out.cpu, out.hasCPU = sum(f, nil), true
	}
	return out, nil
}

// sum adds up the counter (or untyped) samples of f whose labels include
// match. A missing family sums to zero: a labelled counter appears only
// once something was counted.
func sum(f *dto.MetricFamily, match map[string]string) float64 {
	var total float64
	for _, m := range f.GetMetric() {
		if !labelsMatch(m, match) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			total += m.GetUntyped().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

func labelsMatch(m *dto.Metric, match map[string]string) bool {
	for name, want := range match {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				found = l.GetValue() == want
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func metricsURL(base string) string { return strings.TrimRight(base, "/") + "/metrics" }
