package delivery

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/notify/queue"
	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// endpoint is a department's system: it answers 500 while down and
// records the idempotency keys of what it took, in order.
type endpoint struct {
	mu     sync.Mutex
	down   bool
	status int // answered while down; 500 when zero
	got    []string
	tries  int
	// slow delays every answer; inFlight and most count the requests
	// being answered at once.
	slow           time.Duration
	inFlight, most int
}

func (ep *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep.mu.Lock()
	ep.inFlight++
	ep.most = max(ep.most, ep.inFlight)
	slow := ep.slow
	ep.mu.Unlock()
	time.Sleep(slow)
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.inFlight--
	ep.tries++
	if ep.down {
		code := ep.status
		if code == 0 {
			code = 500
		}
		w.WriteHeader(code)
		return
	}
	ep.got = append(ep.got, r.Header.Get(receiver.IdempotencyHeader))
}

func (ep *endpoint) setDown(down bool) { ep.mu.Lock(); ep.down = down; ep.mu.Unlock() }
func (ep *endpoint) taken() []string   { ep.mu.Lock(); defer ep.mu.Unlock(); return slices.Clone(ep.got) }

type harness struct {
	t     *testing.T
	rdb   redis.UniversalClient
	q     *queue.Queue
	log   *Log
	clock *clock
	reg   *prometheus.Registry
	e     *Engine
	inbox *receiver.Inbox
	dead  []string
}

