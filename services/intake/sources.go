package intake

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// Per-source counts are kept by the minute, in Redis so that every intake
// replica adds to the same ones: cityhub:sources:{stats}:MINUTE is a hash
// of "SOURCE|VIA|a" (accepted) and "SOURCE|VIA|r" (rejected) counts, kept
// for sourceKeep. The one hash tag puts a minute on one node; a minute of
// a city's sources is a few hundred fields.
const (
	sourcesPrefix = "cityhub:sources:{stats}:"
	sourceKeep    = 2 * time.Hour
	// SourcesWindow is how far back GET /v1/sources looks.
	SourcesWindow = 15 * time.Minute
)

// sources records what each source sent, and serves the summary.
type sources struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// record adds counts (by source and way in: accepted, rejected) to the
// current minute. It is best effort: the events are on the log already.
func (s *sources) record(ctx context.Context, via string, accepted map[string]int, rejected map[string]int) error {
	if s.rdb == nil || len(accepted)+len(rejected) == 0 {
		return nil
	}
	key := sourcesPrefix + strconv.FormatInt(s.now().Unix()/60, 10)
	p := s.rdb.Pipeline()
	for src, n := range accepted {
		p.HIncrBy(ctx, key, src+"|"+via+"|a", int64(n))
	}
	for src, n := range rejected {
		p.HIncrBy(ctx, key, src+"|"+via+"|r", int64(n))
	}
	p.Expire(ctx, key, sourceKeep)
	_, err := p.Exec(ctx)
	return err
}

// SourceStats is what one source sent over the window of GET /v1/sources.
type SourceStats struct {
	Source string `json:"source"`
	// Via lists the ways its events came in (events, open311, mqtt, …).
	Via      []string `json:"via"`
	Accepted int64    `json:"accepted"`
	Rejected int64    `json:"rejected"`
	// PerMinute is its accepted events per minute over the window;
	// Recent what it sent in this minute and the one before: a source
	// with none is quiet.
	PerMinute float64 `json:"per_minute"`
	Recent    int64   `json:"recent"`
	// LastSeen is the start of the last minute it sent anything.
	LastSeen time.Time `json:"last_seen"`
}

// SourceList is the body of GET /v1/sources.
type SourceList struct {
	WindowMinutes int           `json:"window_minutes"`
	Items         []SourceStats `json:"items"`
}

// summary adds up the window's minutes, busiest source first.
func (s *sources) summary(ctx context.Context) (SourceList, error) {
	out := SourceList{WindowMinutes: int(SourcesWindow / time.Minute), Items: []SourceStats{}}
	if s.rdb == nil {
		return out, nil
	}
	now := s.now().Unix() / 60
	p := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, out.WindowMinutes)
	for i := range cmds {
		cmds[i] = p.HGetAll(ctx, sourcesPrefix+strconv.FormatInt(now-int64(i), 10))
	}
	if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
		return out, fmt.Errorf("read the sources' counts: %w", err)
	}
	by := map[string]*SourceStats{}
	for i, c := range cmds {
		minute := time.Unix((now-int64(i))*60, 0).UTC()
		for field, v := range c.Val() {
			parts := strings.Split(field, "|")
			n, err := strconv.ParseInt(v, 10, 64)
			if len(parts) != 3 || err != nil {
				continue
			}
			st := by[parts[0]]
			if st == nil {
				st = &SourceStats{Source: parts[0]}
				by[parts[0]] = st
			}
			if !slices.Contains(st.Via, parts[1]) {
				st.Via = append(st.Via, parts[1])
			}
			switch parts[2] {
			case "a":
				st.Accepted += n
				if i <= 1 {
					st.Recent += n
				}
			case "r":
				st.Rejected += n
			}
			if minute.After(st.LastSeen) {
				st.LastSeen = minute
			}
		}
	}
	for _, st := range by {
		slices.Sort(st.Via)
		st.PerMinute = float64(st.Accepted) / float64(out.WindowMinutes)
		out.Items = append(out.Items, *st)
	}
	slices.SortFunc(out.Items, func(a, b SourceStats) int {
		if a.Accepted != b.Accepted {
			return int(b.Accepted - a.Accepted)
		}
		return strings.Compare(a.Source, b.Source)
	})
	return out, nil
}

func (s *Service) getSources(w http.ResponseWriter, r *http.Request) {
	list, err := s.sources.summary(r.Context())
	if err != nil {
		s.log.Error("reading the sources' counts failed", "err", err)
		httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "the sources' counts cannot be read just now", nil)
		return
	}
	httperr.WriteJSON(w, http.StatusOK, list)
}

// routeSources registers GET /v1/sources: which sources are speaking, how
// much, and how much of it was refused — for the wall and the people who
// run the hub.
func (s *Service) routeSources(mux *http.ServeMux) {
	mux.Handle("GET /v1/sources", s.opts.Verifier.Require(auth.RoleCommander, auth.RoleDispatcher, auth.RoleViewer)(http.HandlerFunc(s.getSources)))
}
