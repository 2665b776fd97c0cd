package load

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Report is what a run measured.
type Report struct {
	URL         string  `json:"url"`
	Mix         Mix     `json:"mix"`
	StepSeconds float64 `json:"step_seconds"`
	Conns       int     `json:"conns"`
	BatchSize   int     `json:"batch_size"`
	MarkerRate  float64 `json:"marker_rate"`
	// LagSource says how Step.Lag was measured.
	LagSource string `json:"lag_source"`
	Steps     []Step `json:"steps"`
	// Saturated is set when stepping stopped before the last rate, and
	// says why.
	Saturated string `json:"saturated,omitempty"`
	// Reconnects counts lost websocket connections; the deltas of markers
	// that came meanwhile were missed.
	Reconnects int64 `json:"reconnects"`
	// MarkersFailed counts markers whose POST failed; they are not in
	// any step's figures.
	MarkersFailed int64 `json:"markers_failed"`
}

// Step is what one rate measured. Rates are over the step's wall time,
// counters the hub's own between the scrapes at its start and end.
type Step struct {
	Target  float64 `json:"target_per_sec"`
	Seconds float64 `json:"seconds"`
	// Sent counts events posted; Accepted those intake answered 202 for;
	// Shed those the driver never sent because every connection was
	// waiting for an answer; FailedRequests requests answered otherwise
	// (5xx, timeouts).
	Sent           int64   `json:"sent"`
	Accepted       int64   `json:"accepted"`
	Shed           int64   `json:"shed"`
	FailedRequests int64   `json:"failed_requests"`
	AcceptedRate   float64 `json:"accepted_per_sec"`
	// RuledRate is the ruler's events counter per second.
	RuledRate float64 `json:"ruled_per_sec"`
	// Lag is the ruler's backlog at the step's end (see Report.LagSource);
	// LagGrowth how much it grew during the step.
	Lag       int64 `json:"lag"`
	LagGrowth int64 `json:"lag_growth"`
	// AlertsPerEvent is alert states published per event ruled; CasesOpened
	// the cases dispatch opened from alerts.
	AlertsPerEvent float64 `json:"alerts_per_event"`
	CasesOpened    int64   `json:"cases_opened"`
	// HubCPUSeconds is the hub process's CPU time in the step, HubCores
	// the same per second of wall time, HubCPUPer1k per 1,000 accepted
	// events; nil when the hub does not export process_cpu_seconds_total.
	HubCPUSeconds *float64 `json:"hub_cpu_seconds"`
	HubCores      *float64 `json:"hub_cores"`
	HubCPUPer1k   *float64 `json:"hub_cpu_seconds_per_1k_events"`
	// ServerCores and ServerCPUPer1k are the same for the processes of
	// Options.ServerPIDs together.
	ServerCores    *float64 `json:"server_cores,omitempty"`
	ServerCPUPer1k *float64 `json:"server_cpu_seconds_per_1k_events,omitempty"`
	// DriverCores is the driver's own CPU per second of wall time: it
	// shares the machine with the hub.
	DriverCores *float64 `json:"driver_cores"`
	Markers     Markers  `json:"markers"`
	// KeptUp says whether the hub kept up with the step; Verdict says why
	// not.
	KeptUp  bool   `json:"kept_up"`
	Verdict string `json:"verdict,omitempty"`
}

// Markers sums up a step's marker events: how many were sent, how many
// were seen as alerts and as cases, and the latencies from their POST to
// the deltas.
type Markers struct {
	Sent         int     `json:"sent"`
	Alerts       int     `json:"alerts"`
	Cases        int     `json:"cases"`
	AlertLatency Latency `json:"intake_to_alert"`
	CaseLatency  Latency `json:"intake_to_case"`
}

// Latency holds percentiles in milliseconds over every marker sent; one
// that falls among markers never seen is nil (unknown: later than the
// driver waited). Max is set only when every marker was seen.
type Latency struct {
	P50 *float64 `json:"p50_ms"`
	P95 *float64 `json:"p95_ms"`
	P99 *float64 `json:"p99_ms"`
	Max *float64 `json:"max_ms,omitempty"`
}

// The table's columns, each with its width; those with server are shown
// when the CPU of server processes (Options.ServerPIDs) is counted.
var columns = []struct {
	title  string
	width  int
	server bool
}{
	{"target/s", 9, false}, {"accepted/s", 11, false}, {"ruled/s", 9, false}, {"lag", 9, false}, {"alerts/ev", 10, false},
	{"hub cores", 10, false}, {"CPU s/1k", 9, false}, {"server cores", 13, true}, {"server s/1k", 12, true}, {"driver", 7, false},
	{"markers a/c", 16, false}, {"alert p50/p95/p99 ms", 22, false}, {"case p50/p95/p99 ms", 22, false},
}