func template(t *testing.T) *message.Template {
	tpl, err := message.Parse("{{ .Change }} {{ .Case.ID }}", "{{ .Count }}")
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// newHarness runs receivers: name → URL of a webhook ("" for the inbox),
// with fallbacks.
func newHarness(t *testing.T, hooks map[string]string, fallbacks map[string]string) *harness {
	t.Helper()
	rdb := redistest.Start(t).Client
	h := &harness{t: t, rdb: rdb, q: queue.New(rdb), log: NewLog(rdb), clock: &clock{t: time.Date(2026, 10, 1, 3, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry(), inbox: receiver.NewInbox(1000)}
	rs := map[string]*Receiver{}
	for name, url := range hooks {
		cfg := &config.Receiver{Name: name, Fallback: fallbacks[name], FallbackAfter: 3, Timeout: 5 * time.Second, Parallel: 4}
		var n receiver.Notifier = h.inbox
		if url != "" {
			n = &receiver.Webhook{URL: url, Secret: []byte("k"), Client: http.DefaultClient, Now: h.clock.Now}
		}
		rs[name] = &Receiver{Config: cfg, Notifier: n, Template: template(t)}
	}
	var mu sync.Mutex
	e, err := New(Options{
		Queue: h.q, Log: h.log, Receivers: rs, Now: h.clock.Now, Registerer: h.reg,
		Backoff: 2 * time.Second, MaxBackoff: 20 * time.Second, BreakerThreshold: 4, BreakerCooldown: 30 * time.Second,
		DeadLetter: func(_ context.Context, d *queue.Delivery, reason error) error {
			mu.Lock()
			h.dead = append(h.dead, d.ID)
			mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.rnd = func() float64 { return 1 }
	h.e = e
	return h
}

func (h *harness) enqueue(receiverName, id, caseID, group string, due time.Duration) {
	h.t.Helper()
	m := message.Sample()
	m.Person = nil
	m.Case.ID = caseID
	d := &queue.Delivery{ID: id, Receiver: receiverName, CaseID: caseID, Department: "gas", Group: group, Due: h.clock.Now().Add(due), Message: m}
	if _, err := h.q.Enqueue(context.Background(), d); err != nil {
		h.t.Fatal(err)
	}
}

// run steps every receiver, moving the clock by step, until for passes.
func (h *harness) run(step, total time.Duration, receivers ...string) {
	h.t.Helper()
	for elapsed := time.Duration(0); elapsed <= total; elapsed += step {
		for _, r := range receivers {
			if _, err := h.e.Step(context.Background(), r); err != nil {
				h.t.Fatal(err)
			}
		}
		h.clock.Add(step)
	}
}

// A receiver down for two minutes, then back: every notification arrives
// once, in the order it was decided for its case.
func TestDownThenBack(t *testing.T) {
	ep := &endpoint{down: true}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	h := newHarness(t, map[string]string{"water": srv.URL}, nil)
	var want []string
	for i := range 3 {
		for c := range 3 {
			id := fmt.Sprintf("case%d-n%d", c, i)
			h.enqueue("water", id, fmt.Sprintf("xuhui-0%d", c), id, time.Duration(i*10+c)*time.Second)
			want = append(want, id)
		}
	}
	h.run(time.Second, 2*time.Minute, "water")
	if got := ep.taken(); len(got) != 0 {
		t.Fatalf("a receiver that is down took %v", got)
	}
	ep.setDown(false)
	h.run(time.Second, 2*time.Minute, "water")
	got := ep.taken()
	slices.Sort(want)
	sorted := slices.Sorted(slices.Values(got))
	if !slices.Equal(sorted, want) {
		t.Fatalf("delivered %v, want each of %v once", got, want)
	}
	for c := range 3 {
		var order []string
		for _, id := range got {
			if id[:5] == fmt.Sprintf("case%d", c) {
				order = append(order, id)
			}
		}
		if !slices.IsSorted(order) {
			t.Errorf("case %d arrived as %v", c, order)
		}
	}
	// While it was down the receiver was left alone between tries, not
	// hammered every second.
	if ep.tries > 40 {
		t.Errorf("%d requests in four minutes", ep.tries)
	}
	attempts, _ := h.log.List(context.Background(), "xuhui-00")
	if len(attempts) == 0 || attempts[len(attempts)-1].Outcome != Sent {
		t.Errorf("attempts of xuhui-00: %+v", attempts)
	}
}

// A receiver that answers 500 for ever: its deliveries go to the fallback,
// its breaker opens, and a healthy receiver beside it is not held up.
func TestFailingReceiverFailsOverAndOpens(t *testing.T) {
	bad := &endpoint{down: true}
	good := &endpoint{}
	badSrv, goodSrv := httptest.NewServer(bad), httptest.NewServer(good)
	defer badSrv.Close()
	defer goodSrv.Close()
	h := newHarness(t, map[string]string{"gas-system": badSrv.URL, "inbox": "", "fire-system": goodSrv.URL}, map[string]string{"gas-system": "inbox"})
	for i := range 6 {
		h.enqueue("gas-system", fmt.Sprintf("g%d", i), "xuhui-01", fmt.Sprintf("g%d", i), time.Duration(i)*time.Second)
		h.enqueue("fire-system", fmt.Sprintf("f%d", i), "xuhui-01", fmt.Sprintf("f%d", i), time.Duration(i)*time.Second)
	}
	// The healthy receiver is done within its first steps.
	h.run(time.Second, 6*time.Second, "fire-system", "gas-system")
	if got := good.taken(); len(got) != 6 {
		t.Fatalf("the healthy receiver took %v", got)
	}
	h.run(time.Second, 5*time.Minute, "gas-system", "inbox", "fire-system")
	var fellBack []string
	for _, it := range h.inbox.Items() {
		fellBack = append(fellBack, it.ID)
	}
	slices.Sort(fellBack)
	if want := []string{"g0>inbox", "g1>inbox", "g2>inbox", "g3>inbox", "g4>inbox", "g5>inbox"}; !slices.Equal(fellBack, want) {
		t.Errorf("inbox has %v, want %v", fellBack, want)
	}
	// No delivery has gone through since it opened: open, or half-open
	// once the cool-down is over, never closed.
	if s := testutil.ToFloat64(h.e.metrics.breaker.WithLabelValues("gas-system")); s == float64(Closed) {
		t.Errorf("breaker state %v, want open or half-open", s)
	}
	if n := testutil.ToFloat64(h.e.metrics.deliveries.WithLabelValues("gas-system", FailedOver)); n != 6 {
		t.Errorf("%v failed over", n)
	}
	attempts, _ := h.log.List(context.Background(), "xuhui-01")
	var outcomes []string
	for _, a := range attempts {
		if a.DeliveryID == "g0" {
			outcomes = append(outcomes, a.Outcome)
		}
	}
	if len(outcomes) == 0 || outcomes[len(outcomes)-1] != FailedOver {
		t.Errorf("g0's attempts: %v", outcomes)
	}
}

// A refusal that retrying cannot fix, with nowhere to fail over to, is
// given up to the dead-letter topic at once.
func TestRefusedWithoutFallbackIsDeadLettered(t *testing.T) {
	ep := &endpoint{down: true, status: http.StatusBadRequest}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	h := newHarness(t, map[string]string{"hook": srv.URL}, nil)
	h.enqueue("hook", "n1", "xuhui-01", "n1", 0)
	h.run(time.Second, 3*time.Second, "hook")
	if !slices.Equal(h.dead, []string{"n1"}) || ep.tries != 1 {
		t.Errorf("dead-lettered %v after %d tries", h.dead, ep.tries)
	}
	if ok, _ := h.q.Enqueue(context.Background(), &queue.Delivery{ID: "n1", Receiver: "hook", Message: message.Sample()}); ok {
		t.Error("a dead-lettered delivery was queued again")
	}
}

// Deliveries of one group due together go as one message.
func TestGroupIsOneMessage(t *testing.T) {
	h := newHarness(t, map[string]string{"inbox": ""}, nil)
	for i := range 3 {
		h.enqueue("inbox", fmt.Sprintf("n%d", i), fmt.Sprintf("xuhui-0%d", i), "gas/dispatched", 0)
	}
	h.run(time.Second, time.Second, "inbox")
	items := h.inbox.Items()
	if len(items) != 1 || items[0].Text != "3" {
		t.Errorf("inbox %+v", items)
	}
	for i := range 3 {
		if ok, _ := h.q.Enqueue(context.Background(), &queue.Delivery{ID: fmt.Sprintf("n%d", i), Receiver: "inbox", Message: message.Sample()}); ok {
			t.Errorf("n%d was not marked done", i)
		}
	}
}

func TestBreaker(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := &Breaker{Threshold: 2, Cooldown: time.Minute}
	b.Failure(t0)
	if b.State(t0) != Closed {
		t.Fatal("opened after one failure")
	}
	b.Failure(t0)
	if b.State(t0.Add(59*time.Second)) != Open || b.State(t0.Add(time.Minute)) != HalfOpen {
		t.Fatal("not open for the cool-down, then half-open")
	}
	b.Failure(t0.Add(time.Minute)) // the trial fails: open again at once
	if b.State(t0.Add(time.Minute+time.Second)) != Open {
		t.Fatal("a failed trial did not reopen it")
	}
	b.Success()
	if b.State(t0.Add(time.Hour)) != Closed {
		t.Fatal("a success did not close it")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 5: 20 * time.Second, 60: 20 * time.Second} {
		if got := backoff(n, 2*time.Second, 20*time.Second, func() float64 { return 1 }); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
		if got := backoff(n, 2*time.Second, 20*time.Second, func() float64 { return 0 }); got != want/2 {
			t.Errorf("backoff(%d) with no jitter left = %v, want %v", n, got, want/2)
		}
	}
}

// Messages of different cases go out side by side, each case's in order;
// a failure that may pass stops every lane, and what was not tried goes
// back untried.
func TestLanes(t *testing.T) {
	ep := &endpoint{slow: 20 * time.Millisecond}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	h := newHarness(t, map[string]string{"hook": srv.URL}, nil)
	var want []string
	for i := range 5 {
		for c := range 4 {
			id := fmt.Sprintf("c%d-%d", c, i)
			h.enqueue("hook", id, fmt.Sprintf("xuhui-%d", c), id, time.Duration(i)*time.Millisecond)
			want = append(want, id)
		}
	}
	h.run(time.Millisecond, 10*time.Millisecond, "hook")
	got := ep.taken()
	if len(got) != len(want) {
		t.Fatalf("took %d of %d", len(got), len(want))
	}
	if ep.most < 2 || ep.most > 4 {
		t.Errorf("at most %d requests at once, want 2 to 4 (parallel 4)", ep.most)
	}
	inOrder(t, got)

	// Down: the first failure pauses the receiver; nothing after it in its
	// lane is tried, and what comes back comes back in order.
	ep.setDown(true)
	ep.mu.Lock()
	ep.tries, ep.got = 0, nil
	ep.mu.Unlock()
	for i := range 5 {
		for c := range 4 {
			id := fmt.Sprintf("d%d-%d", c, i)
			h.enqueue("hook", id, fmt.Sprintf("xuhui-%d", c), id, time.Duration(i)*time.Millisecond)
		}
	}
	h.run(time.Millisecond, 0, "hook")
	if ep.tries > 4 {
		t.Errorf("%d tries while down in one step, want at most one per lane", ep.tries)
	}
	ep.setDown(false)
	h.run(time.Second, time.Minute, "hook")
	got = ep.taken()
	if len(got) != 20 {
		t.Fatalf("took %d of 20 after coming back", len(got))
	}
	inOrder(t, got)
	for _, a := range h.attempts(t, "xuhui-2") {
		if a.Outcome == Retrying && a.Attempt != 1 {
			t.Errorf("%s retried as attempt %d: released deliveries must not count", a.DeliveryID, a.Attempt)
		}
	}
}

// inOrder fails unless each case's ids ("cC-I") come in the order of I.
func inOrder(t *testing.T, ids []string) {
	t.Helper()
	last := map[string]int{}
	for _, id := range ids {
		var c string
		var i int
		if _, err := fmt.Sscanf(strings.Replace(id, "-", " ", 1), "%s %d", &c, &i); err != nil {
			t.Fatalf("id %q: %v", id, err)
		}
		if prev, ok := last[c]; ok && i < prev {
			t.Errorf("%s came after %s-%d", id, c, prev)
		}
		last[c] = i
	}
}

func (h *harness) attempts(t *testing.T, caseID string) []Attempt {
	t.Helper()
	as, err := h.log.List(context.Background(), caseID)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestLanesKeepCasesTogether(t *testing.T) {
	c := func(id, caseID, group string, due int) queue.Claimed {
		return queue.Claimed{Delivery: queue.Delivery{ID: id, CaseID: caseID, Group: group, Due: time.Unix(int64(due), 0)}}
	}
	claimed := []queue.Claimed{
		c("a1", "a", "ga1", 1), c("b1", "b", "gb1", 2), c("x", "", "alerts", 3),
		c("a2", "a", "gab", 4), c("b2", "b", "gab", 4), // one message about a and b: joins their lanes
		c("c1", "c", "gc1", 5), c("x2", "", "alerts", 6),
	}
	var got []string
	for _, l := range lanes(groups(claimed)) {
		var ids []string
		for _, g := range l {
			for _, d := range g {
				ids = append(ids, d.ID)
			}
		}
		got = append(got, strings.Join(ids, " "))
	}
	want := []string{"a1 b1 a2 b2", "x x2", "c1"}
	if !slices.Equal(got, want) {
		t.Errorf("lanes = %q, want %q", got, want)
	}
}

// A reloaded notify.yaml adds and removes receivers while the engine runs:
// a new one gets a worker, a removed one's deliveries wait for it.
func TestSetReceivers(t *testing.T) {
	h := newHarness(t, map[string]string{"a": ""}, nil)
	h.clock = nil
	h.e.opts.Now, h.e.opts.Poll = time.Now, 10*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()
	enqueue := func(r, id string) {
		m := message.Sample()
		d := &queue.Delivery{ID: id, Receiver: r, CaseID: "xuhui-01", Group: id, Due: time.Now(), Message: m}
		if _, err := h.q.Enqueue(ctx, d); err != nil {
			t.Fatal(err)
		}
		h.e.Wake(r)
	}
	waitFor := func(id string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, it := range h.inbox.Items() {
				if it.ID == id {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s was not delivered", id)
	}
	enqueue("a", "a-1")
	waitFor("a-1")
	rs := map[string]*Receiver{"b": {Config: &config.Receiver{Name: "b", Timeout: time.Second, Parallel: 1}, Notifier: h.inbox, Template: template(t)}}
	h.e.SetReceivers(rs)
	enqueue("b", "b-1")
	waitFor("b-1")
	enqueue("a", "a-2")
	time.Sleep(100 * time.Millisecond)
	for _, it := range h.inbox.Items() {
		if it.ID == "a-2" {
			t.Fatal("a removed receiver still delivers")
		}
	}
	if next, ok, _ := h.q.Next(ctx, "a"); !ok || next.IsZero() {
		t.Error("a removed receiver's delivery left the queue")
	}
	rs["a"] = &Receiver{Config: &config.Receiver{Name: "a", Timeout: time.Second, Parallel: 1}, Notifier: h.inbox, Template: template(t)}
	h.e.SetReceivers(rs)
	waitFor("a-2")
}

// TestClaimsAhead: while one claim is sent the next is claimed. When the
// receiver fails partway, what was claimed ahead goes back untried and
// uncounted with the rest, and every case's messages still arrive once
// and in order when it is back.
func TestClaimsAhead(t *testing.T) {
	ep := &endpoint{}
	var served sync.Mutex
	okLeft := 7 // then down
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Lock()
		if okLeft == 0 {
			ep.setDown(true)
		}
		okLeft--
		served.Unlock()
		ep.ServeHTTP(w, r)
	}))
	defer srv.Close()
	h := newHarness(t, map[string]string{"hook": srv.URL}, nil)
	h.e.opts.Batch = 4
	var want []string
	for i := range 8 {
		for c := range 3 {
			id := fmt.Sprintf("c%d-%d", c, i)
			h.enqueue("hook", id, fmt.Sprintf("xuhui-%d", c), id, time.Duration(3*i+c)*time.Millisecond)
			want = append(want, id)
		}
	}
	h.clock.Add(time.Second) // all due
	if _, err := h.e.Step(context.Background(), "hook"); err != nil {
		t.Fatal(err)
	}
	first := ep.taken()
	if len(first) != 7 {
		t.Fatalf("one step took %d before the receiver went down, want 7 (claims of 4 going on while it answers)", len(first))
	}
	inOrder(t, first)
	// Nothing claimed is left leased: released deliveries are due again
	// at once when the pause ends, not when their lease runs out.
	ep.setDown(false)
	h.run(time.Second, 30*time.Second, "hook")
	got := ep.taken()
	if len(got) != len(want) {
		t.Fatalf("took %d of %d after coming back: %v", len(got), len(want), got)
	}
	inOrder(t, got)
	if dup := duplicates(got); len(dup) > 0 {
		t.Errorf("taken twice: %v", dup)
	}
	// A delivery counts only the tries it had: those released untried,
	// claimed ahead or behind a failure in their lane, count none.
	for c := range 3 {
		retries := map[string]int{}
		as := h.attempts(t, fmt.Sprintf("xuhui-%d", c))
		for _, a := range as {
			if a.Outcome == Retrying {
				retries[a.DeliveryID]++
			}
		}
		for _, a := range as {
			if a.Outcome == Sent && a.Attempt != retries[a.DeliveryID]+1 {
				t.Errorf("%s sent as attempt %d after %d failed tries", a.DeliveryID, a.Attempt, retries[a.DeliveryID])
			}
		}
	}
}

func duplicates(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if seen[id] {
			out = append(out, id)
		}
		seen[id] = true
	}
	return out
}

// TestUnreadableDeliveryIsGivenUp: a queued delivery that cannot be read
// goes to the dead letters with an attempt saying why, and the others of
// its claim are delivered.
func TestUnreadableDeliveryIsGivenUp(t *testing.T) {
	ep := &endpoint{}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	h := newHarness(t, map[string]string{"hook": srv.URL}, nil)
	h.enqueue("hook", "good", "xuhui-1", "good", 0)
	h.enqueue("hook", "bad", "xuhui-1", "bad", 0)
	if err := h.rdb.HSet(context.Background(), "cityhub:notify:{hook}:d:bad", "d", "\xff\x00 garbage").Err(); err != nil {
		t.Fatal(err)
	}
	h.run(time.Second, time.Second, "hook")
	if got := ep.taken(); !slices.Equal(got, []string{"good"}) {
		t.Errorf("taken: %v, want the readable one", got)
	}
	if !slices.Equal(h.dead, []string{"bad"}) {
		t.Errorf("dead letters: %v, want the unreadable one", h.dead)
	}
	if n := testutil.ToFloat64(h.e.metrics.deliveries.WithLabelValues("hook", Dead)); n != 1 {
		t.Errorf("%v dead deliveries counted, want 1", n)
	}
	if next, ok, _ := h.q.Next(context.Background(), "hook"); ok {
		t.Errorf("something is still queued, due at %v", next)
	}
}

// TestRepeats: a repeating delivery goes again a repeat interval after
// each send, under an id of its own each time, as many times as it says,
// and not once more after it is cancelled.
func TestRepeats(t *testing.T) {
	ep := &endpoint{}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	h := newHarness(t, map[string]string{"hook": srv.URL}, nil)
	enqueue := func(id, caseID string, repeats int) {
		m := message.Sample()
		m.Case.ID = caseID
		d := &queue.Delivery{ID: id, Receiver: "hook", CaseID: caseID, Department: "gas", StopOnAccept: true, Group: id,
			Due: h.clock.Now(), Message: m, RepeatEvery: time.Hour, Repeats: repeats}
		if _, err := h.q.Enqueue(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("chase", "xuhui-1", 2)
	enqueue("stopped", "xuhui-2", 2)
	h.run(time.Minute, 59*time.Minute, "hook") // the first sends
	if _, err := h.q.Cancel(context.Background(), "hook", "xuhui-2", "gas"); err != nil {
		t.Fatal(err)
	}
	h.run(time.Minute, 5*time.Hour, "hook")
	if got := ep.taken(); !slices.Equal(got, []string{"chase", "stopped", "chase.1", "chase.2"}) &&
		!slices.Equal(got, []string{"stopped", "chase", "chase.1", "chase.2"}) {
		t.Errorf("sent %v, want each first send, then chase's two repeats an hour apart", got)
	}
	var sent []string
	for _, a := range h.attempts(t, "xuhui-1") {
		if a.Outcome == Sent {
			sent = append(sent, a.DeliveryID)
		}
	}
	if !slices.Equal(sent, []string{"chase", "chase.1", "chase.2"}) {
		t.Errorf("attempts sent: %v", sent)
	}
}

// TestOpenBreakerEndsTheStep: refusals that open the breaker of a
// receiver without a fallback end the step; what is left waits for the
// cool-down instead of being claimed and put back over and over.
func TestOpenBreakerEndsTheStep(t *testing.T) {
	ep := &endpoint{down: true, status: http.StatusBadRequest}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	h := newHarness(t, map[string]string{"hook": srv.URL}, nil)
	h.e.opts.Batch = 8
	for i := range 40 {
		id := fmt.Sprintf("c%02d-0", i)
		h.enqueue("hook", id, fmt.Sprintf("xuhui-%d", i), id, 0)
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.e.Step(context.Background(), "hook")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the step goes on with the breaker open")
	}
	if dead := testutil.ToFloat64(h.e.metrics.deliveries.WithLabelValues("hook", Dead)); ep.tries > 8 || dead != float64(ep.tries) {
		t.Errorf("%d tries, %v given up, with the breaker opening after 4", ep.tries, dead)
	}
	if left, _ := h.q.Claim(context.Background(), "hook", h.clock.Now(), time.Minute, 100); len(left)+ep.tries != 40 {
		t.Errorf("%d left queued and %d tried, of 40", len(left), ep.tries)
	}
}

// TestClaimAheadThatWaitedGoesBack: a receiver so slow that the claim
// ahead waits half its lease for its turn: it goes back untried and the
// next step claims it under a new lease, so that it is never sent while
// its lease has run out. Everything arrives once, in order.
func TestClaimAheadThatWaitedGoesBack(t *testing.T) {
	var h *harness
	ep := &endpoint{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.clock.Add(20 * time.Second) // each message takes 20 s
		ep.ServeHTTP(w, r)
	}))
	defer srv.Close()
	h = newHarness(t, map[string]string{"hook": srv.URL}, nil)
	h.e.opts.Batch = 3
	var want []string
	for i := range 9 {
		id := fmt.Sprintf("c0-%d", i)
		h.enqueue("hook", id, "xuhui-0", id, time.Duration(i)*time.Millisecond)
		want = append(want, id)
	}
	h.clock.Add(time.Second)
	steps := 0
	for len(ep.taken()) < len(want) && steps < 20 {
		if _, err := h.e.Step(context.Background(), "hook"); err != nil {
			t.Fatal(err)
		}
		steps++
	}
	got := ep.taken()
	if !slices.Equal(got, want) {
		t.Errorf("taken %v, want %v once each in order", got, want)
	}
	if steps < 3 {
		t.Errorf("%d steps: a claim that waited 60 s for its turn was sent", steps)
	}
	for _, a := range h.attempts(t, "xuhui-0") {
		if a.Attempt != 1 {
			t.Errorf("%s sent as attempt %d: a claim put back untried counts none", a.DeliveryID, a.Attempt)
		}
	}
}
