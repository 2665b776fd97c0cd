// Package delivery runs the workers that deliver the queued notifications:
// one per receiver, so that a slow or dead receiver holds up only its own
// deliveries. A worker claims what is due, gathers deliveries of one group
// into one message, renders and sends it, and decides on failure: retry
// after a backoff with jitter (no sooner than a Retry-After), fail over to
// the receiver's fallback after FallbackAfter failures of a delivery or at
// once on a failure that retrying cannot fix, and give up to the
// dead-letter topic when there is nowhere left to go.
//
// A failure that may pass pauses the whole receiver, not just the
// delivery: a receiver that is down is down for every message, and a
// retried delivery keeps its place, so that the messages of a case reach a
// receiver that comes back in the order they were decided. A circuit
// breaker per receiver sends what comes while it is open to the fallback.
// Every attempt is recorded with the case and counted in metrics.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/notify/queue"
	"github.com/cityhub/cityhub/services/notify/receiver"
)

// Receiver is one receiver as the engine runs it.
type Receiver struct {
	Config   *config.Receiver
	Notifier receiver.Notifier
	// Template renders its messages.
	Template *message.Template
}

// DeadLetterFunc takes a delivery given up on, with why.
type DeadLetterFunc func(ctx context.Context, d *queue.Delivery, reason error) error

// Options configures an Engine.
type Options struct {
	Queue     *queue.Queue
	Log       *Log
	Receivers map[string]*Receiver
	// DeadLetter takes what cannot be delivered anywhere; it must be
	// durable before it returns (a Kafka write acknowledged).
	DeadLetter DeadLetterFunc
	// Poll is how often an idle worker looks for due deliveries; 1s.
	Poll time.Duration
	// Lease is how long a worker holds what it claimed; 1m.
	Lease time.Duration
	// Batch bounds the deliveries claimed at once; 64.
	Batch int
	// MaxAttempts bounds the tries of a delivery with nowhere to fail over
	// to before it is given up; 20.
	MaxAttempts int
	// Backoff is the first retry's wait, doubled per attempt up to
	// MaxBackoff, with jitter; 2s and 5m.
	Backoff, MaxBackoff time.Duration
	// BreakerThreshold failures in a row open a receiver's breaker for
	// BreakerCooldown; 5 and 30s.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	Now              func() time.Time
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
}

func (o *Options) defaults() {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 20
	}
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
}

// Engine delivers the queued notifications of every receiver.
type Engine struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	rnd     func() float64

	mu        sync.Mutex
	receivers map[string]*Receiver
	breakers  map[string]*Breaker
	wake      map[string]chan struct{}
	paused    map[string]pause // by receiver
	// While Run runs: its context, and the workers' stops by receiver.
	running context.Context
	workers map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// pause holds a receiver back after failures that may pass.
type pause struct {
	until    time.Time
	failures int // in a row
}

type metrics struct {
	deliveries *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
	breaker    *prometheus.GaugeVec
}

// New checks opts and returns an Engine; Run starts its workers.
func New(opts Options) (*Engine, error) {
	if opts.Queue == nil || opts.Log == nil || opts.DeadLetter == nil || len(opts.Receivers) == 0 {
		return nil, errors.New("delivery: a queue, an attempt log, a dead-letter func and receivers are required")
	}
	opts.defaults()
	f := promauto.With(opts.Registerer)
	e := &Engine{
		opts:     opts,
		log:      opts.Logger.With("component", "delivery"),
		breakers: map[string]*Breaker{},
		wake:     map[string]chan struct{}{},
		paused:   map[string]pause{},
		workers:  map[string]context.CancelFunc{},
		rnd:      rand.Float64,
		metrics: &metrics{
			deliveries: f.NewCounterVec(prometheus.CounterOpts{
				Name: "cityhub_notify_deliveries_total",
				Help: "Delivery attempts by receiver and outcome (sent, retrying, failed_over, dead).",
			}, []string{"receiver", "outcome"}),
			seconds: f.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "cityhub_notify_delivery_seconds",
				Help:    "Time a receiver took to take or refuse a message.",
				Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
			}, []string{"receiver"}),
			breaker: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "cityhub_notify_breaker_state",
				Help: "A receiver's circuit breaker: 0 closed, 1 half-open, 2 open.",
			}, []string{"receiver"}),
		},
	}
	e.SetReceivers(opts.Receivers)
	return e, nil
}

