package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/cityhub/cityhub/services/platform/events"
)

// session is the bridge's work on one connection: paho hands each message
// to receive; run batches them, writes them, and acknowledges them on the
// connection they came on — never on a later one, where the broker may
// have given their packet ids to other messages (paho.golang#160).
type session struct {
	b   *Bridge
	ack func(*paho.Publish) error
	// ctx ends when the connection closes, or DrainTimeout after Run's
	// context ended: a write under way then is abandoned, unacknowledged.
	ctx  context.Context
	in   chan inbound
	stop chan struct{} // closed when Run's context ends: finish the batch, then return
	lost chan struct{} // closed when the connection closes
	done chan struct{} // closed when run returns

	carry *pending // taken from in but not fitting the last batch

	mu      sync.Mutex
	lastErr error
}

// inbound is a message as paho handed it over.
type inbound struct {
	pub *paho.Publish
	at  time.Time
}

// pending is a message of a batch.
type pending struct {
	pub     *paho.Publish
	at      time.Time
	mapping Mapping
	dups    int // events dropped as already written
	written int // events Kafka acknowledged
}

// receive is paho's handler. It runs on paho's one routing goroutine, so
// messages reach run in the order they came; it returns once run has the
// message or the connection is gone (paho waits for it before it stops).
func (s *session) receive(pr paho.PublishReceived) (bool, error) {
	select {
	case s.in <- inbound{pub: pr.Packet, at: s.b.opts.Now()}:
	case <-s.lost:
	}
	return true, nil
}

func (s *session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		s.lastErr = err
	}
}

func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// run batches, writes and acknowledges until the connection is lost or
// stop is closed.
func (s *session) run() {
	defer close(s.done)
	for {
		batch, more := s.collect()
		if len(batch) > 0 {
			s.process(batch)
		}
		if !more {
			return
		}
	}
}

// collect returns the next batch: the messages that arrive until it holds
// MaxBatch events or messages, or Linger passed since its first. more is
// false when the session is over; the batch is still to be written then
// (a drain) unless the connection is gone.
func (s *session) collect() (batch []*pending, more bool) {
	first := s.carry
	s.carry = nil
	if first == nil {
		select {
		case m := <-s.in:
			first = s.prepare(m)
		case <-s.stop:
			return nil, false
		case <-s.lost:
			return nil, false
		}
	}
	max := s.b.opts.MaxBatch
	batch = append(make([]*pending, 0, 64), first)
	n := len(first.mapping.Events)
	timer := time.NewTimer(s.b.opts.Linger)
	defer timer.Stop()
	for len(batch) < max && n < max {
		select {
		case m := <-s.in:
			p := s.prepare(m)
			if n+len(p.mapping.Events) > max {
				s.carry = p
				return batch, true
			}
			batch = append(batch, p)
			n += len(p.mapping.Events)
		case <-timer.C:
			return batch, true
		case <-s.stop:
			return batch, false
		case <-s.lost:
			return nil, false
		}
	}
	return batch, true
}

// prepare maps a message with the registry of the moment.
func (s *session) prepare(m inbound) *pending {
	p := &pending{pub: m.pub, at: m.at}
	if n := len(m.pub.Payload); n > s.b.opts.MaxPayloadBytes {
		kind, name, _ := splitTopic(m.pub.Topic)
		if kind != "" {
			p.mapping.Publisher = name
		}
		p.mapping.Problems = []string{fmt.Sprintf("payload of %d bytes, at most %d (dead-lettered cut to that)", n, s.b.opts.MaxPayloadBytes)}
		return p
	}
	p.mapping = s.b.reg.Load().Map(m.pub.Topic, m.pub.Payload, m.at)
	return p
}

// process writes a batch's events and dead letters, then acknowledges
// its messages. If the connection closes or the drain time runs out
// first, nothing of the batch is acknowledged: the broker delivers it
// again, and the events' ids make the rewrite harmless.
func (s *session) process(batch []*pending) {
	s.dedupe(batch)
	if !s.submit(batch) || !s.deadLetter(batch) {
		return
	}
	for _, p := range batch {
		// An error means the connection is gone; the broker delivers the
		// message again.
		_ = s.ack(p.pub)
	}
	m := s.b.metrics
	for _, p := range batch {
		switch {
		case len(p.mapping.Problems) > 0 && p.written > 0:
			m.messages.partial.Inc()
		case len(p.mapping.Problems) > 0:
			m.messages.dlq.Inc()
		case p.written > 0:
			m.messages.bridged.Inc()
		case p.dups > 0:
			m.messages.duplicate.Inc()
		default:
			m.messages.ignored.Inc()
		}
	}
	m.batch.Observe(time.Since(batch[0].at).Seconds())
}

