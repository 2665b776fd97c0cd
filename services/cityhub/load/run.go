package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// ErrRefused is returned when the hub refuses the driver's tokens, origin
// or events (a 4xx answer): going on would measure nothing. Its message
// reads "the hub refused …" with the hub's own reason.
var ErrRefused = errors.New("the hub refused")

// Keeping up: a step fails when intake accepts less than acceptedShare of
// the target; when the ruler's backlog grows by more than lagShare of the
// events accepted in the step (and by more than lagFloor events, since the
// ruler takes events in batches of thousands and the backlog jumps by a
// batch at a time); or when more than overdueShare of the markers sent in
// the step's first half (at least overdueFloor of them) still wait for
// their alert or case at its end — the stages after the ruler (dispatch,
// the gateway) are then seconds behind, though the ruler keeps up.
const (
	acceptedShare = 0.9
	lagShare      = 0.1
	lagFloor      = 5000
	overdueShare  = 0.1
	overdueFloor  = 5
)

// Run drives the hub at o.URL step by step and returns what it measured.
// It stops early, with Report.Saturated set, at the first step the hub
// cannot keep up with. It fails with an error wrapping ErrRefused when the
// hub refuses a token or the events, and returns what it measured so far
// when ctx ends.
func Run(ctx context.Context, o Options) (Report, error) {
	o.defaults()
	if o.CatalogPath == "" {
		return Report{}, fmt.Errorf("load: %w", o.Validate())
	}
	cat, err := catalog.Load(o.CatalogPath)
	if err != nil {
		return Report{}, fmt.Errorf("load: %w", err)
	}
	if o.MarkerDistrict == "" && len(cat.Districts) > 0 {
		o.MarkerDistrict = cat.Districts[0].Code
	}
	if err := o.Validate(); err != nil {
		return Report{}, fmt.Errorf("load: %w", err)
	}
	if _, ok := cat.District(o.MarkerDistrict); !ok {
		return Report{}, fmt.Errorf("load: marker district %q is not in the catalog", o.MarkerDistrict)
	}
	if _, ok := cat.EventType(markerType); !ok {
		return Report{}, fmt.Errorf("load: the catalog has no event type %s, which the markers are (rule %s)", markerType, markerRule)
	}
	seed := o.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	g, err := newGenerator(o.Mix, cat, seed)
	if err != nil {
		return Report{}, fmt.Errorf("load: %w", err)
	}
	p, err := newPool(g, poolSize, time.Now())
	if err != nil {
		return Report{}, fmt.Errorf("load: %w", err)
	}
	r := newRunner(o, p)
	defer r.close()
	rep, err := r.run(ctx)
	if err != nil {
		return rep, fmt.Errorf("load: %w", err)
	}
	return rep, nil
}

// runner is one run: its connections, its counters and its markers.
type runner struct {
	o    Options
	pool *pool
	// idPrefix starts every event id of the run; markerPrefix every
	// marker's.
	idPrefix, markerPrefix string
	book                   *book
	// bulk posts the mix's batches over at most Conns connections;
	// control carries the markers and the scrapes, so that they never
	// wait behind a batch.
	bulk, control *http.Client
	scraper       *scraper

	step                         atomic.Int64 // the step markers belong to
	sent, accepted, shed, failed atomic.Int64
	markersFailed                atomic.Int64
}

func newRunner(o Options, p *pool) *runner {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	bulk := &http.Transport{
		MaxConnsPerHost: o.Conns, MaxIdleConnsPerHost: o.Conns, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}
	control := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, DisableCompression: true}
	r := &runner{
		o:            o,
		pool:         p,
		idPrefix:     "load-" + run + "-",
		markerPrefix: "load-" + run + "-m",
		bulk:         &http.Client{Transport: bulk, Timeout: o.RequestTimeout},
		control:      &http.Client{Transport: control, Timeout: o.RequestTimeout},
	}
	r.book = newBook(r.markerPrefix)
	r.scraper = &scraper{url: metricsURL(o.URL), token: o.WatchToken, client: r.control}
	return r
}

// close closes the idle keep-alive connections, whose goroutines would
// otherwise outlive the run.
func (r *runner) close() {
	r.bulk.CloseIdleConnections()
	r.control.CloseIdleConnections()
}

// counters is a reading of the driver's own counters.
type counters struct {
	sent, accepted, shed, failed int64
	driverCPU                    time.Duration
	hasDriverCPU                 bool
	serverCPU                    time.Duration
	hasServerCPU                 bool
}

func (r *runner) counters() counters {
	c := counters{sent: r.sent.Load(), accepted: r.accepted.Load(), shed: r.shed.Load(), failed: r.failed.Load()}
	if d, err := selfCPU(); err == nil {
		c.driverCPU, c.hasDriverCPU = d, true
	}
	if len(r.o.ServerPIDs) > 0 {
		c.hasServerCPU = true
		for _, pid := range r.o.ServerPIDs {
			d, err := processCPU(pid)
			if err != nil {
				r.o.Logger.Warn("cannot read a server's CPU", "pid", pid, "err", err)
				c.hasServerCPU = false
				break
			}
			c.serverCPU += d
		}
	}
	return c
}

