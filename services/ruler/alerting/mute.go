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
	store    *alertstate.Store
	silences []*rulepack.Silence
	inhibits []*rulepack.Inhibit
	// sources holds the rules whose alerts may inhibit others.
	sources map[string]bool
}

func newMuter(packs []*rulepack.Pack, store *alertstate.Store) *muter {
	m := &muter{store: store, sources: map[string]bool{}}
	for _, p := range packs {
		m.silences = append(m.silences, p.Silences...)
		m.inhibits = append(m.inhibits, p.Inhibits...)
		for _, in := range p.Inhibits {
			for _, r := range in.SourceRules() {
				m.sources[r] = true
			}
		}
	}
	if len(m.silences) == 0 && len(m.inhibits) == 0 {
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

// pass is one round of marking; it reads the open alerts of each rule
// once.
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

func (ps *pass) ofRule(ctx context.Context, rule string) ([]*cityhubv1.Alert, error) {
	if got, ok := ps.rules[rule]; ok {
		return got, nil
	}
	got, err := ps.m.store.OfRule(ctx, rule, maxSources)
	if err != nil {
		return nil, fmt.Errorf("read alerts of %s: %w", rule, err)
	}
	ps.rules[rule] = got
	return got, nil
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
// older versions of an alert in out are dropped, so that no consumer sees
// an unmuted version after the muted one.
func (m *muter) follow(ctx context.Context, now time.Time, out, changed []*cityhubv1.Alert) ([]*cityhubv1.Alert, error) {
	if m == nil || len(m.inhibits) == 0 {
		return out, nil
	}
	ps := m.pass() // read afresh: the batch has just changed alerts
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
				cands, err := ps.ofRule(ctx, rule)
				if err != nil {
					return nil, err
				}
				for _, t := range cands {
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
		out = slices.DeleteFunc(out, func(x *cityhubv1.Alert) bool { return x.GetId() == a.GetId() })
	}
	return append(out, remarked...), nil
}