// dedupe drops the events already written or already in the batch: a
// message delivered again, or a device that sent one reading twice. The
// first comes first; later ones with the same id are the same event.
func (s *session) dedupe(batch []*pending) {
	seen := make(map[string]struct{}, len(batch))
	for _, p := range batch {
		evs := p.mapping.Events
		kept := evs[:0:0]
		for _, ev := range evs {
			_, dup := seen[ev.ID]
			if dup || s.b.recent.has(ev.ID) {
				p.dups++
				continue
			}
			seen[ev.ID] = struct{}{}
			kept = append(kept, ev)
		}
		p.mapping.Events = kept
	}
}

// submit writes the batch's events, retrying until Kafka acknowledges
// them. Events that intake refuses are taken out and their messages
// dead-lettered; the rest are written. It reports false when it gave up
// because the session ended.
func (s *session) submit(batch []*pending) bool {
	var in []*events.Input
	var owners []*pending
	gather := func() {
		in, owners = in[:0], owners[:0]
		for _, p := range batch {
			for _, ev := range p.mapping.Events {
				in = append(in, ev)
				owners = append(owners, p)
			}
		}
	}
	gather()
	for attempt := 1; len(in) > 0; attempt++ {
		reg := s.b.reg.Load()
		_, err := s.b.opts.Submitter.Submit(s.ctx, Via, reg.Principal(), in)
		if err == nil {
			for _, p := range batch {
				p.written = len(p.mapping.Events)
			}
			for _, ev := range in {
				s.b.recent.add(ev.ID)
			}
			return true
		}
		var be *events.BatchError
		if errors.As(err, &be) && refuse(in, owners, be) {
			gather()
			attempt = 0
			continue
		}
		if !s.retry("writing events", attempt, err) {
			return false
		}
	}
	return true
}

// refuse takes the events a BatchError names out of their messages and
// records why. It reports whether it took out any.
func refuse(in []*events.Input, owners []*pending, be *events.BatchError) bool {
	bad := make(map[*events.Input]bool, len(be.Items))
	for _, item := range be.Items {
		if item.Index < 0 || item.Index >= len(in) {
			continue
		}
		ev, p := in[item.Index], owners[item.Index]
		bad[ev] = true
		reasons := make([]string, len(item.Errors))
		for i, fe := range item.Errors {
			reasons[i] = strings.TrimPrefix(fe.Field+": "+fe.Message, ": ")
		}
		if len(p.mapping.Problems) < MaxProblems {
			p.mapping.Problems = append(p.mapping.Problems, fmt.Sprintf("intake refused event %s: %s", ev.ID, strings.Join(reasons, "; ")))
		}
	}
	if len(bad) == 0 {
		return false
	}
	for _, p := range owners {
		evs := p.mapping.Events
		kept := evs[:0:0]
		for _, ev := range evs {
			if !bad[ev] {
				kept = append(kept, ev)
			}
		}
		p.mapping.Events = kept
	}
	return true
}

// MaxReasonBytes bounds the reason a dead letter carries.
const MaxReasonBytes = 2 << 10

// deadLetter writes the batch's messages that have problems, retrying
// until they are stored. It reports false when it gave up because the
// session ended.
func (s *session) deadLetter(batch []*pending) bool {
	var letters []DeadLetter
	for _, p := range batch {
		if len(p.mapping.Problems) == 0 {
			continue
		}
		payload := p.pub.Payload
		if len(payload) > s.b.opts.MaxPayloadBytes {
			payload = payload[:s.b.opts.MaxPayloadBytes]
		}
		reason := strings.Join(p.mapping.Problems, "; ")
		if len(reason) > MaxReasonBytes {
			reason = strings.ToValidUTF8(reason[:MaxReasonBytes], "") + "…"
		}
		letters = append(letters, DeadLetter{Topic: p.pub.Topic, Publisher: p.mapping.Publisher, Payload: payload, Reason: reason, At: p.at})
	}
	for attempt := 1; len(letters) > 0; attempt++ {
		err := s.b.opts.DeadLetters.DeadLetter(s.ctx, letters)
		if err == nil {
			return true
		}
		if !s.retry("writing dead letters", attempt, err) {
			return false
		}
	}
	return true
}

// retry counts and logs a failed attempt (the first, then every tenth),
// then waits before the next. It reports false when the session ended
// meanwhile.
func (s *session) retry(what string, attempt int, err error) bool {
	s.b.metrics.retries.Inc()
	if attempt == 1 || attempt%10 == 0 {
		s.b.log.Warn(what+" failed; retrying, nothing acknowledged to the broker", "attempt", attempt, "err", err)
	}
	return sleep(s.ctx.Done(), backoff(s.b.opts.MinBackoff, s.b.opts.MaxBackoff, attempt))
}
