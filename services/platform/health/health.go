// Package health serves /healthz (the process is alive) and /readyz (the
// process can do its work: every registered check passes). Neither needs a
// token, so to anyone they say only ok or unavailable; which check failed,
// and why, goes only to a caller the service trusts with it (see Routes).
package health

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/cityhub/cityhub/services/platform/httperr"
)

// Check reports whether a dependency is usable.
type Check func(ctx context.Context) error

// Checker holds readiness checks. It is safe for concurrent use.
type Checker struct {
	mu     sync.Mutex
	checks map[string]Check
}

// New returns a Checker with no checks.
func New() *Checker { return &Checker{checks: make(map[string]Check)} }

// Add registers a named readiness check.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// Routes registers GET /healthz and GET /readyz on mux. The failed checks
// and their errors, which may name internal addresses, are told only to
// requests for which details reports true (nil: to none).
func (c *Checker) Routes(mux *http.ServeMux, details func(*http.Request) bool) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httperr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		c.ready(w, r, details != nil && details(r))
	})
}

func (c *Checker) ready(w http.ResponseWriter, r *http.Request, details bool) {
	c.mu.Lock()
	names := make([]string, 0, len(c.checks))
	for n := range c.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(c.checks))
	for n, ch := range c.checks {
		checks[n] = ch
	}
	c.mu.Unlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status, failed := http.StatusOK, map[string]string{}
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			status = http.StatusServiceUnavailable
			failed[n] = err.Error()
		}
	}
	if status != http.StatusOK {
		body := map[string]any{"status": "unavailable"}
		if details {
			body["failed"] = failed
		}
		httperr.WriteJSON(w, status, body)
		return
	}
	httperr.WriteJSON(w, status, map[string]string{"status": "ok"})
}
