package alerting

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// maxSources bounds the open alerts of one rule read to decide inhibition.
// Inhibiting rules are few and wide (one alert per district), so the bound
// is far above what they raise.
const maxSources = 1000

// muter marks alerts with the silences and inhibiting alerts that mute
// them. A nil muter (no silences, no inhibit rules) marks nothing.
//
// A muted alert is stored, published and shown like any other; its
// silenced_by and inhibited_by say that no case may be opened from it.
// Marks are set when an event fires the alert, and set anew when an
// inhibiting alert fires or resolves and when a silence starts or ends
// (noticed by Sweep).
type muter struct {
	store    Store
	silences []*rulepack.Silence
	inhibits []*rulepack.Inhibit
	// sources holds the rules whose alerts may inhibit others.
	sources map[string]bool
}

// newMuter returns the muter of packs' silences and inhibit rules and of
// the silences set at run time. It is nil when there is nothing to mute
// with, unless always: once silences may come at run time, their ending
// must unmark what they marked.
func newMuter(packs []*rulepack.Pack, store Store, runtime []*rulepack.Silence, always bool) *muter {
	m := &muter{store: store, sources: map[string]bool{}}
	m.silences = append(m.silences, runtime...)
	for _, p := range packs {
		m.silences = append(m.silences, p.Silences...)
		m.inhibits = append(m.inhibits, p.Inhibits...)
		for _, in := range p.Inhibits {
			for _, r := range in.SourceRules() {
				m.sources[r] = true
			}
		}
	}
	if len(m.silences) == 0 && len(m.inhibits) == 0 && !always {
		return nil
	}
	return m
}

// active names the silences active at now.
func (m *muter) active(now time.Time) string {
	if m == nil {
		return ""
	}
	var names []string
	for _, s := range m.silences {
		if s.Active(now) {
			names = append(names, s.Name)
		}
	}
	return strings.Join(names, ",")
}

// open returns every pending and firing alert.
func (m *muter) open(ctx context.Context) ([]*cityhubv1.Alert, error) {
	firing, err := m.store.Firing(ctx)
	if err != nil {
		return nil, err
	}
	pending, err := m.store.Pending(ctx)
	if err != nil {
		return nil, err
	}
	return append(firing, pending...), nil
}

// pass is one round of marking; it reads the open alerts of each rule it
// needs once, all rules in one read.
type pass struct {
	m     *muter
	rules map[string][]*cityhubv1.Alert
}

func (m *muter) pass() *pass {
	if m == nil {
		return nil
	}
	return &pass{m: m, rules: map[string][]*cityhubv1.Alert{}}
}

