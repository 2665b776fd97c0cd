package load

import (
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestLatencyCountsUnseenMarkersAsSlowest(t *testing.T) {
	seen := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		seen = append(seen, ms(i))
	}
	for _, c := range []struct {
		name          string
		seen          []time.Duration
		n             int
		p50, p95, p99 string
		max           bool
	}{
		{name: "all seen", seen: seen, n: 100, p50: "50.0", p95: "95.0", p99: "99.0", max: true},
		{name: "one lost", seen: seen[1:], n: 100, p50: "50.0", p95: "95.0", p99: "99.0"}, // 99 of 100: the 100th is unknown
		{name: "two lost", seen: seen[2:], n: 100, p50: "50.0", p95: "95.0", p99: "-"},
		{name: "half lost", seen: seen[50:], n: 100, p50: "50.0", p95: "-", p99: "-"},
		{name: "none sent", n: 0, p50: "-", p95: "-", p99: "-"},
		{name: "twenty", seen: seen[80:], n: 20, p50: "10.0", p95: "19.0", p99: "20.0", max: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := latencyOf(append([]time.Duration(nil), c.seen...), c.n)
			for _, p := range []struct {
				name string
				got  *float64
				want string
			}{{"p50", l.P50, c.p50}, {"p95", l.P95, c.p95}, {"p99", l.P99, c.p99}} {
				if got := fixed(p.got, 1); got != p.want {
					t.Errorf("%s = %s, want %s", p.name, got, p.want)
				}
			}
			if (l.Max != nil) != c.max {
				t.Errorf("max = %v, want set: %v", l.Max, c.max)
			}
		})
	}
}

func TestMeasureSaysWhetherTheHubKeptUp(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	base := sample{at: t0, hasCPU: true}
	for _, c := range []struct {
		name     string
		rate     float64
		accepted int64
		s0, s1   sample
		kept     bool
		verdict  string
	}{
		{
			name: "kept up", rate: 10000, accepted: 100000,
			s0:   sample{at: at(0), hasCPU: true},
			s1:   sample{at: at(10), hasCPU: true, cpu: 5, intake: 100000, ruled: 99000},
			kept: true,
		},
		{
			name: "intake behind", rate: 10000, accepted: 80000,
			s0:      sample{at: at(0), hasCPU: true},
			s1:      sample{at: at(10), hasCPU: true, cpu: 5, intake: 80000, ruled: 80000},
			verdict: "intake accepted 8,000 events/s, 80% of the target",
		},
		{
			name: "ruler behind", rate: 10000, accepted: 100000,
			s0:      sample{at: at(0), hasCPU: true, intake: 50000, ruled: 45000},
			s1:      sample{at: at(10), hasCPU: true, cpu: 5, intake: 150000, ruled: 120000},
			verdict: "the ruler fell behind: its backlog grew by 25,000 events to 30,000",
		},
		{
			// The ruler takes events in batches of thousands: one batch
			// not yet evaluated is no sign of falling behind.
			name: "a batch in flight", rate: 100, accepted: 1000,
			s0:   sample{at: at(0), hasCPU: true},
			s1:   sample{at: at(10), hasCPU: true, cpu: 5, intake: 1000},
			kept: true,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := measure(c.rate, base, c.s0, c.s1, counters{}, counters{accepted: c.accepted})
			if st.KeptUp != c.kept || st.Verdict != c.verdict {
				t.Errorf("kept up %v (%q), want %v (%q)", st.KeptUp, st.Verdict, c.kept, c.verdict)
			}
			if want := 5 / (float64(c.accepted) / 1000); st.HubCPUPer1k == nil || *st.HubCPUPer1k != want {
				t.Errorf("CPU per 1k = %v, want %v", st.HubCPUPer1k, want)
			}
		})
	}
}

// TestJudgeMarkersFailsAStepWhoseCasesLag checks the third way a step
// fails: the ruler keeps up, but markers' cases do not arrive.
func TestJudgeMarkersFailsAStepWhoseCasesLag(t *testing.T) {
	t0 := time.Now()
	for _, c := range []struct {
		name            string
		markers, noCase int
		kept            bool
		verdict         string
	}{
		{name: "all arrived", markers: 20, kept: true},
		{name: "one in ten late", markers: 20, noCase: 2, kept: true},
		{name: "cases late", markers: 20, noCase: 3, verdict: "3 of 20 markers older than 5s had no case yet: the stages after the ruler fell behind"},
		{name: "too few to judge", markers: 4, noCase: 4, kept: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBook("load-x-m")
			for i := range c.markers {
				id := "load-x-m" + string(rune('a'+i))
				b.add(id, 0, t0)
				b.seen(alertStream, []string{key(id)}, t0.Add(ms(3)))
				if i >= c.noCase {
					b.seen(caseStream, []string{key(id)}, t0.Add(ms(5)))
				}
			}
			b.add("load-x-mlate", 0, t0.Add(10*time.Second)) // sent after the cutoff: not judged
			st := Step{KeptUp: true}
			judgeMarkers(&st, 5*time.Second, b, 0, t0.Add(time.Second))
			if st.KeptUp != c.kept || st.Verdict != c.verdict {
				t.Errorf("kept up %v (%q), want %v (%q)", st.KeptUp, st.Verdict, c.kept, c.verdict)
			}
		})
	}
}
