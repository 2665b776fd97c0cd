package live

import (
	"sync"
)

// delta is one change read from Kafka, encoded once for every subscriber.
type delta struct {
	item
	kind  string // frameAlert or frameCase
	frame []byte
}

// maxPending bounds the deltas held back while a snapshot is taken; a
// subscriber past it is reset like one whose queue is full.
const maxPending = 4096

// subscription is a connection's current subscribe request. Until its
// snapshot is queued it holds back the deltas that match; after that it
// queues them straight away. Its methods are safe for concurrent use.
type subscription struct {
	c      *conn
	filter filter

	mu      sync.Mutex
	live    bool
	closed  bool
	pending []*delta
}

func (s *subscription) wants(it item) bool {
	return s.filter.matches(it) && inScope(s.c.principal, it)
}

// offer queues d, or holds it back while the snapshot is being taken. It
// never blocks.
func (s *subscription) offer(d *delta) {
	if !s.wants(d.item) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
	case !s.live:
		if len(s.pending) >= maxPending {
			s.closed = true
			s.pending = nil
			s.c.fellBehind()
			return
		}
		s.pending = append(s.pending, d)
	case !s.c.enqueue(d.kind, d.frame):
		s.closed = true
	}
}

// activate queues the snapshot frames, then the deltas held back that are
// newer than what the snapshot holds (seen maps stream and id to the
// version in the snapshot), and from then on lets deltas through.
func (s *subscription) activate(frames [][]byte, seen map[itemKey]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, f := range frames {
		if !s.c.enqueue(frameSnapshot, f) {
			s.closed = true
			return
		}
	}
	for _, d := range s.pending {
		if v, ok := seen[itemKey{d.stream, d.id}]; ok && d.version <= v {
			continue
		}
		if !s.c.enqueue(d.kind, d.frame) {
			s.closed = true
			return
		}
	}
	s.pending = nil
	s.live = true
}

func (s *subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.pending = nil
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
