package casestore

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The cache keeps the cases a store read or wrote last, so that a change of
// a case it already holds is one round trip: the update script itself
// checks that the case is still at the version (and digest) the change was
// computed from, so a copy that went stale costs a conflict, never a lost
// update. Nothing is ever decided from the cache alone.

// cacheSize bounds the cases one store keeps; a case is a few KiB.
const cacheSize = 4096

// seen is a case as Redis held it at one moment: its bytes' digest, and
// the decoded case, which no one may modify.
type seen struct {
	c      *cityhubv1.Case
	digest string
}

// digestOf names the exact bytes of a stored case. The write scripts keep
// it beside the case (field h), so that a write based on a copy checks not
// only the version but that the copy is the very case Redis holds: a
// version can name two different cases only when Redis lost an
// acknowledged write (a failover, a crash under appendfsync everysec) and
// the case moved on again, and a cached copy must not survive that.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// lru is a size-capped map of case id to the case last seen, least
// recently used first out. It is safe for concurrent use.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *lruItem, most recent at the front
	items map[string]*list.Element
}

type lruItem struct {
	id string
	seen
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[string]*list.Element, max)}
}

// get returns the case last seen under id.
func (l *lru) get(id string) (seen, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.items[id]
	if !ok {
		return seen{}, false
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruItem).seen, true
}

// put records s as the case id is at. An older version than the one held
// is ignored (two writers may report out of order); the same version
// replaces, since it came from Redis as recently.
func (l *lru) put(s seen) {
	if l == nil || s.c == nil {
		return
	}
	id := s.c.GetId()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[id]; ok {
		it := e.Value.(*lruItem)
		if s.c.GetVersion() >= it.c.GetVersion() {
			it.seen = s
		}
		l.order.MoveToFront(e)
		return
	}
	l.items[id] = l.order.PushFront(&lruItem{id: id, seen: s})
	for l.order.Len() > l.max {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.items, last.Value.(*lruItem).id)
	}
}

// drop forgets id.
func (l *lru) drop(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[id]; ok {
		l.order.Remove(e)
		delete(l.items, id)
	}
}
