package alertstate

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Memory is alert state in memory: the state machine of apply.lua,
// tally.lua and restore.lua written in Go, with the indexes a Store keeps.
// Its operations take the same inputs as a Store's and give the same
// results, and leave the same state, field by field; the differential test
// on a real redis-server holds the two together.
//
// Unlike Redis it expires nothing: a Store's resolved alerts and count
// windows expire by the wall clock (ResolvedTTL, twice a window's span)
// only to give their memory back, and the clock of a rule test or a
// backtest is a clock of its own. A Memory lasts as long as one of those.
//
// Memory is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	max     int
	alerts  map[string]*entry
	indexes map[string]zset
}

// NewMemory returns an empty Memory; opts.Client is not used.
func NewMemory(opts Options) *Memory {
	opts.defaults()
	return &Memory{max: opts.MaxEventIDs, alerts: map[string]*entry{}, indexes: map[string]zset{}}
}

// entry is what Redis holds under one alert's hash tag.
type entry struct {
	hash *record // nil: no alert
	// hashTTL and eventsTTL say whether the hash and the event id list
	// expire, as those of a resolved alert do.
	hashTTL   bool
	events    []string
	eventsTTL bool
	// window holds the count window's members by score, then member, as a
	// sorted set orders them; it expires whenever it exists.
	window []member
	// absence is the wait of an absent rule's group; nil: none.
	absence *absence
}

// absence is an absence hash: the wait's moment, the last sign of life and
// the alert's body as the silence would fire it.
type absence struct {
	due, time int64
	event     string
	body      []byte
}

type member struct {
	score int64
	name  string
}

// zset is a sorted set: member → score.
type zset map[string]int64

func (m *Memory) entry(id string) *entry {
	e := m.alerts[id]
	if e == nil {
		e = &entry{}
		m.alerts[id] = e
	}
	return e
}