// load reads the open alerts of those of rules the pass has not read yet,
// in one read whatever their number.
func (ps *pass) load(ctx context.Context, rules []string) error {
	var missing []string
	for _, r := range rules {
		if _, ok := ps.rules[r]; !ok && !slices.Contains(missing, r) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	got, err := ps.m.store.OpenOf(ctx, missing, maxSources)
	if err != nil {
		return fmt.Errorf("read the alerts of %s: %w", strings.Join(missing, ", "), err)
	}
	for _, r := range missing {
		ps.rules[r] = got[r]
	}
	return nil
}

func (ps *pass) ofRule(ctx context.Context, rule string) ([]*cityhubv1.Alert, error) {
	if err := ps.load(ctx, []string{rule}); err != nil {
		return nil, err
	}
	return ps.rules[rule], nil
}

// prepare reads, in one go, the open alerts of every rule that may inhibit
// one of alerts.
func (ps *pass) prepare(ctx context.Context, alerts []*cityhubv1.Alert) error {
	if ps == nil || len(ps.m.inhibits) == 0 {
		return nil
	}
	var rules []string
	for _, a := range alerts {
		v := value(a)
		for _, in := range ps.m.inhibits {
			if in.Target.Matches(v) {
				rules = append(rules, in.SourceRules()...)
			}
		}
	}
	return ps.load(ctx, rules)
}

// volatile names what value returns from where an alert last happened
// rather than from its group labels: it may change with every event.
var volatile = []string{"district", "street", "grid", "type"}

// mayInhibitAnew reports whether the change r made to an alert may change
// which alerts it inhibits: it is an inhibiting rule's alert and its state
// or severity changed, or an inhibit rule compares it by a value that
// comes from its latest event. An alert that merely counted one more
// event inhibits what it did.
func (m *muter) mayInhibitAnew(r alertstate.Result) bool {
	a := r.Alert
	if m == nil || a == nil || !r.Changed || !m.sources[a.GetRule()] {
		return false
	}
	if r.Was != a.GetState() || len(r.Earlier) > 0 || r.WasSeverity != a.GetSeverity() {
		return true
	}
	v := value(a)
	for _, in := range m.inhibits {
		if !in.Source.Matches(v) {
			continue
		}
		for _, name := range volatile {
			if _, grouped := a.GetLabels()[name]; grouped {
				continue
			}
			if _, ok := in.Source[name]; ok || slices.Contains(in.Equal, name) {
				return true
			}
		}
	}
	return false
}

// value returns a's value for a matcher or label name: its rule, pack,
// severity or group label, and where it does not group by district,
// street, grid or type, where it happened.
func value(a *cityhubv1.Alert) func(string) string {
	return func(name string) string {
		switch name {
		case "rule":
			return a.GetRule()
		case "pack":
			return a.GetPack()
		case "severity":
			return a.GetSeverity().Name()
		}
		if v, ok := a.GetLabels()[name]; ok {
			return v
		}
		switch name {
		case "district":
			if d := a.GetLocation().GetDistrict(); d != "" {
				return d
			}
			return a.GetDistrict()
		case "street":
			return a.GetLocation().GetStreet()
		case "grid":
			return a.GetLocation().GetGrid()
		case "type":
			return a.GetEventType()
		}
		return ""
	}
}

// equal reports whether a and b have the same, non-empty values of labels.
func equal(labels []string, a, b *cityhubv1.Alert) bool {
	va, vb := value(a), value(b)
	for _, l := range labels {
		if x := va(l); x == "" || x != vb(l) {
			return false
		}
	}
	return true
}

// marks returns the silences active at now that select a, and the firing
// alerts that inhibit it, in a stable order.
func (ps *pass) marks(ctx context.Context, now time.Time, a *cityhubv1.Alert) (silenced, inhibited []string, err error) {
	v := value(a)
	for _, s := range ps.m.silences {
		if s.Active(now) && s.Matchers.Matches(v) {
			silenced = append(silenced, s.Name)
		}
	}
	for _, in := range ps.m.inhibits {
		if !in.Target.Matches(v) {
			continue
		}
		for _, rule := range in.SourceRules() {
			srcs, err := ps.ofRule(ctx, rule)
			if err != nil {
				return nil, nil, err
			}
			for _, src := range srcs {
				// A rule on trial (shadow) must not change what the city
				// does: its alerts inhibit nothing.
				if src.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING || src.GetShadow() || src.GetId() == a.GetId() {
					continue
				}
				if in.Source.Matches(value(src)) && equal(in.Equal, src, a) && !slices.Contains(inhibited, src.GetId()) {
					inhibited = append(inhibited, src.GetId())
				}
			}
		}
	}
	slices.Sort(inhibited)
	return silenced, inhibited, nil
}

// mark sets a's marks for a Fire update.
func (ps *pass) mark(ctx context.Context, now time.Time, a *cityhubv1.Alert) error {
	if ps == nil {
		return nil
	}
	var err error
	a.SilencedBy, a.InhibitedBy, err = ps.marks(ctx, now, a)
	return err
}

// remark sets the marks of the open alerts among alerts anew and returns
// those whose marks changed, as they are now.
func (m *muter) remark(ctx context.Context, now time.Time, alerts []*cityhubv1.Alert, ps *pass) ([]*cityhubv1.Alert, error) {
	var updates []alertstate.Update
	for _, a := range alerts {
		if s := a.GetState(); s != cityhubv1.AlertState_ALERT_STATE_FIRING && s != cityhubv1.AlertState_ALERT_STATE_PENDING {
			continue
		}
		silenced, inhibited, err := ps.marks(ctx, now, a)
		if err != nil {
			return nil, err
		}
		if slices.Equal(silenced, a.GetSilencedBy()) && slices.Equal(inhibited, a.GetInhibitedBy()) {
			continue
		}
		updates = append(updates, alertstate.Update{Op: alertstate.Mute,
			Alert: &cityhubv1.Alert{Id: a.GetId(), SilencedBy: silenced, InhibitedBy: inhibited}})
	}
	if len(updates) == 0 {
		return nil, nil
	}
	res, err := m.store.Apply(ctx, now, updates)
	if err != nil {
		return nil, fmt.Errorf("mark muted alerts: %w", err)
	}
	return changedOnly(res), nil
}

// follow marks anew the alerts that the inhibiting alerts among changed
// may inhibit, or no longer, and returns out with them at its end: the
// version of an alert in out that a new mark supersedes is dropped, so
// that no consumer sees an unmuted version after the muted one.
func (m *muter) follow(ctx context.Context, now time.Time, out, changed []*cityhubv1.Alert) ([]*cityhubv1.Alert, error) {
	if m == nil || len(m.inhibits) == 0 {
		return out, nil
	}
	// Read afresh, every rule at once: the batch has just changed alerts.
	var rules []string
	for _, src := range changed {
		if !m.sources[src.GetRule()] {
			continue
		}
		for _, in := range m.inhibits {
			if in.Source.Matches(value(src)) {
				rules = append(rules, in.TargetRules()...)
			}
		}
	}
	if len(rules) == 0 {
		return out, nil
	}
	for _, in := range m.inhibits {
		// What the targets' new marks are computed from.
		rules = append(rules, in.SourceRules()...)
	}
	ps := m.pass()
	if err := ps.load(ctx, rules); err != nil {
		return nil, err
	}
	var targets []*cityhubv1.Alert
	seen := map[string]bool{}
	for _, src := range changed {
		if !m.sources[src.GetRule()] {
			continue
		}
		for _, in := range m.inhibits {
			if !in.Source.Matches(value(src)) {
				continue
			}
			for _, rule := range in.TargetRules() {
				for _, t := range ps.rules[rule] {
					if !seen[t.GetId()] && equal(in.Equal, src, t) {
						seen[t.GetId()] = true
						targets = append(targets, t)
					}
				}
			}
		}
	}
	if len(targets) == 0 {
		return out, nil
	}
	remarked, err := m.remark(ctx, now, targets, ps)
	if err != nil {
		return nil, err
	}
	for _, a := range remarked {
		out = slices.DeleteFunc(out, func(x *cityhubv1.Alert) bool {
			return x.GetId() == a.GetId() && x.GetState() == a.GetState() && x.GetStartsAt().AsTime().Equal(a.GetStartsAt().AsTime())
		})
	}
	return append(out, remarked...), nil
}