// SetReceivers replaces the receivers the engine delivers to (a reloaded
// notify.yaml): a new receiver gets a worker, a removed one's worker stops
// — what is queued for it waits in Redis for a receiver of its name — and
// a receiver kept by name keeps its breaker and its pause.
func (e *Engine) SetReceivers(rs map[string]*Receiver) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, stop := range e.workers {
		if _, ok := rs[name]; !ok {
			stop()
			delete(e.workers, name)
		}
	}
	for name := range e.receivers {
		if _, ok := rs[name]; !ok {
			delete(e.breakers, name)
			delete(e.wake, name)
			delete(e.paused, name)
			e.metrics.breaker.DeleteLabelValues(name)
		}
	}
	e.receivers = rs
	for name := range rs {
		if _, ok := e.breakers[name]; !ok {
			e.breakers[name] = &Breaker{Threshold: e.opts.BreakerThreshold, Cooldown: e.opts.BreakerCooldown}
			e.wake[name] = make(chan struct{}, 1)
			e.metrics.breaker.WithLabelValues(name).Set(0)
		}
		if e.running != nil && e.workers[name] == nil {
			e.start(name)
		}
	}
}

// start starts receiver's worker; e.mu is held.
func (e *Engine) start(name string) {
	ctx, stop := context.WithCancel(e.running)
	e.workers[name] = stop
	wake := e.wake[name]
	e.wg.Go(func() { e.work(ctx, name, wake) })
}

// Wake tells receiver's worker that something was queued for it, so that
// it looks before its next poll.
func (e *Engine) Wake(receiver string) {
	e.mu.Lock()
	ch, ok := e.wake[receiver]
	e.mu.Unlock()
	if ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run runs one worker per receiver until ctx ends, and returns nil then,
// once every worker has finished what it was sending.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running != nil {
		e.mu.Unlock()
		return errors.New("delivery: the engine is running already")
	}
	e.running = ctx
	for name := range e.receivers {
		e.start(name)
	}
	e.mu.Unlock()
	<-ctx.Done()
	e.wg.Wait()
	e.mu.Lock()
	e.running, e.workers = nil, map[string]context.CancelFunc{}
	e.mu.Unlock()
	return nil
}

// work delivers receiver's deliveries until ctx ends.
func (e *Engine) work(ctx context.Context, name string, wake <-chan struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		wait, err := e.Step(ctx, name)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("delivering failed; trying again", "receiver", name, "err", err)
			wait = e.opts.Poll
		}
		t.Reset(wait)
	}
}