// WriteHeader writes the table's header: what each step's row (WriteRow)
// shows; servers adds the server processes' CPU.
func WriteHeader(w io.Writer, servers bool) error {
	var cells []string
	for _, c := range columns {
		cells = append(cells, c.title)
	}
	return writeLine(w, cells, servers, "")
}

// WriteRow writes s as a row of the table; servers as for WriteHeader.
func (s Step) WriteRow(w io.Writer, servers bool) error {
	cells := []string{
		count(s.Target), count(s.AcceptedRate), count(s.RuledRate), count(float64(s.Lag)),
		fixed(&s.AlertsPerEvent, 3), fixed(s.HubCores, 2), fixed(s.HubCPUPer1k, 3),
		fixed(s.ServerCores, 2), fixed(s.ServerCPUPer1k, 3), fixed(s.DriverCores, 2),
		fmt.Sprintf("%d/%d of %d", s.Markers.Alerts, s.Markers.Cases, s.Markers.Sent),
		s.Markers.AlertLatency.String(), s.Markers.CaseLatency.String(),
	}
	tail := ""
	if !s.KeptUp {
		tail = "  ← " + s.Verdict
	}
	return writeLine(w, cells, servers, tail)
}

// writeLine writes cells in the columns' widths, the servers' only with
// servers, and tail after them.
func writeLine(w io.Writer, cells []string, servers bool, tail string) error {
	var b strings.Builder
	for i, c := range columns {
		if c.server && !servers {
			continue
		}
		fmt.Fprintf(&b, "%*s", c.width+1, cells[i])
	}
	_, err := fmt.Fprintln(w, strings.TrimLeft(b.String(), " ")+tail)
	return err
}

// WriteTable writes the whole report as a table, with what the columns
// mean and where the hub saturated.
func (r Report) WriteTable(w io.Writer) error {
	servers := slices.ContainsFunc(r.Steps, func(s Step) bool { return s.ServerCores != nil })
	if err := WriteHeader(w, servers); err != nil {
		return err
	}
	for _, s := range r.Steps {
		if err := s.WriteRow(w, servers); err != nil {
			return err
		}
	}
	return r.WriteSummary(w)
}

// WriteSummary writes what follows the rows: the verdict and how to read
// the columns.
func (r Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	switch {
	case r.Saturated != "":
		fmt.Fprintf(&b, "\nsaturated: %s\n", r.Saturated)
	case len(r.Steps) > 0:
		fmt.Fprintf(&b, "\nthe hub kept up with every step\n")
	}
	if r.MarkersFailed > 0 {
		fmt.Fprintf(&b, "%d markers could not be posted and are left out\n", r.MarkersFailed)
	}
	if r.Reconnects > 0 {
		fmt.Fprintf(&b, "the websocket was lost %d times; markers whose deltas came meanwhile count as not seen\n", r.Reconnects)
	}
	fmt.Fprintf(&b, "mix %s, %gs steps, %d connections, batches of up to %d, %g markers/s\n", r.Mix, r.StepSeconds, r.Conns, r.BatchSize, r.MarkerRate)
	b.WriteString("lag: " + r.LagSource + "\n")
	b.WriteString("hub cores, CPU s/1k: the hub's process_cpu_seconds_total per second and per 1,000 accepted events; driver: this process's cores\n")
	if slices.ContainsFunc(r.Steps, func(s Step) bool { return s.ServerCores != nil }) {
		b.WriteString("server cores, server s/1k: the same for the processes of --server-pid together\n")
	}
	b.WriteString("markers a/c: markers seen as alerts / as cases; latencies from the POST's send to the delta on the websocket; - : not seen in time\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (l Latency) String() string {
	ms := func(p *float64) string {
		if p == nil {
			return "-"
		}
		if *p < 10 {
			return strconv.FormatFloat(*p, 'f', 1, 64)
		}
		return strconv.FormatFloat(math.Round(*p), 'f', 0, 64)
	}
	return ms(l.P50) + " / " + ms(l.P95) + " / " + ms(l.P99)
}

// count formats n with thousands separators.
func count(n float64) string {
	s := strconv.FormatInt(int64(math.Round(n)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fixed(p *float64, digits int) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', digits, 64)
}
