package load

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cityhub/cityhub/services/platform/events"
)

// Markers are built for manhole-covers/cover-missing (rules/packs/manhole.yaml):
// it dispatches, it has no count window and no `for`, no rule inhibits it,
// and it groups by district and cover id, so that a marker with a cover id
// and a street of its own raises a firing alert of its own at once and
// opens a case of its own. Flood alerts would not do: five deep streets in
// a district fire district-flooding, which inhibits them, and an
// inhibited alert opens no case.
const (
	markerSource = "inspector"
	markerType   = "manhole_cover_missing"
	markerRule   = "manhole-covers/cover-missing"
)

// markerEvent is marker n of a run.
func markerEvent(id, district string, now time.Time) events.Input {
	return events.Input{
		ID:         id,
		Source:     markerSource,
		Type:       markerType,
		OccurredAt: now.UTC().Format(time.RFC3339Nano),
		Location:   &events.LocationInput{District: district, Street: id, Address: id},
		Text:       "load marker",
		Attrs:      map[string]any{"cover_id": id},
	}
}

// marker is one marker event on its way.
type marker struct {
	step        int
	sent        time.Time
	alert, kase time.Duration // zero until seen
}

// book keeps the markers of a run, keyed as alerts and cases list their
// events ("source/id"). It is safe for concurrent use: the marker sender
// adds, the websocket reader marks them seen, Run reads.
type book struct {
	prefix string // the key prefix every marker of the run has

	mu      sync.Mutex
	markers map[string]*marker
}

func newBook(idPrefix string) *book {
	return &book{prefix: markerSource + "/" + idPrefix, markers: map[string]*marker{}}
}

func key(id string) string { return markerSource + "/" + id }

// add records a marker about to be sent: before the POST, since its alert
// may arrive before the POST's answer.
func (b *book) add(id string, step int, sent time.Time) {
	b.mu.Lock()
	b.markers[key(id)] = &marker{step: step, sent: sent}
	b.mu.Unlock()
}

// drop forgets a marker whose POST failed.
func (b *book) drop(id string) {
	b.mu.Lock()
	delete(b.markers, key(id))
	b.mu.Unlock()
}

// stream says which delta a frame was.
type stream int

const (
	alertStream stream = iota
	caseStream
)

// seen notes that a delta of stream s listing eventIDs arrived at at.
func (b *book) seen(s stream, eventIDs []string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range eventIDs {
		if !strings.HasPrefix(id, b.prefix) {
			continue
		}
		m := b.markers[id]
		if m == nil {
			continue
		}
		d := &m.alert
		if s == caseStream {
			d = &m.kase
		}
		if *d == 0 {
			*d = max(at.Sub(m.sent), time.Nanosecond)
		}
	}
}

// outstanding counts the markers of steps from on whose alert or case
// has not arrived.
func (b *book) outstanding(from int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.markers {
		if m.step >= from && (m.alert == 0 || m.kase == 0) {
			n++
		}
	}
	return n
}

// overdue counts the markers of step sent before cutoff, and those of
// them whose alert, and whose case, has not arrived.
func (b *book) overdue(step int, cutoff time.Time) (total, noAlert, noCase int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.markers {
		if m.step != step || !m.sent.Before(cutoff) {
			continue
		}
		total++
		if m.alert == 0 {
			noAlert++
		}
		if m.kase == 0 {
			noCase++
		}
	}
	return total, noAlert, noCase
}

// summary sums up the markers of step.
func (b *book) summary(step int) Markers {
	var alerts, cases []time.Duration
	sent := 0
	b.mu.Lock()
	for _, m := range b.markers {
		if m.step != step {
			continue
		}
		sent++
		if m.alert > 0 {
			alerts = append(alerts, m.alert)
		}
		if m.kase > 0 {
			cases = append(cases, m.kase)
		}
	}
	b.mu.Unlock()
	return Markers{
		Sent: sent, Alerts: len(alerts), Cases: len(cases),
		AlertLatency: latencyOf(alerts, sent), CaseLatency: latencyOf(cases, sent),
	}
}

// latencyOf gives the percentiles of n markers of which seen arrived.
// The others count as slower than every one seen: a percentile that
// falls among them is unknown (nil), not flattered.
func latencyOf(seen []time.Duration, n int) Latency {
	slices.Sort(seen)
	at := func(q float64) *float64 {
		if n == 0 {
			return nil
		}
		i := max(int(math.Ceil(q*float64(n)-1e-9))-1, 0) // nearest rank; 1e-9 absorbs 0.95*20 = 19.000000000000004
		if i >= len(seen) {
			return nil
		}
		ms := float64(seen[i]) / float64(time.Millisecond)
		return &ms
	}
	l := Latency{P50: at(0.50), P95: at(0.95), P99: at(0.99)}
	if len(seen) == n && n > 0 {
		l.Max = at(1)
	}
	return l
}