// Step claims and delivers what is due for receiver now, and returns how
// long its worker may wait before looking again. Tests drive it directly.
//
// The claimed deliveries go out in lanes: a lane holds every message of
// its cases, in order, and up to the receiver's Parallel lanes send at
// once. A failure that may pass pauses the receiver: the lanes stop, and
// what they had not tried goes back in its place, so that a case's
// messages are never sent out of order. Sends are not cut short when ctx
// ends: what is in flight is finished and settled, the rest released.
//
// While a full claim is sent, the next is claimed, and what a claim
// settled (its attempts, and each delivery's outcome) is written while the
// next one is sent: Redis round trips overlap the receiver's. When a claim
// ends paused or stopped, the one claimed behind it is released untried.
func (e *Engine) Step(ctx context.Context, name string) (time.Duration, error) {
	e.mu.Lock()
	r, br := e.receivers[name], e.breakers[name]
	e.mu.Unlock()
	if r == nil {
		return e.opts.Poll, fmt.Errorf("delivery: no receiver %q", name)
	}
	now := e.opts.Now()
	if until := e.pausedUntil(name); now.Before(until) {
		return min(e.opts.Poll, until.Sub(now)), nil
	}
	state := br.State(now)
	e.metrics.breaker.WithLabelValues(name).Set(float64(state))
	if state == Open && r.Config.Fallback == "" {
		// Nowhere else to send them: they wait for the cool-down.
		return min(e.opts.Poll, time.Until(br.ReopensAt())+time.Millisecond), nil
	}
	batch := e.opts.Batch
	if state == HalfOpen {
		batch = 1 // one trial delivery decides
	}
	claimed, err := e.opts.Queue.Claim(ctx, name, now, e.opts.Lease, batch)
	if err != nil {
		return e.opts.Poll, err
	}
	var flushing chan error // the claim before's settling, written in order
	for {
		full := len(claimed) == batch && batch > 1
		var next chan claim
		if full {
			next = make(chan claim, 1)
			go func() {
				// Claimed whatever happens to ctx, so that it can be released.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
				defer cancel()
				at := e.opts.Now()
				c, err := e.opts.Queue.Claim(ctx, name, at, e.opts.Lease, batch)
				next <- claim{c, at, err}
			}()
		}
		st := &step{e: e, r: r, br: br, ctx: ctx}
		st.run(lanes(groups(st.readable(claimed))), max(1, r.Config.Parallel))
		stopped := st.stopped.Load() || st.halted.Load() || ctx.Err() != nil
		var ahead claim
		if next != nil {
			ahead = <-next
			// A claim ahead waits for its turn under a lease that runs
			// from the claim: one that waited half of it goes back
			// untried, before the lease could run out under its send.
			if ahead.err == nil && (stopped || e.opts.Now().Sub(ahead.at) > e.opts.Lease/2) {
				st.releaseClaimed(ahead.claimed)
				ahead.claimed, stopped = nil, true
			}
		}
		if flushing != nil {
			if err := <-flushing; err != nil {
				// What this claim settled, and what was claimed behind it,
				// must not wait for their leases.
				st.releaseClaimed(ahead.claimed)
				<-st.flushing(ctx)
				return e.opts.Poll, err
			}
		}
		flushing = st.flushing(ctx)
		if next == nil || stopped {
			break
		}
		if ahead.err != nil {
			err = ahead.err
			break
		}
		claimed = ahead.claimed
		if len(claimed) == 0 {
			break
		}
	}
	if ferr := <-flushing; ferr != nil {
		return e.opts.Poll, ferr
	}
	if err != nil {
		return e.opts.Poll, err
	}
	if len(claimed) == batch && batch > 1 && ctx.Err() == nil && !e.opts.Now().Before(e.pausedUntil(name)) && br.State(e.opts.Now()) != Open {
		return 0, nil // more may be due
	}
	return e.opts.Poll, nil
}

// redisTimeout bounds one claim, and one claim's settling, which go on
// after the step's context has ended.
const redisTimeout = 10 * time.Second

// claim is what one claim brought, and when it was made.
type claim struct {
	claimed []queue.Claimed
	at      time.Time
	err     error
}

// flushing writes what st settled — its attempts, then each delivery's
// outcome — in a goroutine, and returns where the result will be. A
// failed settle leaves the deliveries leased: they come back when the
// lease runs out.
func (st *step) flushing(ctx context.Context) chan error {
	done := make(chan error, 1)
	name := st.r.Config.Name
	go func() {
		// Settled even when ctx has ended: what was sent must not be sent
		// again.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
		defer cancel()
		if err := st.e.opts.Log.RecordAll(ctx, st.attempts); err != nil {
			st.e.log.Warn("recording attempts failed", "receiver", name, "err", err)
		}
		if err := st.e.opts.Queue.Settle(ctx, name, st.settled); err != nil {
			done <- fmt.Errorf("settling %d deliveries (their leases will bring them back): %w", len(st.settled), err)
			return
		}
		done <- nil
	}()
	return done
}

func (e *Engine) pausedUntil(name string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.paused[name].until
}

// groups gathers claimed deliveries by group, keeping the order of the
// first of each.
func groups(claimed []queue.Claimed) [][]queue.Claimed {
	var out [][]queue.Claimed
	index := map[string]int{}
	for _, c := range claimed {
		i, ok := index[c.Group]
		if !ok || c.Group == "" {
			index[c.Group] = len(out)
			out = append(out, []queue.Claimed{c})
			continue
		}
		out[i] = append(out[i], c)
	}
	return out
}

