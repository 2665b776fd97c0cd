// Package alerting turns events into alerts: it evaluates each event with
// the engine, applies the verdicts to the alert state, and marks the alerts
// that silences and inhibit rules mute. The ruler service runs it on Kafka
// batches against Redis (alertstate.Store); rule tests and backtests run it
// on a clock of their own against alertstate.Memory, the Go model the
// Redis scripts are held to, so all share one behaviour.
package alerting

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Store is the alert state a Processor keeps: alertstate.Store in Redis,
// or alertstate.Memory. The methods are those of alertstate.Store.
type Store interface {
	Tally(ctx context.Context, updates []alertstate.Update) (need []bool, err error)
	Apply(ctx context.Context, now time.Time, updates []alertstate.Update) ([]alertstate.Result, error)
	Promote(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error)
	ResolveDue(ctx context.Context, now time.Time, limit int) ([]*cityhubv1.Alert, error)
	Firing(ctx context.Context) ([]*cityhubv1.Alert, error)
	Pending(ctx context.Context) ([]*cityhubv1.Alert, error)
	OpenOf(ctx context.Context, rules []string, limit int) (map[string][]*cityhubv1.Alert, error)
	Signal(ctx context.Context, signals []alertstate.Signal) (firing []string, bare []int, err error)
	Describe(ctx context.Context, signals []alertstate.Signal) error
	Silent(ctx context.Context, now time.Time, limit int) ([]alertstate.Update, error)
	Unindex(ctx context.Context, fired []alertstate.Update) error
}

var (
	_ Store = (*alertstate.Store)(nil)
	_ Store = (*alertstate.Memory)(nil)
)

// Processor evaluates events and updates alert state. It is not safe for
// concurrent use: give each goroutine its own.
type Processor struct {
	worker  *engine.Worker
	store   Store
	packs   []*rulepack.Pack
	mute    *muter
	results []engine.Result
	updates []alertstate.Update
	// matched holds, for each of updates, the verdict and event it came
	// from, to describe the alerts that Tally leaves for Apply.
	matched []match
	fired   []*cityhubv1.Alert
	// signals are the batch's signs of life, the latest of each group
	// (signaled: its index), with what the engine said of each.
	signals     []alertstate.Signal
	signalMatch []match
	signaled    map[string]int
	// swept says whether Sweep has run; active names the silences that
	// were active at its last run, to notice a silence starting or ending.
	swept  bool
	active string
}

// New returns a Processor evaluating with e and keeping state in s. The
// silences and inhibit rules of e's packs mute alerts.
func New(e *engine.Engine, s Store) *Processor {
	return &Processor{worker: e.NewWorker(), store: s, packs: e.Packs(), mute: newMuter(e.Packs(), s, nil, false), signaled: map[string]int{}}
}

// SetSilences makes silences, set at run time, mute alerts beside the
// packs' own, from the next batch on; the next Sweep marks the open alerts
// anew when that changes which silences are active.
func (p *Processor) SetSilences(silences []*rulepack.Silence) {
	p.mute = newMuter(p.packs, p.store, silences, true)
}

