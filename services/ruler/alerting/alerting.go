// Package alerting turns events into alerts: it evaluates each event with
// the engine and applies the verdicts to the alert state in Redis. The
// ruler service runs it on Kafka batches; rule tests run it on a clock of
// their own against an in-memory Redis, so both share one behaviour.
package alerting

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Processor evaluates events and updates alert state. It is not safe for
// concurrent use: give each goroutine its own.
type Processor struct {
	worker  *engine.Worker
	store   *alertstate.Store
	results []engine.Result
	updates []alertstate.Update
}

// New returns a Processor evaluating with e and keeping state in s.
func New(e *engine.Engine, s *alertstate.Store) *Processor {
	return &Processor{worker: e.NewWorker(), store: s}
}

// Process evaluates events in order and applies what they do to alerts, in
// one batch. It returns the alerts to publish: every alert an event
// touched, as it is now, including alerts a redelivered event left
// unchanged (their earlier publication may have been lost). Process is
// idempotent: the same events again change no alert.
func (p *Processor) Process(ctx context.Context, now time.Time, events []*cityhubv1.Event) ([]*cityhubv1.Alert, error) {
	p.updates = p.updates[:0]
	for _, ev := range events {
		p.results = p.worker.Eval(ev, p.results[:0])
		for _, r := range p.results {
			p.updates = append(p.updates, update(r, ev))
		}
	}
	if len(p.updates) == 0 {
		return nil, nil
	}
	res, err := p.store.Apply(ctx, now, p.updates)
	if err != nil {
		return nil, fmt.Errorf("apply alert updates: %w", err)
	}
	out := make([]*cityhubv1.Alert, 0, len(res))
	for _, r := range res {
		if r.Alert != nil {
			out = append(out, r.Alert)
		}
	}
	return out, nil
}

// CheckSupported refuses rules that use what the processor does not
// implement yet (`for`), as a rulepack.Errors with the position of each
// use; such a rule must never run with the field silently ignored.
func CheckSupported(packs []*rulepack.Pack) error {
	var errs rulepack.Errors
	for _, p := range packs {
		for _, rule := range p.Rules {
			if rule.For > 0 {
				errs = append(errs, &rulepack.Error{
					File: p.File, Pos: rule.Fields["for"], Rule: rule.ID,
					Err: fmt.Errorf("for: %w", rulepack.ErrUnsupported),
				})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// MaxSweep bounds the alerts one Sweep resolves.
const MaxSweep = 1000

// Sweep resolves the alerts whose resolve_after has passed by now and
// returns them.
func (p *Processor) Sweep(ctx context.Context, now time.Time) ([]*cityhubv1.Alert, error) {
	return p.store.ResolveDue(ctx, now, MaxSweep)
}

func update(r engine.Result, ev *cityhubv1.Event) alertstate.Update {
	rule := r.Rule
	if r.Kind == engine.Clear {
		return alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: r.Fingerprint}}
	}
	u := alertstate.Update{
		Op:           alertstate.Fire,
		Alert:        Describe(r, ev),
		EventID:      ev.GetId(),
		EventTime:    eventTime(ev),
		ResolveAfter: rule.ResolveAfter,
	}
	if rule.Count != nil {
		u.AtLeast, u.Within = rule.Count.AtLeast, rule.Count.Within
	}
	return u
}

func eventTime(ev *cityhubv1.Event) time.Time {
	if ts := ev.GetOccurredAt(); ts != nil {
		return ts.AsTime()
	}
	return ev.GetReceivedAt().AsTime()
}

// Describe returns the descriptive fields of the alert a Fire result
// raises for ev: everything but its state, version, events and times.
func Describe(r engine.Result, ev *cityhubv1.Event) *cityhubv1.Alert {
	rule := r.Rule
	return &cityhubv1.Alert{
		Id:          r.Fingerprint,
		Rule:        rule.Name(),
		Pack:        rule.Pack,
		PackVersion: rule.PackVersion,
		Severity:    rule.Severity,
		Title:       r.Title,
		Labels:      r.Labels,
		District:    ev.GetLocation().GetDistrict(),
		EventType:   ev.GetType(),
		Location:    ev.GetLocation(),
		Explanation: r.Explanation,
		Dispatch:    dispatchSpec(rule.Dispatch),
	}
}

func dispatchSpec(d *rulepack.Dispatch) *cityhubv1.DispatchSpec {
	if d == nil {
		return nil
	}
	spec := &cityhubv1.DispatchSpec{Lead: d.Lead, Assist: d.Assist}
	if d.Accept > 0 || d.Handle > 0 {
		spec.Sla = &cityhubv1.Sla{}
		if d.Accept > 0 {
			spec.Sla.Accept = durationpb.New(d.Accept)
		}
		if d.Handle > 0 {
			spec.Sla.Handle = durationpb.New(d.Handle)
		}
	}
	return spec
}