func (r *runner) run(ctx context.Context) (Report, error) {
	o := r.o
	rep := Report{
		URL: o.URL, Mix: o.Mix, StepSeconds: o.Step.Seconds(), Conns: o.Conns, BatchSize: o.BatchSize,
		MarkerRate: o.MarkerRate, LagSource: LagSource,
	}
	base, err := r.scraper.scrape(ctx)
	if err != nil {
		return rep, err
	}
	w, err := newWatcher(o, r.book)
	if err != nil {
		return rep, err
	}
	conn, err := w.dial(ctx)
	if err != nil {
		return rep, err
	}

	g, gctx := errgroup.WithContext(ctx)
	watchCtx, stopWatching := context.WithCancel(gctx)
	defer stopWatching()
	g.Go(func() error { return w.run(watchCtx, conn) })
	jobs := make(chan int, o.Conns)
	for i := range o.Conns {
		enc := newEncoder(r.pool, r.idPrefix+strconv.Itoa(i)+"-", i*len(r.pool.templates)/o.Conns)
		g.Go(func() error { return r.post(gctx, jobs, enc) })
	}
	markersCtx, stopMarkers := context.WithCancel(gctx)
	defer stopMarkers()
	g.Go(func() error { return r.markers(markersCtx) })

	// A step's markers are settled once the next step has run (or, for
	// the last, after o.MarkerWait): by then those the hub kept up with
	// have long arrived.
	pending := -1
	settle := func(i int) {
		rep.Steps[i].Markers = r.book.summary(i)
		if o.OnStep != nil {
			o.OnStep(rep.Steps[i])
		}
	}
	prev, prevC := base, r.counters()
	var stepErr error
	for i, rate := range o.Rates {
		r.step.Store(int64(i))
		o.Logger.Info("step", "n", i+1, "of", len(o.Rates), "target_per_sec", rate, "seconds", o.Step.Seconds())
		if err := r.pace(gctx, jobs, rate, o.Step); err != nil {
			break
		}
		cur, err := r.scraper.scrape(gctx)
		if err != nil {
			if gctx.Err() == nil {
				stepErr = err
			}
			break
		}
		curC := r.counters()
		st := measure(rate, base, prev, cur, prevC, curC)
		if st.KeptUp {
			judgeMarkers(&st, o.Step/2, r.book, i, cur.at.Add(-o.Step/2))
		}
		rep.Steps = append(rep.Steps, st)
		if pending >= 0 {
			settle(pending)
		}
		pending = i
		prev, prevC = cur, curC
		if !st.KeptUp {
			if i < len(o.Rates)-1 {
				rep.Saturated = fmt.Sprintf("at %s events/s: %s; the steps above were not run", count(rate), st.Verdict)
			} else {
				rep.Saturated = fmt.Sprintf("at %s events/s: %s", count(rate), st.Verdict)
			}
			break
		}
	}
	close(jobs)
	stopMarkers()
	if pending >= 0 && gctx.Err() == nil {
		r.awaitMarkers(gctx, pending)
	}
	stopWatching()
	err = errors.Join(stepErr, g.Wait())
	if pending >= 0 {
		settle(pending)
	}
	rep.Reconnects = w.reconnects.Load()
	rep.MarkersFailed = r.markersFailed.Load()
	if err == nil {
		err = ctx.Err()
	}
	return rep, err
}

// awaitMarkers waits, up to o.MarkerWait, for the alerts and cases of the
// markers of steps from on.
func (r *runner) awaitMarkers(ctx context.Context, from int) {
	deadline := time.NewTimer(r.o.MarkerWait)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for r.book.outstanding(from) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-poll.C:
		}
	}
}