// lanes puts groups that share a case (or, without one, a group) in one
// lane, in their order; lanes share nothing and may go out side by side.
func lanes(groups [][]queue.Claimed) [][][]queue.Claimed {
	laneOf := map[string]int{} // case or group → lane
	var out [][][]queue.Claimed
	for _, g := range groups {
		lane := -1
		for _, c := range g {
			if i, ok := laneOf[laneKey(c)]; ok {
				if lane >= 0 && lane != i {
					// The group joins two lanes: merge the later into the
					// earlier, groups in claim order.
					out[lane] = mergeLanes(out[lane], out[i])
					for k, v := range laneOf {
						if v == i {
							laneOf[k] = lane
						}
					}
					out[i] = nil
					continue
				}
				lane = i
			}
		}
		if lane < 0 {
			lane = len(out)
			out = append(out, nil)
		}
		out[lane] = append(out[lane], g)
		for _, c := range g {
			laneOf[laneKey(c)] = lane
		}
	}
	return slices.DeleteFunc(out, func(l [][]queue.Claimed) bool { return l == nil })
}

func laneKey(c queue.Claimed) string {
	if c.CaseID != "" {
		return "c:" + c.CaseID
	}
	return "g:" + c.Group
}

// mergeLanes merges two lanes' groups, each already in claim order, by the
// due time of their first delivery.
func mergeLanes(a, b [][]queue.Claimed) [][]queue.Claimed {
	out := append(slices.Clone(a), b...)
	slices.SortStableFunc(out, func(x, y []queue.Claimed) int { return x[0].Due.Compare(y[0].Due) })
	return out
}

// step is one Step's deliveries: what they settled, for one write at the
// end.
type step struct {
	e   *Engine
	r   *Receiver
	br  *Breaker
	ctx context.Context
	// stopped is set when a failure that may pass paused the receiver, or
	// ctx ended: lanes stop and release what they have not tried.
	stopped atomic.Bool
	// halted is set when the breaker opened with no fallback: lanes
	// release what they hold, and no more is claimed.
	halted atomic.Bool
	wait   time.Duration // the pause, once set

	mu       sync.Mutex
	settled  []queue.Settlement
	attempts []CaseAttempt
}

// run sends lanes, at most parallel at once.
func (st *step) run(lanes [][][]queue.Claimed, parallel int) {
	if parallel == 1 || len(lanes) == 1 {
		for _, l := range lanes {
			st.lane(l)
		}
		return
	}
	// parallel senders take the lanes in turn: a goroutine per lane would
	// grow a new stack for each (rendering recurses deeply).
	next := make(chan [][]queue.Claimed)
	var wg sync.WaitGroup
	for range min(parallel, len(lanes)) {
		wg.Go(func() {
			for l := range next {
				st.lane(l)
			}
		})
	}
	for _, l := range lanes {
		next <- l
	}
	close(next)
	wg.Wait()
}

// lane sends a lane's groups one after another, until one fails in a way
// that may pass.
func (st *step) lane(l [][]queue.Claimed) {
	for i, g := range l {
		if st.stopped.Load() || st.ctx.Err() != nil {
			st.release(l[i:])
			return
		}
		if st.br.State(st.e.opts.Now()) == Open {
			if st.r.Config.Fallback == "" {
				// Nowhere to send them until the cool-down: the step ends.
				st.halted.Store(true)
				st.release(l[i:])
				return
			}
			// The breaker is open and there is a fallback: go there now.
			err := fmt.Errorf("receiver %s is failing (circuit open)", st.r.Config.Name)
			for _, c := range g {
				st.failOver(c, err, 0)
			}
			continue
		}
		if !st.deliver(g) {
			st.release(l[i+1:])
			return
		}
	}
}

// releaseClaimed puts back, untried and in their place, what was claimed
// behind a step that stopped.
func (st *step) releaseClaimed(claimed []queue.Claimed) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, c := range claimed {
		st.settled = append(st.settled, queue.Settlement{Delivery: &c.Delivery, Outcome: queue.Released, At: c.Due})
	}
}

// release puts back, untried and in their place, the deliveries of gs.
func (st *step) release(gs [][]queue.Claimed) {
	for _, g := range gs {
		st.releaseClaimed(g)
	}
}