// Process evaluates events in order and applies what they do to alerts, in
// one batch. It returns the alerts to publish: every alert an event
// changed, as it is now; alerts an event may have changed before, in a
// batch whose publication was lost, and left unchanged now (an event the
// alert holds, a clear of a resolved alert); and the alerts whose
// inhibition changed because an inhibiting alert did. An event that only
// adds to a count window that does not fill publishes nothing.
//
// An alert is returned once per batch, at its latest version, however
// many events touched it; when the batch changed its state more than once
// (it fired and resolved, or went from pending to firing to resolved), the
// last version in each state comes before it, so that every state it
// passed through is published: a firing that the same batch resolves
// still opens its case. Process is idempotent: the same events again
// change no alert.
func (p *Processor) Process(ctx context.Context, now time.Time, batch []*cityhubv1.Event) ([]*cityhubv1.Alert, error) {
	p.updates, p.matched = p.updates[:0], p.matched[:0]
	for _, ev := range batch {
		p.results = p.worker.Match(ev, p.results[:0])
		for _, r := range p.results {
			if r.Kind == engine.Signal {
				p.signal(r, ev)
				continue
			}
			p.updates = append(p.updates, update(r, ev))
			p.matched = append(p.matched, match{r, ev})
		}
	}
	// A sign of life ends the silence of its group: the alert the silence
	// fired resolves, in this batch.
	if len(p.signals) > 0 {
		firing, err := p.applySignals(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range firing {
			p.updates = append(p.updates, alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: id}})
			p.matched = append(p.matched, match{})
		}
	}
	if len(p.updates) == 0 {
		return nil, nil
	}
	// Most events of count rules only add to a window that does not fill:
	// Tally counts them without the alert they might raise, and only the
	// updates it leaves are described and applied.
	need, err := p.store.Tally(ctx, p.updates)
	if err != nil {
		return nil, fmt.Errorf("tally alert updates: %w", err)
	}
	kept := p.updates[:0]
	for i, u := range p.updates {
		if !need[i] {
			continue
		}
		if u.Op == alertstate.Fire {
			m := &p.matched[i]
			p.worker.Describe(m.ev, &m.r)
			u.Alert = Describe(m.r, m.ev)
		}
		kept = append(kept, u)
	}
	clear(p.matched) // let the events go
	p.updates = kept
	if len(p.updates) == 0 {
		return nil, nil
	}
	if err := p.markFired(ctx, now, p.updates); err != nil {
		return nil, err
	}
	res, err := p.store.Apply(ctx, now, p.updates)
	if err != nil {
		return nil, fmt.Errorf("apply alert updates: %w", err)
	}
	out := make([]*cityhubv1.Alert, 0, len(res))
	var sources []*cityhubv1.Alert
	for _, r := range res {
		if r.Alert == nil {
			continue
		}
		out = append(out, r.Earlier...)
		out = append(out, r.Alert)
		if p.mute.mayInhibitAnew(r) {
			sources = append(sources, r.Alert)
		}
	}
	return p.mute.follow(ctx, now, out, sources)
}

// signal notes r, a sign of life of a group of an absent rule: a batch
// keeps the latest of each group.
func (p *Processor) signal(r engine.Result, ev *cityhubv1.Event) {
	sg := alertstate.Signal{ID: r.Fingerprint, EventID: events.Key(ev), EventTime: eventTime(ev), For: r.Rule.Absent.For}
	if i, ok := p.signaled[sg.ID]; ok {
		if sg.EventTime.After(p.signals[i].EventTime) {
			p.signals[i], p.signalMatch[i] = sg, match{r, ev}
		}
		return
	}
	p.signaled[sg.ID] = len(p.signals)
	p.signals = append(p.signals, sg)
	p.signalMatch = append(p.signalMatch, match{r, ev})
}

// applySignals moves on the waits of the batch's signs of life, describes
// the alerts of the groups whose wait holds none yet, and returns the
// alerts whose silence they end.
func (p *Processor) applySignals(ctx context.Context) ([]string, error) {
	defer func() {
		clear(p.signaled)
		clear(p.signalMatch) // let the events go
		p.signals, p.signalMatch = p.signals[:0], p.signalMatch[:0]
	}()
	firing, bare, err := p.store.Signal(ctx, p.signals)
	if err != nil {
		return nil, fmt.Errorf("signal absent rules' groups: %w", err)
	}
	if len(bare) > 0 {
		described := make([]alertstate.Signal, len(bare))
		for j, i := range bare {
			m := &p.signalMatch[i]
			p.worker.Describe(m.ev, &m.r)
			described[j] = p.signals[i]
			described[j].Alert = Describe(m.r, m.ev)
		}
		if err := p.store.Describe(ctx, described); err != nil {
			return nil, fmt.Errorf("describe absent rules' alerts: %w", err)
		}
	}
	return firing, nil
}

// markFired marks the alerts of the Fire updates among updates with what
// mutes them. What mutes a firing alert is stored with it, so that the
// version that opens a case already says whether it may. What inhibits
// the alerts is read once, before any is marked.
func (p *Processor) markFired(ctx context.Context, now time.Time, updates []alertstate.Update) error {
	pass := p.mute.pass()
	if pass == nil {
		return nil
	}
	p.fired = p.fired[:0]
	for _, u := range updates {
		if u.Op == alertstate.Fire {
			p.fired = append(p.fired, u.Alert)
		}
	}
	if err := pass.prepare(ctx, p.fired); err != nil {
		return err
	}
	for _, a := range p.fired {
		if err := pass.mark(ctx, now, a); err != nil {
			return err
		}
	}
	return nil
}

// changedOnly returns the alerts of res that the updates changed.
func changedOnly(res []alertstate.Result) []*cityhubv1.Alert {
	var out []*cityhubv1.Alert
	for _, r := range res {
		if r.Changed && r.Alert != nil {
			out = append(out, r.Alert)
		}
	}
	return out
}

