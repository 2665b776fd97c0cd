package rulecheck

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/alerting"
	"github.com/cityhub/cityhub/services/ruler/alertstate"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Change is one change of one alert in a replay: it started firing (or
// pending), resolved, changed severity, or was muted or unmuted by a
// silence.
type Change struct {
	At          time.Time         `json:"at"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Fingerprint string            `json:"fingerprint"`
	Title       string            `json:"title,omitempty"`
	// SilencedBy names the silences muting the alert: it opened no case.
	SilencedBy []string `json:"silenced_by,omitempty"`
}

// Replay runs events through packs, in order of occurred_at, with event
// time as the clock: each event is evaluated at its own occurred_at, and
// alerts resolve (resolve_after) at the moment their deadline falls
// between two events, not when the next event happens to come. Once the
// events are done the clock moves on to end, when end is later than the
// last event. silences, set at run time, mute alerts beside the packs'
// own. It returns every change of every alert, in time order. The packs
// must be compiled; events is sorted in place.
func Replay(ctx context.Context, packs []*rulepack.Pack, silences []*rulepack.Silence, events []*cityhubv1.Event, end time.Time) ([]Change, error) {
	if err := alerting.CheckSupported(packs); err != nil {
		return nil, err
	}
	slices.SortStableFunc(events, func(a, b *cityhubv1.Event) int {
		return a.GetOccurredAt().AsTime().Compare(b.GetOccurredAt().AsTime())
	})
	e, err := engine.New(packs, engine.Options{})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	store := alertstate.NewMemory(alertstate.Options{})
	r := &replayer{proc: alerting.New(e, store), store: store, last: map[string]Change{}}
	if silences != nil {
		r.proc.SetSilences(silences)
	}
	// A silence starting or ending mutes or unmutes alerts at that moment.
	for _, sl := range silences {
		r.boundaries = append(r.boundaries, sl.Starts.UTC(), sl.Ends.UTC())
	}
	for _, p := range packs {
		for _, sl := range p.Silences {
			r.boundaries = append(r.boundaries, sl.Starts.UTC(), sl.Ends.UTC())
		}
	}
	slices.SortFunc(r.boundaries, time.Time.Compare)
	for i := 0; i < len(events); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Events of one moment go in one batch, as a consumer would see them.
		t := events[i].GetOccurredAt().AsTime()
		j := i + 1
		for j < len(events) && events[j].GetOccurredAt().AsTime().Equal(t) {
			j++
		}
		if err := r.advance(ctx, t); err != nil {
			return nil, err
		}
		alerts, err := r.proc.Process(ctx, t, events[i:j])
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		r.record(t, alerts)
		i = j
	}
	if !end.IsZero() {
		if err := r.advance(ctx, end); err != nil {
			return nil, err
		}
	}
	return r.changes, nil
}

type replayer struct {
	proc    *alerting.Processor
	store   *alertstate.Memory
	last    map[string]Change
	changes []Change
	// boundaries are the moments silences start and end, in order; the
	// clock stops at each on its way.
	boundaries []time.Time
	now        time.Time
}

// advance moves the clock to t, stopping at every moment in between at
// which an alert is due to change by itself.
func (r *replayer) advance(ctx context.Context, t time.Time) error {
	for {
		next, ok := r.nextDue(t)
		if !ok {
			break
		}
		if next.Before(r.now) {
			// Overdue: the clock never runs backwards.
			next = r.now
		}
		alerts, err := r.proc.Sweep(ctx, next)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		r.record(next, alerts)
		stuck := len(alerts) == 0 && next.Equal(r.now)
		r.now = next
		if stuck {
			// Something is still due at a moment already swept, and the
			// sweep changed nothing: move on to t rather than loop.
			break
		}
	}
	alerts, err := r.proc.Sweep(ctx, t)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	r.record(t, alerts)
	r.now = t
	return nil
}

// nextDue returns the earliest moment not after t at which an alert is
// due to change: a silence starts or ends, a pending alert fires, a quiet
// one resolves.
func (r *replayer) nextDue(t time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, b := range r.boundaries {
		if b.After(r.now) && !b.After(t) {
			best, found = b, true
			break
		}
	}
	if at, ok := r.store.NextDue(t); ok && (!found || at.Before(best)) {
		best, found = at, true
	}
	return best, found
}

// record notes the alerts whose state or severity differ from what was
// last seen of them.
func (r *replayer) record(at time.Time, alerts []*cityhubv1.Alert) {
	for _, a := range alerts {
		c := Change{
			At: at.UTC(), Rule: a.GetRule(), Labels: a.GetLabels(), State: a.GetState().Name(),
			Severity: a.GetSeverity().Name(), Fingerprint: a.GetId(), Title: a.GetTitle(), SilencedBy: a.GetSilencedBy(),
		}
		prev, ok := r.last[c.Fingerprint]
		if c.Rule == "" && ok {
			// Sweeping an alert that is gone returns its id alone.
			c.Rule, c.Labels, c.Severity, c.Title = prev.Rule, prev.Labels, prev.Severity, prev.Title
		}
		if ok && prev.State == c.State && prev.Severity == c.Severity && slices.Equal(prev.SilencedBy, c.SilencedBy) {
			continue
		}
		if !ok && c.State == "resolved" {
			continue
		}
		r.last[c.Fingerprint] = c
		r.changes = append(r.changes, c)
	}
}

// Episode is one firing of one alert: from the moment it fired to the
// moment it resolved (zero while it still fires at the end of the replay).
// Severity is the highest it reached.
type Episode struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Start       time.Time         `json:"start"`
	End         time.Time         `json:"end,omitzero"`
	Severity    string            `json:"severity"`
	Title       string            `json:"title,omitempty"`
}

// Episodes groups changes into firing episodes, ordered by start.
func Episodes(changes []Change) []Episode {
	open := map[string]*Episode{}
	var out []*Episode
	for _, c := range changes {
		ep := open[c.Fingerprint]
		switch c.State {
		case "firing":
			if ep == nil {
				ep = &Episode{Fingerprint: c.Fingerprint, Rule: c.Rule, Labels: c.Labels, Start: c.At, Severity: c.Severity, Title: c.Title}
				open[c.Fingerprint] = ep
				out = append(out, ep)
			} else if severityRank(c.Severity) > severityRank(ep.Severity) {
				ep.Severity = c.Severity
			}
		case "resolved":
			if ep != nil {
				ep.End = c.At
				delete(open, c.Fingerprint)
			}
		}
	}
	eps := make([]Episode, len(out))
	for i, e := range out {
		eps[i] = *e
	}
	slices.SortStableFunc(eps, func(a, b Episode) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	return eps
}

func severityRank(s string) int {
	sev, err := cityhubv1.ParseSeverity(s)
	if err != nil {
		return 0
	}
	return int(sev)
}

// DiffKind says how an alert episode differs between baseline and packs.
type DiffKind string

const (
	// Added: the new packs fire an alert the baseline does not.
	Added DiffKind = "added"
	// Removed: the baseline fires an alert the new packs do not.
	Removed DiffKind = "removed"
	// Changed: both fire it, at overlapping times, but with a different
	// highest severity or a different start.
	Changed DiffKind = "changed"
)

// DiffEntry is one difference. For Changed, Baseline is the baseline's
// episode and Episode the new packs'; for Removed, Episode is the
// baseline's.
type DiffEntry struct {
	Kind     DiffKind `json:"kind"`
	Episode  Episode  `json:"episode"`
	Baseline *Episode `json:"baseline,omitempty"`
}

// Diff compares the episodes of a baseline replay with those of a new one.
// Episodes of one alert (one fingerprint) are paired when their times
// overlap; an unpaired new episode is Added, an unpaired baseline one
// Removed, and a pair whose severity or start differ is Changed. Entries
// are ordered by time.
func Diff(baseline, current []Episode) []DiffEntry {
	byFP := func(eps []Episode) map[string][]Episode {
		m := map[string][]Episode{}
		for _, e := range eps {
			m[e.Fingerprint] = append(m[e.Fingerprint], e)
		}
		return m
	}
	old, cur := byFP(baseline), byFP(current)
	fps := slices.Sorted(maps.Keys(cur))
	for fp := range old {
		if _, ok := cur[fp]; !ok {
			fps = append(fps, fp)
		}
	}
	var out []DiffEntry
	for _, fp := range fps {
		used := make([]bool, len(old[fp]))
		for _, n := range cur[fp] {
			paired := -1
			for i, o := range old[fp] {
				if !used[i] && overlap(o, n) {
					paired = i
					break
				}
			}
			if paired < 0 {
				out = append(out, DiffEntry{Kind: Added, Episode: n})
				continue
			}
			used[paired] = true
			o := old[fp][paired]
			if o.Severity != n.Severity || !o.Start.Equal(n.Start) {
				out = append(out, DiffEntry{Kind: Changed, Episode: n, Baseline: &o})
			}
		}
		for i, o := range old[fp] {
			if !used[i] {
				out = append(out, DiffEntry{Kind: Removed, Episode: o})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b DiffEntry) int {
		return cmp.Or(a.Episode.Start.Compare(b.Episode.Start), cmp.Compare(a.Episode.Rule, b.Episode.Rule), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// overlap reports whether two episodes share a moment; an episode with no
// end lasts to the end of the replay.
func overlap(a, b Episode) bool {
	endsAfter := func(e Episode, t time.Time) bool { return e.End.IsZero() || e.End.After(t) }
	return endsAfter(a, b.Start) && endsAfter(b, a.Start) || a.Start.Equal(b.Start)
}