// deliver sends one group as one message and settles each delivery of it.
// It reports false when the receiver was paused: the lane stops.
func (st *step) deliver(group []queue.Claimed) bool {
	e, r := st.e, st.r
	name := r.Config.Name
	first := group[0]
	m := *first.Message
	m.Count = len(group)
	m.More = nil
	for _, c := range group[1:] {
		b := message.Brief{Change: c.Message.Change, At: c.Message.At}
		if c.Message.Case != nil {
			b.CaseID, b.Title = c.Message.Case.ID, c.Message.Case.Title
		}
		m.More = append(m.More, b)
	}
	rendered, err := r.Template.Render(&m)
	start := time.Now()
	if err == nil {
		timeout := r.Config.Timeout
		if timeout <= 0 {
			timeout = config.DefaultTimeout
		}
		// A send in flight is finished even when the engine stops: cut
		// short, it may or may not have arrived.
		sendCtx, cancel := context.WithTimeout(context.WithoutCancel(st.ctx), timeout)
		err = r.Notifier.Notify(sendCtx, &receiver.Notification{ID: sendID(first), Receiver: name, Message: &m, Rendered: rendered})
		cancel()
	} else {
		err = &receiver.Error{Err: fmt.Errorf("rendering: %w", err)}
	}
	took := time.Since(start)
	e.metrics.seconds.WithLabelValues(name).Observe(took.Seconds())
	br := st.br
	if err == nil {
		br.Success()
		e.mu.Lock()
		delete(e.paused, name)
		e.mu.Unlock()
		for _, c := range group {
			outcome, again := queue.Delivered, time.Time{}
			if c.RepeatEvery > 0 && c.Sends < c.Repeats {
				// It chases a part nobody has accepted yet: it goes again
				// after RepeatEvery, unless an accept cancels it first.
				outcome, again = queue.Repeated, e.opts.Now().Add(c.RepeatEvery)
			}
			st.settle(c, Attempt{Outcome: Sent, Seconds: took.Seconds()}, outcome, again)
		}
		return true
	}
	br.Failure(e.opts.Now())
	var wait time.Duration
	if retry, after := receiver.Retryable(err); retry {
		wait = st.pause(after) // once per step, however many messages failed
	}
	kept := false
	for _, c := range group {
		if st.failed(c, err, took, wait) {
			kept = true
		}
	}
	return !kept
}

// pause holds the receiver back after a failure that may pass, once per
// step, and returns the wait.
func (st *step) pause(after time.Duration) time.Duration {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.stopped.Load() {
		st.wait = st.e.pause(st.r.Config.Name, after)
		st.stopped.Store(true)
	}
	return st.wait
}

// failed decides what happens to c after err. It reports whether c goes
// back to wait for the receiver (and so holds its lane back).
func (st *step) failed(c queue.Claimed, err error, took, wait time.Duration) bool {
	r := st.r
	retry, _ := receiver.Retryable(err)
	var re *receiver.Error
	gone := errors.As(err, &re) && re.Gone
	tries := c.Attempts + 1
	switch {
	case retry && !gone && tries < fallbackAfter(r.Config) && tries < st.e.opts.MaxAttempts:
	case retry && !gone && r.Config.Fallback == "" && tries < st.e.opts.MaxAttempts:
	default:
		st.failOver(c, err, took)
		return false
	}
	// It keeps its place: the pause, not a later due time, holds it back.
	st.settle(c, Attempt{Outcome: Retrying, Error: err.Error(), Status: status(err), Seconds: took.Seconds(), RetryIn: wait.Seconds()}, queue.Retried, c.Due)
	return true
}

// pause holds receiver back after one more failure in a row: a backoff
// with jitter, no shorter than after (a Retry-After). It returns the wait.
func (e *Engine) pause(receiver string, after time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.paused[receiver]
	p.failures++
	wait := max(backoff(p.failures, e.opts.Backoff, e.opts.MaxBackoff, e.rnd), after)
	if until := e.opts.Now().Add(wait); until.After(p.until) {
		p.until = until
	}
	e.paused[receiver] = p
	return wait
}