// measure makes a step of the readings at its start and end.
func measure(rate float64, base, s0, s1 sample, c0, c1 counters) Step {
	secs := s1.at.Sub(s0.at).Seconds()
	st := Step{
		Target:         rate,
		Seconds:        secs,
		Sent:           c1.sent - c0.sent,
		Accepted:       c1.accepted - c0.accepted,
		Shed:           c1.shed - c0.shed,
		FailedRequests: c1.failed - c0.failed,
		CasesOpened:    int64(s1.cases - s0.cases),
	}
	st.AcceptedRate = float64(st.Accepted) / secs
	ruled := s1.ruled - s0.ruled
	st.RuledRate = ruled / secs
	if ruled > 0 {
		st.AlertsPerEvent = (s1.alerts - s0.alerts) / ruled
	}
	lag := func(s sample) int64 { return int64((s.intake - base.intake) - (s.ruled - base.ruled)) }
	st.Lag = lag(s1)
	st.LagGrowth = st.Lag - lag(s0)
	per1k := func(cpu float64) *float64 {
		if st.Accepted == 0 {
			return nil
		}
		return ptr(cpu / (float64(st.Accepted) / 1000))
	}
	if s0.hasCPU && s1.hasCPU {
		cpu := s1.cpu - s0.cpu
		st.HubCPUSeconds, st.HubCores, st.HubCPUPer1k = ptr(cpu), ptr(cpu/secs), per1k(cpu)
	}
	if c0.hasServerCPU && c1.hasServerCPU {
		cpu := (c1.serverCPU - c0.serverCPU).Seconds()
		st.ServerCores, st.ServerCPUPer1k = ptr(cpu/secs), per1k(cpu)
	}
	if c0.hasDriverCPU && c1.hasDriverCPU {
		st.DriverCores = ptr((c1.driverCPU - c0.driverCPU).Seconds() / secs)
	}
	accepted := s1.intake - s0.intake
	switch {
	case st.AcceptedRate < acceptedShare*rate:
		st.Verdict = fmt.Sprintf("intake accepted %s events/s, %.0f%% of the target", count(st.AcceptedRate), 100*st.AcceptedRate/rate)
		if st.Shed > 0 {
			st.Verdict += fmt.Sprintf(" (%s events not sent: every connection was waiting for intake)", count(float64(st.Shed)))
		}
	case float64(st.LagGrowth) > max(lagShare*accepted, lagFloor):
		st.Verdict = fmt.Sprintf("the ruler fell behind: its backlog grew by %s events to %s", count(float64(st.LagGrowth)), count(float64(st.Lag)))
	default:
		st.KeptUp = true
	}
	return st
}

// judgeMarkers fails st when too many of the markers of step sent before
// cutoff, at least age ago, still wait for their alert or case.
func judgeMarkers(st *Step, age time.Duration, b *book, step int, cutoff time.Time) {
	total, noAlert, noCase := b.overdue(step, cutoff)
	if total < overdueFloor {
		return
	}
	switch limit := overdueShare * float64(total); {
	case float64(noAlert) > limit:
		st.KeptUp = false
		st.Verdict = fmt.Sprintf("%d of %d markers older than %v had no alert yet", noAlert, total, age)
	case float64(noCase) > limit:
		st.KeptUp = false
		st.Verdict = fmt.Sprintf("%d of %d markers older than %v had no case yet: the stages after the ruler fell behind", noCase, total, age)
	}
}

func ptr(f float64) *float64 { return &f }

// pace hands batches to the posting connections at rate events a second
// for d: a batch as soon as BatchSize events are due, or once the oldest
// due event has waited Linger. A batch that finds every connection busy is
// shed, not queued, so the driver never sends in bursts to catch up.
func (r *runner) pace(ctx context.Context, jobs chan<- int, rate float64, d time.Duration) error {
	start := time.Now()
	end := start.Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var owed float64
	last, lastBatch := start, start
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		done := !now.Before(end)
		if done {
			now = end
		}
		owed += rate * now.Sub(last).Seconds()
		last = now
		for owed >= float64(r.o.BatchSize) || (owed >= 1 && (now.Sub(lastBatch) >= r.o.Linger || done)) {
			n := min(int(owed), r.o.BatchSize)
			select {
			case jobs <- n:
			default:
				r.shed.Add(int64(n))
			}
			owed -= float64(n)
			lastBatch = now
		}
		if done {
			return nil
		}
	}
}

// post sends the batches handed to it on one connection until jobs is
// closed or ctx ends. Only a refusal ends the run: a failed request is
// counted and the next one tried.
func (r *runner) post(ctx context.Context, jobs <-chan int, enc *encoder) error {
	for {
		var n int
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-jobs:
			if !ok {
				return nil
			}
			n = m
		}
		body := enc.batch(n, time.Now())
		r.sent.Add(int64(n))
		err := r.send(ctx, r.bulk, body)
		switch {
		case err == nil:
			r.accepted.Add(int64(n))
		case errors.Is(err, ErrRefused):
			return err
		case ctx.Err() != nil:
			return nil
		default:
			r.failed.Add(1)
			r.o.Logger.Debug("a batch failed", "events", n, "err", err)
		}
	}
}

// markers sends o.MarkerRate marker events a second until ctx ends.
func (r *runner) markers(ctx context.Context) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.o.MarkerRate))
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		id := r.markerPrefix + strconv.Itoa(n)
		body, err := json.Marshal([]events.Input{markerEvent(id, r.o.MarkerDistrict, time.Now())})
		if err != nil {
			return err
		}
		r.book.add(id, int(r.step.Load()), time.Now())
		switch err := r.send(ctx, r.control, body); {
		case err == nil:
		case errors.Is(err, ErrRefused):
			return err
		case ctx.Err() != nil:
			r.book.drop(id)
			return nil
		default:
			r.book.drop(id)
			r.markersFailed.Add(1)
			r.o.Logger.Debug("a marker failed", "err", err)
		}
	}
}

// send posts one batch and reads the answer to its end, so that the
// connection is kept.
func (r *runner) send(ctx context.Context, c *http.Client, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.o.URL, "/")+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.o.Token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return fmt.Errorf("%w the events (%s): %s", ErrRefused, resp.Status, bytes.TrimSpace(msg))
	}
	return fmt.Errorf("post events: %s: %s", resp.Status, bytes.TrimSpace(msg))
}
