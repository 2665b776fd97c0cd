package mqtt

// recentIDs remembers the last n event ids Kafka acknowledged, so that a
// message the broker delivers again (after a reconnection, when its
// acknowledgement was lost) is acknowledged without writing its events a
// second time. Forgetting is harmless: the ids make a rewrite one event.
// It is not safe for concurrent use; one connection's batcher at a time
// owns it.
type recentIDs struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newRecentIDs(n int) *recentIDs {
	return &recentIDs{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recentIDs) has(id string) bool {
	_, ok := r.set[id]
	return ok
}

func (r *recentIDs) add(id string) {
	if len(r.ring) == 0 || r.has(id) {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}