// failOver hands c to its receiver's fallback, or gives it up to the
// dead-letter topic when there is none.
func (st *step) failOver(c queue.Claimed, err error, took time.Duration) {
	e, name := st.e, st.r.Config.Name
	ctx := context.WithoutCancel(st.ctx)
	// notify.yaml refuses fallbacks that lead round in a circle, so a
	// delivery failing over and over ends at a receiver without one.
	if fb := st.r.Config.Fallback; fb != "" {
		d := c.Delivery
		d.ID = sendID(c) + ">" + fb
		// The fallback carries on with the repeats left.
		d.Repeats = max(0, c.Repeats-c.Sends)
		d.Receiver, d.FallbackFrom, d.Due = fb, name, e.opts.Now()
		if _, qerr := e.opts.Queue.Enqueue(ctx, &d); qerr != nil {
			e.log.Warn("failing over failed; retrying later", "receiver", name, "fallback", fb, "err", qerr)
			st.settle(c, Attempt{Outcome: Retrying, Error: err.Error(), Status: status(err), Seconds: took.Seconds()}, queue.Retried, e.opts.Now().Add(e.opts.Backoff))
			return
		}
		e.Wake(fb)
		st.settle(c, Attempt{Outcome: FailedOver, Error: err.Error(), Status: status(err), Seconds: took.Seconds(), FallbackTo: fb}, queue.Delivered, time.Time{})
		return
	}
	st.giveUp(c, err, took)
}

// readable gives up the claimed deliveries that cannot be read, and
// returns the others.
func (st *step) readable(claimed []queue.Claimed) []queue.Claimed {
	out := claimed[:0:0]
	for _, c := range claimed {
		if c.Err != nil {
			st.e.log.Warn("giving up a delivery that cannot be read", "receiver", c.Receiver, "delivery", c.ID, "err", c.Err)
			st.giveUp(c, c.Err, 0)
			continue
		}
		out = append(out, c)
	}
	return out
}

// giveUp gives c up to the dead-letter topic.
func (st *step) giveUp(c queue.Claimed, err error, took time.Duration) {
	e, name := st.e, st.r.Config.Name
	ctx := context.WithoutCancel(st.ctx)
	if dlErr := e.opts.DeadLetter(ctx, &c.Delivery, err); dlErr != nil {
		e.log.Warn("dead-lettering a delivery failed; retrying later", "receiver", name, "err", dlErr)
		st.settle(c, Attempt{Outcome: Retrying, Error: err.Error(), Status: status(err), Seconds: took.Seconds()}, queue.Retried, e.opts.Now().Add(e.opts.Backoff))
		return
	}
	st.settle(c, Attempt{Outcome: Dead, Error: err.Error(), Status: status(err), Seconds: took.Seconds()}, queue.Delivered, time.Time{})
}

// settle notes attempt a of c, and what becomes of c in the queue: both
// are written when the step ends.
func (st *step) settle(c queue.Claimed, a Attempt, outcome int, at time.Time) {
	a.At, a.DeliveryID, a.Receiver, a.Attempt, a.Route = st.e.opts.Now().UTC(), sendID(c), c.Receiver, c.Attempts+1, c.Route
	if c.Message != nil {
		a.Change = c.Message.Change
		a.Department = c.Message.Department.Code
		if p := c.Message.Person; p != nil {
			a.Person = p.Name
		}
	}
	st.e.metrics.deliveries.WithLabelValues(c.Receiver, a.Outcome).Inc()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.attempts = append(st.attempts, CaseAttempt{CaseID: c.CaseID, Attempt: a})
	st.settled = append(st.settled, queue.Settlement{Delivery: &c.Delivery, Outcome: outcome, At: at})
}

// sendID is what one send of c is known by, to its receiver (the
// Idempotency-Key) and in its attempts: the delivery's id, and for a
// repeat the repeat's number after it. A send tried again keeps its id.
func sendID(c queue.Claimed) string {
	if c.Sends == 0 {
		return c.ID
	}
	return c.ID + "." + strconv.Itoa(c.Sends)
}

func status(err error) int {
	var re *receiver.Error
	if errors.As(err, &re) {
		return re.Status
	}
	return 0
}

func fallbackAfter(r *config.Receiver) int {
	if r.FallbackAfter > 0 {
		return r.FallbackAfter
	}
	return config.DefaultFallbackAfter
}
