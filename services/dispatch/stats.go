package dispatch

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cityhub/cityhub/services/dispatch/cases"
	"github.com/cityhub/cityhub/services/platform/httperr"
)

// The body of GET /v1/stats, as the OpenAPI document names it.
type (
	// StatsResponse is the body of GET /v1/stats.
	StatsResponse = cases.Stats
	// Figures are the figures of a department or of every case counted.
	Figures = cases.Figures
	// DepartmentFigures are the figures of one department.
	DepartmentFigures = cases.DepartmentFigures
)

var statsParams = []string{"department", "district", "from", "to"}

// stats serves GET /v1/stats: the figures cases.Service.Stats computes,
// and what it costs, are documented there.
func (s *Service) stats(w http.ResponseWriter, r *http.Request) {
	req, err := parseStats(r.URL.RawQuery)
	if err != nil {
		writeParamError(w, err)
		return
	}
	resp, err := s.cases.Stats(r.Context(), principal(r), req)
	if err != nil {
		s.writeQueryError(w, err)
		return
	}
	httperr.WriteJSON(w, http.StatusOK, resp)
}

// parseStats decodes the query of GET /v1/stats; what it names, and the
// range, are checked by cases.Service.Stats.
func parseStats(rawQuery string) (cases.StatsRequest, error) {
	var req cases.StatsRequest
	q, err := parseQuery(rawQuery, statsParams)
	if err != nil {
		return req, err
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"to", &req.To}, {"from", &req.From}} {
		if v := q.Get(p.name); v != "" {
			if *p.dst, err = parseStatsTime(v); err != nil {
				return req, &paramError{p.name, err.Error()}
			}
		}
	}
	req.Department, req.District = q.Get("department"), q.Get("district")
	return req, nil
}

func parseStatsTime(v string) (time.Time, error) {
	if len(v) > 64 {
		return time.Time{}, errors.New("too long for a time")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2025-07-01T00:00:00+08:00, got %q", v)
	}
	return t.UTC(), nil
}
