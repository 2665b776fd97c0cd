package alertstate

import (
	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Key layout. An alert's keys carry its fingerprint as the hash tag; the
// indexes lie outside every alert's slot.
const (
	keyPrefix = "cityhub:alert:"
	// FiringKey indexes firing alerts by fingerprint, scored by start time
	// in Unix milliseconds.
	FiringKey = "cityhub:alerts:firing"
	// ResolveKey indexes firing and pending alerts that resolve by
	// themselves, scored by when they do, in Unix milliseconds.
	ResolveKey = "cityhub:alerts:resolve_at"
	// PendingKey indexes pending alerts, scored by when they fire if their
	// condition still holds, in Unix milliseconds.
	PendingKey = "cityhub:alerts:fire_at"
	// ruleKeyPrefix + rule name indexes the open (pending or firing) alerts
	// of one rule, scored by start time: inhibition looks alerts up by rule.
	ruleKeyPrefix = "cityhub:alerts:rule:"
)

// RuleKey returns the key indexing the open alerts of rule ("pack/id").
func RuleKey(rule string) string { return ruleKeyPrefix + rule }

// keys returns the keys of the alert fp: its hash, its event id list and
// its count window, all with fp as the hash tag.
func keys(fp string) []string {
	base := keyPrefix + "{" + fp + "}"
	return []string{base, base + ":events", base + ":window"}
}

// indexer writes the indexes: sorted sets of alert ids.
type indexer interface {
	zadd(key string, score int64, member string)
	zrem(key, member string)
}

// index brings the indexes in line with results. It runs for unchanged
// results too, so an index update lost to a crash is made good when the
// batch is redelivered.
func index(results []Result, w indexer) {
	for _, r := range results {
		a := r.Alert
		if a == nil {
			continue
		}
		id, starts := a.GetId(), a.GetStartsAt().AsTime().UnixMilli()
		state := a.GetState()
		open := state == cityhubv1.AlertState_ALERT_STATE_FIRING || state == cityhubv1.AlertState_ALERT_STATE_PENDING
		if r.Changed && !r.redelivered && len(r.Earlier) == 0 && r.Was == state && open {
			// The same episode in the same state: only the deadline
			// moved. The other indexes hold the alert already, or a
			// lost index update is made good when its events come
			// again, as redelivered ones, which writes every index.
			if r.resolveAt > 0 {
				w.zadd(ResolveKey, r.resolveAt, id)
			} else {
				w.zrem(ResolveKey, id)
			}
			continue
		}
		if state == cityhubv1.AlertState_ALERT_STATE_FIRING {
			w.zadd(FiringKey, starts, id)
		} else {
			w.zrem(FiringKey, id)
		}
		if state == cityhubv1.AlertState_ALERT_STATE_PENDING {
			w.zadd(PendingKey, a.GetFiresAt().AsTime().UnixMilli(), id)
		} else {
			w.zrem(PendingKey, id)
		}
		if open && r.resolveAt > 0 {
			w.zadd(ResolveKey, r.resolveAt, id)
		} else {
			w.zrem(ResolveKey, id)
		}
		if rule := a.GetRule(); rule != "" {
			if open {
				w.zadd(RuleKey(rule), starts, id)
			} else {
				w.zrem(RuleKey(rule), id)
			}
		}
	}
}

// swept turns the replies of a sweep over the alerts ids into the results
// to index and the alerts the sweep changed.
func swept(ids []string, replies []reply) ([]Result, []*cityhubv1.Alert, error) {
	results := make([]Result, len(ids))
	var changed []*cityhubv1.Alert
	for i := range replies {
		r, err := replies[i].result(nil)
		if err != nil {
			return nil, nil, errAlert(ids[i], err)
		}
		if r.Alert == nil {
			// Gone (expired or deleted): drop it from the indexes.
			r.Alert = &cityhubv1.Alert{Id: ids[i], State: cityhubv1.AlertState_ALERT_STATE_RESOLVED}
		}
		results[i] = r
		if r.Changed {
			changed = append(changed, r.Alert)
		}
	}
	return results, changed, nil
}
