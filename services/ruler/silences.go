package ruler

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cityhub/cityhub/services/ruler/rulepack"
	"github.com/cityhub/cityhub/services/ruler/silence"
)

// silenceRefresh is how often a ruler asks Redis whether the silences set
// at run time changed: the longest a new silence waits before it mutes
// the alerts that fire.
const silenceRefresh = time.Second

// silencing is the ruler's part in the silences set at run time: the API
// (for the hub's mux) and what mutes alerts now.
type silencing struct {
	store *silence.Store
	api   *silence.Service
	// changed is the change count current is as of; both are guarded by
	// the Ruler's mu.
	changed int64
	current []*rulepack.Silence
}

func (r *Ruler) initSilences() error {
	r.silences.store = silence.NewStore(r.opts.Redis)
	api, err := silence.New(silence.Options{
		Store: r.silences.store, Writer: r.opts.Writer, Topic: r.opts.Topics.Silences,
		Known:    func() silence.Known { return silence.KnownOf(r.currentPacks(), r.opts.Catalog) },
		Packs:    r.currentPacks,
		Verifier: r.opts.Verifier, Now: r.opts.Now, Logger: r.opts.Logger, Registerer: r.opts.Registerer,
		Changed: func(ctx context.Context) {
			// Failing here leaves the change to the refresh loop.
			if changed, err := r.refreshSilences(ctx); err == nil && changed {
				_ = r.sweep(ctx)
			}
		},
	})
	if err != nil {
		return err
	}
	r.silences.api = api
	return nil
}

// silenceRoutes registers the silences API.
func (r *Ruler) silenceRoutes(mux *http.ServeMux) { r.silences.api.Routes(mux) }

// refreshSilences reads the silences again when they changed, and hands
// those not expired to the processor. It reports whether they changed.
func (r *Ruler) refreshSilences(ctx context.Context) (bool, error) {
	n, err := r.silences.store.Changed(ctx)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	same := n == r.silences.changed && r.silences.current != nil
	r.mu.Unlock()
	if same {
		return false, nil
	}
	all, n, err := r.silences.store.All(ctx)
	if err != nil {
		return false, err
	}
	now := r.opts.Now()
	list := []*rulepack.Silence{}
	for _, s := range all {
		if silence.State(s, now) != "expired" {
			list = append(list, silence.ToPack(s))
		}
	}
	r.mu.Lock()
	r.silences.changed, r.silences.current = n, list
	r.proc.SetSilences(list)
	r.mu.Unlock()
	return true, nil
}

// followSilences refreshes the silences every silenceRefresh until ctx
// ends; when they changed, a sweep marks the open alerts anew at once
// rather than at the next sweep.
func (r *Ruler) followSilences(ctx context.Context) {
	t := time.NewTicker(silenceRefresh)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.refreshSilences(ctx)
		if err == nil && changed {
			err = r.sweep(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.metrics.failures.WithLabelValues("silences").Inc()
		}
		switch {
		case err != nil && !failing:
			r.log.Warn("reading the silences failed; retrying every second", "err", err)
		case err == nil && failing:
			r.log.Info("reading the silences works again")
		}
		failing = err != nil
	}
}

// rebuildSilences restores the silences in Redis from their record.
func (r *Ruler) rebuildSilences(ctx context.Context) (int, error) {
	n, err := silence.Rebuild(ctx, r.opts.Brokers, r.opts.Topics.Silences, r.silences.store)
	if err != nil {
		return n, fmt.Errorf("ruler: %w", err)
	}
	return n, nil
}