// Apply is Store.Apply.
func (m *Memory) Apply(_ context.Context, now time.Time, updates []Update) ([]Result, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	groups, err := group(updates)
	if err != nil {
		return nil, err
	}
	steps := make([][]step, len(groups))
	for g, idx := range groups {
		for _, i := range idx {
			st, err := applyStep(now, &updates[i], i)
			if err != nil {
				return nil, err
			}
			steps[g] = append(steps[g], st)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	results := make([]Result, len(groups))
	for g, idx := range groups {
		rep := m.apply(updates[idx[0]].Alert.GetId(), now.UnixMilli(), steps[g])
		if results[g], err = rep.result(firedBy(updates, idx)); err != nil {
			return nil, errAlert(updates[idx[0]].Alert.GetId(), err)
		}
	}
	index(results, m)
	return results, nil
}

// Tally is Store.Tally.
func (m *Memory) Tally(_ context.Context, updates []Update) ([]bool, error) {
	need := make([]bool, len(updates))
	groups, err := group(updates)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, idx := range groups {
		if tallyable(updates, idx) && !m.tally(updates[idx[0]].Alert.GetId(), updates, idx) {
			continue
		}
		for _, i := range idx {
			need[i] = true
		}
	}
	return need, nil
}

// ResolveDue is Store.ResolveDue.
func (m *Memory) ResolveDue(_ context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return m.due(ResolveKey, opExpire, now, limit)
}

// Promote is Store.Promote.
func (m *Memory) Promote(_ context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	return m.due(PendingKey, opPromote, now, limit)
}

func (m *Memory) due(key, op string, now time.Time, limit int) ([]*cityhubv1.Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for _, z := range m.indexes[key].sorted() {
		// As ZRANGEBYSCORE with LIMIT 0 limit: no limit unless positive.
		if z.score > now.UnixMilli() || (limit > 0 && len(ids) == limit) {
			break
		}
		ids = append(ids, z.name)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	replies := make([]reply, len(ids))
	for i, id := range ids {
		replies[i] = m.apply(id, now.UnixMilli(), []step{{op: op}})
	}
	results, changed, err := swept(ids, replies)
	if err != nil {
		return nil, err
	}
	index(results, m)
	return changed, nil
}

// NextDue returns the earliest moment, not after until, at which an alert
// is due to change by itself, as the indexes say: a pending alert fires,
// an open one resolves, or an absent rule's group falls silent. It reports false when none is due by until.
func (m *Memory) NextDue(until time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	best, found := int64(0), false
	for _, key := range []string{PendingKey, ResolveKey, AbsentKey} {
		for _, score := range m.indexes[key] {
			if score <= until.UnixMilli() && (!found || score < best) {
				best, found = score, true
			}
		}
	}
	return time.UnixMilli(best).UTC(), found
}

// Restore is Store.Restore.
func (m *Memory) Restore(_ context.Context, a *cityhubv1.Alert, resolveAt time.Time) (bool, error) {
	rec, err := restoreRecord(a, resolveAt)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(a.GetId())
	if e.hash != nil && e.hash.version >= rec.version {
		return false, nil
	}
	e.hash = &rec
	e.events = slices.Clone(a.GetEventIds())
	resolved := rec.state == stateResolved
	e.hashTTL, e.eventsTTL = resolved, resolved && len(e.events) > 0
	current, err := m.get(a.GetId(), true)
	if err != nil {
		return false, err
	}
	index([]Result{{Alert: current, Changed: true, resolveAt: rec.resolveAt}}, m)
	return true, nil
}

// Get is Store.Get.
func (m *Memory) Get(_ context.Context, id string) (*cityhubv1.Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.get(id, true)
	if err == nil && a == nil {
		err = ErrNotFound
	}
	return a, err
}

// get returns the alert id, with its event ids when withIDs; nil when
// there is none.
func (m *Memory) get(id string, withIDs bool) (*cityhubv1.Alert, error) {
	e := m.alerts[id]
	if e == nil || e.hash == nil {
		return nil, nil
	}
	var ids []string
	if withIDs {
		ids = slices.Clone(e.events)
	}
	a, err := e.hash.alert(nil, ids)
	if err != nil {
		return nil, errAlert(id, err)
	}
	return a, nil
}

// Firing is Store.Firing.
func (m *Memory) Firing(_ context.Context) ([]*cityhubv1.Alert, error) {
	return m.indexed(FiringKey, 0, cityhubv1.AlertState_ALERT_STATE_FIRING)
}

// Pending is Store.Pending.
func (m *Memory) Pending(_ context.Context) ([]*cityhubv1.Alert, error) {
	return m.indexed(PendingKey, 0, cityhubv1.AlertState_ALERT_STATE_PENDING)
}

// OfRule is Store.OfRule.
func (m *Memory) OfRule(_ context.Context, rule string, limit int) ([]*cityhubv1.Alert, error) {
	return m.indexed(RuleKey(rule), limit, cityhubv1.AlertState_ALERT_STATE_FIRING, cityhubv1.AlertState_ALERT_STATE_PENDING)
}

// OpenOf is Store.OpenOf.
func (m *Memory) OpenOf(_ context.Context, rules []string, limit int) (map[string][]*cityhubv1.Alert, error) {
	out := make(map[string][]*cityhubv1.Alert, len(rules))
	if len(rules) == 0 {
		return out, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([][]string, len(rules))
	var alerts []*cityhubv1.Alert
	for i, rule := range rules {
		ids[i] = m.ids(RuleKey(rule), limit)
		for _, id := range ids[i] {
			a, err := m.get(id, false)
			if err != nil {
				return nil, err
			}
			alerts = append(alerts, a)
		}
	}
	openOf(out, rules, ids, alerts)
	return out, nil
}

func (m *Memory) indexed(key string, limit int, states ...cityhubv1.AlertState) ([]*cityhubv1.Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := m.ids(key, limit)
	all := make([]*cityhubv1.Alert, len(ids))
	for i, id := range ids {
		var err error
		if all[i], err = m.get(id, true); err != nil {
			return nil, err
		}
	}
	return inStates(all, states), nil
}

// ids returns the first limit members of the index key (0: all), as
// ZRANGE key 0 limit-1 does.
func (m *Memory) ids(key string, limit int) []string {
	all := m.indexes[key].sorted()
	stop := limit - 1
	if stop < 0 {
		stop += len(all)
	}
	var ids []string
	for i := 0; i <= stop && i < len(all); i++ {
		ids = append(ids, all[i].name)
	}
	return ids
}

func (m *Memory) zadd(key string, score int64, name string) {
	z := m.indexes[key]
	if z == nil {
		z = zset{}
		m.indexes[key] = z
	}
	z[name] = score
}

func (m *Memory) zrem(key, name string) {
	delete(m.indexes[key], name)
}

// sorted returns the members of z as Redis orders them: by score, then by
// member.
func (z zset) sorted() []member {
	out := make([]member, 0, len(z))
	for name, score := range z {
		out = append(out, member{score, name})
	}
	slices.SortFunc(out, compareMembers)
	return out
}

func compareMembers(a, b member) int {
	return cmp.Or(cmp.Compare(a.score, b.score), strings.Compare(a.name, b.name))
}

// The count window, as the sorted set commands of the scripts see it.

// add adds name at score unless it is there (ZADD NX), and reports
// whether it added it.
func (e *entry) add(score int64, name string) bool {
	if slices.ContainsFunc(e.window, func(w member) bool { return w.name == name }) {
		return false
	}
	w := member{score, name}
	i, _ := slices.BinarySearchFunc(e.window, w, compareMembers)
	e.window = slices.Insert(e.window, i, w)
	return true
}

// inWindow returns the members scored from min to max (ZRANGEBYSCORE).
func (e *entry) inWindow(min, max int64) []member {
	var out []member
	for _, w := range e.window {
		if w.score >= min && w.score <= max {
			out = append(out, w)
		}
	}
	return out
}

// trim drops the members scored below min (ZREMRANGEBYSCORE -inf (min).
func (e *entry) trim(min int64) {
	e.window = slices.DeleteFunc(e.window, func(w member) bool { return w.score < min })
}

func (e *entry) remove(name string) {
	e.window = slices.DeleteFunc(e.window, func(w member) bool { return w.name == name })
}

// expireWindow sets the window to expire in ttl ms (PEXPIRE): at once
// when ttl is not positive.
func (e *entry) expireWindow(ttl int64) {
	if ttl <= 0 {
		e.window = nil
	}
}

func (e *entry) holds(event string) bool { return slices.Contains(e.events, event) }

// push appends ids, keeping the last max (RPUSH, LTRIM).
func (e *entry) push(max int, ids ...string) {
	e.events = append(e.events, ids...)
	if n := len(e.events) - max; n > 0 {
		e.events = slices.Delete(e.events, 0, n)
	}
}

// call is one run of apply.lua over one alert.
type call struct {
	e        *entry
	now      int64
	max      int
	out      reply
	dirty    bool // a step of this call changed the alert since the last snapshot
	bodyFrom int
}

// apply runs steps on the alert id as apply.lua does and answers as it
// does.
func (m *Memory) apply(id string, now int64, steps []step) reply {
	e := m.entry(id)
	c := &call{e: e, now: now, max: m.max}
	if h := e.hash; h != nil {
		c.out.was, c.out.wasSeverity = h.state, h.severity
	}
	for n, s := range steps {
		switch s.op {
		case opFire:
			c.fire(n+1, &s)
		case opClear:
			c.resolve(false)
		case opExpire:
			c.resolve(true)
		case opPromote:
			c.promote()
		case opMute:
			c.mute(&s)
		}
	}
	if c.out.changed || c.out.redelivered {
		c.snapshot(c.bodyFrom)
	}
	if e.hash == nil && e.window == nil && e.events == nil {
		delete(m.alerts, id)
	}
	return c.out
}

func (c *call) snapshot(op int) {
	if c.e.hash == nil {
		return
	}
	s := snapshot{rec: *c.e.hash, bodyFrom: op, events: slices.Clone(c.e.events)}
	if op > 0 {
		s.rec.body = ""
	}
	c.out.snapshots = append(c.out.snapshots, s)
}

// transition is called before a step changes the alert's state.
func (c *call) transition() {
	if c.dirty {
		c.snapshot(0)
		c.dirty = false
	}
}

func (c *call) changed() {
	c.dirty = true
	c.out.changed = true
}

// held notes a step that found its work done on an alert that exists.
func (c *call) held() {
	if c.e.hash != nil {
		c.out.redelivered = true
	}
}

func (c *call) fire(n int, s *step) {
	e, h := c.e, c.e.hash
	if h != nil && e.holds(s.event) {
		c.out.redelivered = true
		return
	}
	open := h != nil && h.open()
	var ids []string
	starts := s.time
	if !open && s.atLeast > 0 {
		name := s.event
		if s.distinct {
			if s.value == "" {
				return // nothing to tell it apart by: it does not count
			}
			name += " " + s.value
		}
		if !e.add(s.time, name) {
			c.out.redelivered = true
			return
		}
		e.trim(s.time - s.within)
		e.expireWindow(2 * s.within)
		members := e.inWindow(s.time-s.within, s.time)
		if int64(len(members)) < s.atLeast {
			return
		}
		// A member without a value counts as a value of its own.
		seen := map[string]bool{}
		for _, w := range members {
			id, v, ok := strings.Cut(w.name, " ")
			if !ok || !s.distinct {
				v = id
			}
			ids = append(ids, id)
			seen[v] = true
		}
		if int64(len(seen)) < s.atLeast {
			return
		}
		starts = members[0].score
		e.window = nil
	}

	var fireAt, version int64 = 0, 1
	if h != nil {
		fireAt, version = h.fireAt, h.version+1
	}
	if !open {
		// A new episode.
		c.transition()
		state := stateFiring
		if s.pendingFor > 0 {
			state, fireAt = statePending, c.now+s.pendingFor
		} else {
			fireAt = c.now
		}
		if ids == nil {
			ids = []string{s.event}
		}
		e.events = nil
		e.push(c.max, ids...)
		e.eventsTTL = false
		e.hash = &record{
			state: state, version: version, eventCount: int64(len(ids)),
			startsAt: starts, updatedAt: c.now, resolveAt: s.resolveAt,
			severity: s.severity, fireAt: fireAt,
			silenced: s.silenced, inhibited: s.inhibited, body: string(s.body),
		}
		e.hashTTL = false
	} else {
		state := h.state
		if state == statePending && c.now >= fireAt {
			c.transition()
			state = stateFiring
		}
		e.push(c.max, s.event)
		if h.severity != s.severity {
			h.prevSeverity, h.severity, h.severityAt = h.severity, s.severity, c.now
		}
		h.eventCount++
		h.version, h.state, h.updatedAt = version, state, c.now
		h.body, h.resolveAt, h.fireAt = string(s.body), s.resolveAt, fireAt
		h.silenced, h.inhibited = s.silenced, s.inhibited
	}
	c.bodyFrom = n
	c.changed()
}

// resolve resolves an open alert: a clear condition held, or (expire) its
// resolve_at has passed.
func (c *call) resolve(expire bool) {
	e, h := c.e, c.e.hash
	if !expire {
		e.window = nil // a clear also restarts a window that has not fired yet
	}
	if h == nil || !h.open() {
		c.held()
		return
	}
	ends := c.now
	if expire {
		if h.resolveAt == 0 || h.resolveAt > c.now {
			c.held()
			return
		}
		ends = h.resolveAt // however late the sweep came
	}
	c.transition()
	h.state, h.updatedAt, h.endsAt, h.resolveAt, h.version = stateResolved, c.now, ends, 0, h.version+1
	e.window = nil
	e.hashTTL = true
	e.eventsTTL = len(e.events) > 0
	c.changed()
}

// promote fires a pending alert whose `for` has run out, unless its
// condition stopped holding first.
func (c *call) promote() {
	h := c.e.hash
	if h == nil || h.state != statePending || h.fireAt > c.now || (h.resolveAt > 0 && h.resolveAt <= h.fireAt) {
		c.held()
		return
	}
	c.transition()
	h.state, h.updatedAt, h.version = stateFiring, c.now, h.version+1
	c.changed()
}

// mute sets which silences and which alerts mute an open alert.
func (c *call) mute(s *step) {
	h := c.e.hash
	if h == nil || !h.open() || (h.silenced == s.silenced && h.inhibited == s.inhibited) {
		c.held()
		return
	}
	h.silenced, h.inhibited, h.updatedAt, h.version = s.silenced, s.inhibited, c.now, h.version+1
	c.changed()
}

// tally runs the updates idx of the alert id as tally.lua does, and
// reports whether they must go to apply.
func (m *Memory) tally(id string, updates []Update, idx []int) bool {
	e := m.entry(id)
	defer func() {
		if e.hash == nil && e.window == nil && e.events == nil {
			delete(m.alerts, id)
		}
	}()
	h := e.hash
	if h != nil && h.open() {
		return true
	}
	for _, i := range idx {
		s := tallyStep(&updates[i])
		if s.op == opClear {
			if h != nil {
				return true // published again: the clear may be redelivered
			}
			e.window = nil
			continue
		}
		if h != nil && e.holds(s.event) {
			return true // redelivered: the alert is published again
		}
		if s.distinct && s.value == "" {
			continue
		}
		name := s.event
		if s.distinct {
			name += " " + s.value
		}
		if !e.add(s.time, name) {
			if h != nil {
				return true
			}
			continue
		}
		e.trim(s.time - s.within)
		e.expireWindow(2 * s.within)
		if int64(len(e.inWindow(s.time-s.within, s.time))) >= s.atLeast {
			// It may fill: apply decides, counting this event anew.
			e.remove(name)
			return true
		}
	}
	return false
}
