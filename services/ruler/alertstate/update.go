package alertstate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ErrNotFound means there is no alert with the given id.
var ErrNotFound = errors.New("alertstate: no such alert")

// Options configures a Store or a Memory.
type Options struct {
	// Client is the Redis a Store keeps its state in; a Memory takes none.
	Client redis.UniversalClient
	// MaxEventIDs bounds the event ids an alert keeps; 50 when zero.
	MaxEventIDs int
	// ResolvedTTL is how long a resolved alert is kept; 7 days when zero.
	ResolvedTTL time.Duration
}

func (o *Options) defaults() {
	if o.MaxEventIDs <= 0 {
		o.MaxEventIDs = 50
	}
	if o.ResolvedTTL <= 0 {
		o.ResolvedTTL = 7 * 24 * time.Hour
	}
}

// Op is what an Update does.
type Op int

const (
	// Fire records a matching event: the alert fires, or keeps firing with
	// one more event, or the event counts towards the alert's window.
	Fire Op = iota + 1
	// Resolve resolves the alert if it is firing or pending.
	Resolve
	// Mute sets what mutes an open alert: Alert.SilencedBy and
	// Alert.InhibitedBy. Only Id and those are read.
	Mute
)

// Update is one change asked of one alert.
type Update struct {
	Op Op
	// Alert describes the alert; for Fire every descriptive field (rule,
	// pack, severity, title, labels, location, explanation, dispatch,
	// silenced_by, inhibited_by, ...) is stored as given, while state,
	// version, event ids and count, previous severity and the times are
	// the store's. For Resolve only Id is read.
	Alert *cityhubv1.Alert
	// EventID and EventTime identify the matching event (Fire).
	EventID   string
	EventTime time.Time
	// AtLeast and Within ask for a count window (Fire): the alert fires
	// once AtLeast distinct events fall within Within. Zero: no window.
	AtLeast int
	Within  time.Duration
	// CountDistinct makes the window count distinct values of Distinct,
	// the event's value of the rule's count.distinct field, instead of
	// events; an event whose value is empty does not count.
	CountDistinct bool
	Distinct      string
	// For keeps a new alert pending this long before it fires (Fire).
	For time.Duration
	// ResolveAfter resolves the alert when no matching event came for this
	// long (Fire); zero: only a clear resolves it.
	ResolveAfter time.Duration

	// indexedAt is, for a Fire update Silent made, the moment of the wait
	// it was made from as the index held it (Unindex takes it off).
	indexedAt int64
}

// Result is the outcome of the updates of one alert.
type Result struct {
	// Alert is the alert as it is after the updates; nil when there is
	// none (a window that has not filled, or resolving an unknown alert).
	Alert *cityhubv1.Alert
	// Earlier holds the versions the updates left the alert in just
	// before they changed its state again, oldest first: a batch that
	// fires and resolves an alert yields its firing version here and its
	// resolved one as Alert, so that every state it passed through can be
	// published. Versions in between that kept the state are not kept.
	Earlier []*cityhubv1.Alert
	// Changed reports whether the updates changed the alert: false for
	// redelivered events or an alert that was already resolved.
	Changed bool
	// Was and WasSeverity are the alert's state and severity before the
	// updates; zero when it did not exist.
	Was         cityhubv1.AlertState
	WasSeverity cityhubv1.Severity

	resolveAt int64 // Unix ms; 0: none
	// redelivered: an update found its work done already (an event the
	// alert held came again, or a clear, sweep or mark changed nothing).
	redelivered bool
}

// group groups updates by alert, in the order of each alert's first
// update, keeping the order of each alert's updates.
func group(updates []Update) ([][]int, error) {
	var groups [][]int
	byID := make(map[string]int, len(updates))
	for i, u := range updates {
		id := u.Alert.GetId()
		if id == "" {
			return nil, fmt.Errorf("alertstate: update %d has no alert id", i)
		}
		if u.Op == Fire && strings.Contains(u.EventID, " ") {
			return nil, fmt.Errorf("alertstate: update %d: event id %q holds a space", i, u.EventID)
		}
		g, ok := byID[id]
		if !ok {
			g = len(groups)
			byID[id] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups, nil
}

// firedBy returns, for the updates idx of one alert, the Alert of the n-th
// (1-based): a reply names it instead of sending its body back.
func firedBy(updates []Update, idx []int) func(int) *cityhubv1.Alert {
	return func(n int) *cityhubv1.Alert {
		if n < 1 || n > len(idx) {
			return nil
		}
		return updates[idx[n-1]].Alert
	}
}

func errAlert(id string, err error) error {
	return fmt.Errorf("alertstate: alert %s: %w", id, err)
}