// CheckSupported refuses rules that use what the processor does not
// implement, as a rulepack.Errors with the position of each use, so that a
// rule never runs with a field silently ignored. Every field of the pack
// format is implemented today; the check stays for the tools that call it.
func CheckSupported(packs []*rulepack.Pack) error {
	return nil
}

// MaxSweep bounds the alerts one Sweep fires or resolves.
const MaxSweep = 1000

// Sweep fires the pending alerts whose `for` has run out and resolves the
// alerts whose resolve_after has, in that order, so that an alert due to
// fire before it was due to resolve does both; then fires the alerts of
// absent rules' groups that fell silent. When a silence has started or
// ended since the last Sweep (and on the first), it marks every open alert
// anew. It returns the alerts it changed.
func (p *Processor) Sweep(ctx context.Context, now time.Time) ([]*cityhubv1.Alert, error) {
	fired, err := p.store.Promote(ctx, now, MaxSweep)
	if err != nil {
		return nil, err
	}
	resolved, err := p.store.ResolveDue(ctx, now, MaxSweep)
	if err != nil {
		return nil, err
	}
	changed := append(fired, resolved...)
	silent, err := p.store.Silent(ctx, now, MaxSweep)
	if err != nil {
		return nil, err
	}
	if len(silent) > 0 {
		if err := p.markFired(ctx, now, silent); err != nil {
			return nil, err
		}
		res, err := p.store.Apply(ctx, now, silent)
		if err != nil {
			return nil, fmt.Errorf("fire the alerts of silent groups: %w", err)
		}
		for _, r := range res {
			if r.Alert != nil {
				changed = append(changed, r.Earlier...)
				changed = append(changed, r.Alert)
			}
		}
		// Only now, with the alerts fired: a sweeper that dies before
		// leaves the waits to the next sweep, which finds them fired.
		if err := p.store.Unindex(ctx, silent); err != nil {
			return nil, err
		}
	}
	if active := p.mute.active(now); p.mute != nil && (!p.swept || active != p.active) {
		open, err := p.mute.open(ctx)
		if err != nil {
			return nil, err
		}
		remarked, err := p.mute.remark(ctx, now, open, p.mute.pass())
		if err != nil {
			return nil, err
		}
		changed = append(changed, remarked...)
		p.active = active
	}
	p.swept = true
	return p.mute.follow(ctx, now, changed, changed)
}

// match is a verdict of the engine on an event.
type match struct {
	r  engine.Result
	ev *cityhubv1.Event
}

// update returns the update r asks of its alert. The Alert of a Fire
// update holds only its id until it is described.
func update(r engine.Result, ev *cityhubv1.Event) alertstate.Update {
	rule := r.Rule
	if r.Kind == engine.Clear {
		return alertstate.Update{Op: alertstate.Resolve, Alert: &cityhubv1.Alert{Id: r.Fingerprint}}
	}
	u := alertstate.Update{
		Op:           alertstate.Fire,
		Alert:        &cityhubv1.Alert{Id: r.Fingerprint},
		EventID:      events.Key(ev), // ids are per source
		EventTime:    eventTime(ev),
		ResolveAfter: rule.ResolveAfter,
		For:          rule.For,
	}
	if c := rule.Count; c != nil {
		u.AtLeast, u.Within = c.AtLeast, c.Within
		u.CountDistinct, u.Distinct = c.Distinct != "", r.Distinct
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
// raises for ev: everything but its state, version, events, times and
// what mutes it.
func Describe(r engine.Result, ev *cityhubv1.Event) *cityhubv1.Alert {
	rule := r.Rule
	sev := r.Severity
	if sev == cityhubv1.Severity_SEVERITY_UNSPECIFIED {
		sev = rule.Severity
	}
	return &cityhubv1.Alert{
		Id:          r.Fingerprint,
		Rule:        rule.Name(),
		Pack:        rule.Pack,
		PackVersion: rule.PackVersion,
		Severity:    sev,
		Title:       r.Title,
		Summary:     r.Summary,
		Labels:      r.Labels,
		District:    ev.GetLocation().GetDistrict(),
		EventType:   ev.GetType(),
		Location:    ev.GetLocation(),
		Explanation: r.Explanation,
		Dispatch:    dispatchSpec(rule.Dispatch),
		Shadow:      rule.Shadow,
		Publish:     rule.Publish,
	}
}

func dispatchSpec(d *rulepack.Dispatch) *cityhubv1.DispatchSpec {
	if d == nil {
		return nil
	}
	spec := &cityhubv1.DispatchSpec{Lead: d.Lead, Assist: d.Assist, CaseClass: d.CaseClass}
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
