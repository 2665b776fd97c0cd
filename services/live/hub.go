package live

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// message is a frame ready to be written: shared, never changed, by every
// connection whose queue holds it.
type message struct {
	b    []byte
	sent prometheus.Counter // the frame type's messages-sent counter
	// updated is when the item the frame carries last changed, for the
	// delivery-lag histogram; zero for frames that carry no item.
	updated time.Time
}

// delta is one change read from Kafka, encoded once for every subscriber.
type delta struct {
	item
	msg *message
	// prev is the item as it was before this change, when the gateway knew
	// it; a subscriber that wanted prev but does not want item is sent
	// removed, which is encoded when prev is known.
	prev    *item
	removed *message
}

// Bounds on what a subscription holds back while its snapshot is taken; a
// subscriber past either is reset like one whose queue is full.
const (
	maxPending  = 4096
	maxMovedOut = 4 * maxPending
)

// subscription is a connection's current subscribe request. Until its
// snapshot is queued it holds back the deltas that match, and remembers the
// items that moved out of its reach; after that it queues deltas, and
// removed frames, straight away. Its methods are safe for concurrent use.
type subscription struct {
	c      *conn
	filter filter

	// live turns true, once, under mu when the snapshot and the deltas held
	// back are queued; from then on offer needs no lock.
	live atomic.Bool

	closed atomic.Bool

	mu      sync.Mutex
	pending []*delta
	// movedOut holds, per item, the highest version seen while the
	// snapshot was taken that this subscriber does not want.
	movedOut map[itemKey]int64
}

func (s *subscription) wants(it item) bool {
	return s.filter.matches(it) && inScope(s.c.principal, it)
}

// offer queues d, or a removed frame when d takes away an item the
// subscriber had, or holds d back while the snapshot is being taken. It
// never blocks, and once the subscription is live it takes no lock.
func (s *subscription) offer(d *delta) {
	want := s.wants(d.item)
	if !s.live.Load() {
		s.mu.Lock()
		held := !s.live.Load()
		if held && !s.closed.Load() {
			s.holdBack(d, want)
		}
		s.mu.Unlock()
		if held {
			return
		}
	}
	var m *message
	switch {
	case want:
		m = d.msg
	case d.prev != nil && s.wants(*d.prev):
		m = d.removed
	default:
		return
	}
	if !s.closed.Load() && !s.c.enqueue(m) {
		s.closed.Store(true)
	}
}

func (s *subscription) holdBack(d *delta, want bool) {
	if want {
		if len(s.pending) >= maxPending {
			s.fallBehind()
			return
		}
		s.pending = append(s.pending, d)
		return
	}
	k := itemKey{d.stream, d.id}
	if v, ok := s.movedOut[k]; ok && v >= d.version {
		return
	}
	if s.movedOut == nil {
		s.movedOut = make(map[itemKey]int64)
	}
	if len(s.movedOut) >= maxMovedOut {
		s.fallBehind()
		return
	}
	s.movedOut[k] = d.version
}

func (s *subscription) fallBehind() {
	s.closed.Store(true)
	s.pending, s.movedOut = nil, nil
	s.c.fellBehind()
}

// activate queues the snapshot frames; then the deltas held back that are
// newer than what the snapshot holds and than any later move out of reach;
// then a removed frame for every item of the snapshot that moved out of
// reach meanwhile. seen maps stream and id to the version in the snapshot.
// From then on deltas go straight to the queue. It reports how many held
// back deltas it dropped as superseded.
func (s *subscription) activate(frames []*message, seen map[itemKey]int64, removed prometheus.Counter) (dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0
	}
	for _, f := range frames {
		if !s.c.enqueue(f) {
			s.closed.Store(true)
			return 0
		}
	}
	sent := make(map[itemKey]int64)
	for _, d := range s.pending {
		k := itemKey{d.stream, d.id}
		if v, ok := seen[k]; ok && d.version <= v {
			dropped++
			continue
		}
		if v, ok := s.movedOut[k]; ok && d.version < v {
			dropped++
			continue
		}
		if !s.c.enqueue(d.msg) {
			s.closed.Store(true)
			return dropped
		}
		sent[k] = max(sent[k], d.version)
	}
	for k, v := range s.movedOut {
		if had, ok := seen[k]; ok && v > had && v > sent[k] {
			if !s.c.enqueue(&message{b: encodeRemoved(k.stream, k.id, v), sent: removed}) {
				s.closed.Store(true)
				return dropped
			}
		}
	}
	s.pending, s.movedOut = nil, nil
	s.live.Store(true)
	return dropped
}

func (s *subscription) close() {
	s.closed.Store(true)
	s.mu.Lock()
	s.pending, s.movedOut = nil, nil
	s.mu.Unlock()
}

type itemKey struct{ stream, id string }

// hub fans deltas out to the subscriptions, one per connection at most. It
// is safe for concurrent use.
type hub struct {
	mu   sync.RWMutex
	subs map[*conn]*subscription
}

func newHub() *hub { return &hub{subs: make(map[*conn]*subscription)} }

// publish offers d to every subscription. Offers never block, so a slow
// client cannot hold up the others or the Kafka readers.
func (h *hub) publish(d *delta) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.subs {
		s.offer(d)
	}
}

// attach makes s c's subscription, closing the one it replaces. Once it
// returns, every delta published reaches s.
func (h *hub) attach(c *conn, s *subscription) (replaced bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, ok := h.subs[c]
	if ok {
		old.close()
	}
	h.subs[c] = s
	return ok
}

// detach removes c's subscription, if it is s (or any when s is nil).
func (h *hub) detach(c *conn, s *subscription) (removed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, ok := h.subs[c]
	if !ok || (s != nil && cur != s) {
		return false
	}
	cur.close()
	delete(h.subs, c)
	return true
}

// maxTracked bounds the items whose last state the gateway remembers.
const maxTracked = 1 << 20

// tracker remembers the last state of every open item the gateway has
// seen, in a delta or a snapshot, so that a delta that takes an item out of
// a subscriber's reach can be told apart from one the subscriber never
// wanted: only the first gets a removed frame. Items that close are
// forgotten. It is safe for concurrent use.
type tracker struct {
	mu   sync.Mutex
	last map[itemKey]item
}

func newTracker() *tracker { return &tracker{last: make(map[itemKey]item)} }

// advance records it and returns the state it replaces, if the tracker
// knew an older one. A delta no newer than what is known (a redelivery, or
// a change a snapshot has already shown) replaces nothing.
func (t *tracker) advance(it item) (prev item, ok bool) {
	k := itemKey{it.stream, it.id}
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, ok = t.last[k]
	if ok && prev.version >= it.version {
		return item{}, false
	}
	switch {
	case !it.open:
		delete(t.last, k)
	case ok || len(t.last) < maxTracked:
		t.last[k] = it
	}
	return prev, ok
}

// seed records the open items of a snapshot that the tracker does not know
// yet. Known items are left alone: their state came from the deltas, in
// order, and a snapshot may be ahead of them.
func (t *tracker) seed(items []item) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, it := range items {
		k := itemKey{it.stream, it.id}
		if _, ok := t.last[k]; ok || !it.open || len(t.last) >= maxTracked {
			continue
		}
		t.last[k] = it
	}
}

func (t *tracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.last)
}

func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.last)
}
