package ruler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/httperr"
	"github.com/cityhub/cityhub/services/ruler/alerting"
	"github.com/cityhub/cityhub/services/ruler/engine"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// DefaultPollInterval is how often the packs directory is checked for
// changes when Options.PollInterval is zero.
const DefaultPollInterval = 5 * time.Second

// reloadState is what the ruler keeps to reload its packs.
type reloadState struct {
	// mu serialises reloads; the swap itself happens under Ruler.mu.
	mu sync.Mutex
	// hash is the content hash of the packs directory at the last
	// attempt, successful or not: polling retries only after a change.
	hash    string
	metrics *reloadMetrics
}

type reloadMetrics struct {
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	successful  prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	f := promauto.With(reg)
	return &reloadMetrics{
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_ruler_reloads_total",
			Help: "Reloads of the rule packs, by result (success, failure).",
		}, []string{"result"}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_ruler_last_reload_success_timestamp_seconds",
			Help: "When the rule packs running now were loaded, in Unix seconds.",
		}),
		successful: f.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_ruler_last_reload_successful",
			Help: "Whether the last reload of the rule packs succeeded (1) or was refused (0).",
		}),
	}
}

// initReload records the packs New loaded as the first successful load.
func (r *Ruler) initReload(hash string) {
	m := newReloadMetrics(r.opts.Registerer)
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastSuccess.Set(float64(r.opts.Now().Unix()))
	m.successful.Set(1)
	if r.opts.PollInterval == 0 {
		r.opts.PollInterval = DefaultPollInterval
	}
	r.reload.hash = hash
	r.reload.metrics = m
}

// ReloadResult describes a successful reload.
type ReloadResult struct {
	Packs int `json:"packs"`
	Rules int `json:"rules"`
}

// Reload loads every pack of the packs directory again and, when all of
// them load, swaps them in: the batch being evaluated finishes with the
// old rules and the next one sees the new. When any pack has a problem
// nothing changes, and the error (a rulepack.Errors, when the packs are
// at fault) lists every problem at once.
//
// Alerts are identified by rule name and labels, so the alerts of rules a
// reload leaves in place carry on as they were.
func (r *Ruler) Reload(ctx context.Context) (ReloadResult, error) {
	r.reload.mu.Lock()
	defer r.reload.mu.Unlock()
	// Hash before loading: a change made while loading then shows up as
	// a difference at the next poll, never as one missed.
	hash := hashPacks(r.opts.PacksDir)
	r.reload.hash = hash
	res, err := r.load(ctx)
	m := r.reload.metrics
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		m.successful.Set(0)
		r.log.Error("rule packs refused; the running packs keep running", "dir", r.opts.PacksDir, "problems", problems(err))
		return ReloadResult{}, err
	}
	m.reloads.WithLabelValues("success").Inc()
	m.successful.Set(1)
	m.lastSuccess.Set(float64(r.opts.Now().Unix()))
	r.log.Info("rule packs reloaded", "dir", r.opts.PacksDir, "packs", res.Packs, "rules", res.Rules)
	return res, nil
}

func (r *Ruler) load(ctx context.Context) (ReloadResult, error) {
	if err := ctx.Err(); err != nil {
		return ReloadResult{}, err
	}
	packs, err := LoadPacks(r.opts.PacksDir, r.opts.Catalog)
	if err != nil {
		return ReloadResult{}, err
	}
	e, err := engine.New(packs, engine.Options{Registerer: r.opts.Registerer})
	if err != nil {
		return ReloadResult{}, err
	}
	proc := alerting.New(e, r.store)
	r.mu.Lock()
	if r.silences.current != nil {
		proc.SetSilences(r.silences.current)
	}
	r.packs, r.engine, r.proc = packs, e, proc
	r.mu.Unlock()
	n := len(e.Rules())
	r.metrics.rules.Set(float64(n))
	return ReloadResult{Packs: len(packs), Rules: n}, nil
}

// currentPacks returns the packs running now.
func (r *Ruler) currentPacks() []*rulepack.Pack {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packs
}

// problems returns every problem of a refused load, one line each.
func problems(err error) []string {
	var pe rulepack.Errors
	if errors.As(err, &pe) {
		out := make([]string, len(pe))
		for i, e := range pe {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

// watch reloads the packs when the files of the packs directory change
// (checked every PollInterval) and whenever opts.Reload delivers a signal,
// until ctx ends.
func (r *Ruler) watch(ctx context.Context) {
	var tick <-chan time.Time
	if r.opts.PollInterval > 0 {
		t := time.NewTicker(r.opts.PollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.opts.Reload:
			r.Reload(ctx) // logged and counted; the old packs keep running on failure
		case <-tick:
			r.reloadIfChanged(ctx)
		}
	}
}

// reloadIfChanged reloads when the packs directory differs from what the
// last reload saw.
func (r *Ruler) reloadIfChanged(ctx context.Context) {
	r.reload.mu.Lock()
	changed := hashPacks(r.opts.PacksDir) != r.reload.hash
	r.reload.mu.Unlock()
	if changed {
		r.Reload(ctx)
	}
}

// hashPacks returns a hash of the names and contents of the files
// rulepack.LoadDir reads from dir. A file that cannot be read contributes
// its error, so that fixing it counts as a change.
func hashPacks(dir string) string {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, name := range files {
		fmt.Fprintf(h, "%s\x00", filepath.Base(name))
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(h, "error %v\x00", err)
			continue
		}
		n, err := io.Copy(h, io.LimitReader(f, rulepack.MaxFileBytes+1))
		f.Close()
		fmt.Fprintf(h, "\x00%d %v\x00", n, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Routes registers POST /-/reload, for commanders: it reloads the packs
// and answers 200 with what runs now, or 422 with every problem of the
// packs, which were then refused while the running ones keep running. It
// registers the silences API (package silence) too.
func (r *Ruler) Routes(mux *http.ServeMux) {
	mux.Handle("POST /-/reload", r.opts.Verifier.Require(auth.RoleCommander)(http.HandlerFunc(r.postReload)))
	r.silenceRoutes(mux)
}

// ReloadProblem is one problem of a refused reload, as the reload endpoint
// reports it.
type ReloadProblem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message"`
	// Error is the whole problem as one line, as the log shows it.
	Error string `json:"error"`
}

func (r *Ruler) postReload(w http.ResponseWriter, req *http.Request) {
	res, err := r.Reload(req.Context())
	if err == nil {
		httperr.WriteJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			ReloadResult
		}{"success", res})
		return
	}
	var pe rulepack.Errors
	if !errors.As(err, &pe) {
		httperr.Write(w, http.StatusInternalServerError, "reload_failed", "the rule packs could not be reloaded; the running packs keep running: "+err.Error(), nil)
		return
	}
	details := make([]ReloadProblem, len(pe))
	for i, e := range pe {
		details[i] = ReloadProblem{File: e.File, Line: e.Pos.Line, Column: e.Pos.Column, Rule: e.Rule, Message: e.Err.Error(), Error: e.Error()}
	}
	httperr.Write(w, http.StatusUnprocessableEntity, "invalid_rule_packs",
		fmt.Sprintf("the rule packs were refused with %d problems; the running packs keep running", len(pe)), details)
}
