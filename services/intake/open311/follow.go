package open311

import (
	"context"
	"errors"
	"github.com/cityhub/cityhub/services/platform/auth"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// followers is how many Cases.Follow calls a list makes at once.
	followers = 8
	// scanPage and maxScan bound the requests a status filter looks at:
	// it reads them a page at a time until MaxResults match, the window
	// is exhausted, or maxScan were looked at.
	scanPage = 250
	maxScan  = 10_000
)

// list answers GET requests: by service_request_id (which overrides every
// other argument), or by time window, service_code and status.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, _ string, f format) int {
	ctx := r.Context()
	q := r.URL.Query()
	// Anyone holding a request's id may follow it (requests/{id}: the id is
	// unguessable); a list shows everyone's reports, their words and
	// places, and wants a cityhub token — in the Authorization header, so
	// that it never sits in a URL or an access log.
	if !h.opts.Verifier.Allows(r, auth.RoleCommander, auth.RoleDispatcher, auth.RoleDepartment, auth.RoleViewer, auth.RoleSource) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cityhub"`)
		return h.fail(w, f, refuse(http.StatusUnauthorized, problem{"api_key", "listing requests needs a cityhub token as Authorization: Bearer; follow one request at " + Prefix + "requests/{id}"}))
	}
	if ids := values(q, "service_request_id"); len(ids) > 0 {
		if len(ids) > MaxResults {
			return h.fail(w, f, refuse(http.StatusBadRequest, problemf("service_request_id", "%d ids, at most %d", len(ids), MaxResults)))
		}
		recs, err := h.opts.Requests.Get(ctx, ids...)
		if err != nil {
			return h.fail(w, f, h.unavailable("the request store", err))
		}
		return h.answer(ctx, w, f, recs, nil)
	}
	query, keep, probs := h.parseQuery(q)
	if len(probs) > 0 {
		return h.fail(w, f, refuse(http.StatusBadRequest, probs...))
	}
	if keep == nil {
		query.Limit = MaxResults
		recs, err := h.opts.Requests.List(ctx, query)
		if err != nil {
			return h.fail(w, f, h.unavailable("the request store", err))
		}
		return h.answer(ctx, w, f, recs, nil)
	}
	recs, sts, rf := h.scan(ctx, query, keep)
	if rf != nil {
		return h.fail(w, f, rf)
	}
	return h.answer(ctx, w, f, recs, sts)
}

// one answers GET requests/ID.
func (h *Handler) one(w http.ResponseWriter, r *http.Request, id string, f format) int {
	recs, err := h.opts.Requests.Get(r.Context(), id)
	if err != nil {
		return h.fail(w, f, h.unavailable("the request store", err))
	}
	if len(recs) == 0 {
		return h.fail(w, f, refuse(http.StatusNotFound, problemf("service_request_id", "%q not found", clip(id))))
	}
	return h.answer(r.Context(), w, f, recs, nil)
}

// answer sends recs with the status of their cases (followed now when sts
// is nil).
func (h *Handler) answer(ctx context.Context, w http.ResponseWriter, f format, recs []Request, sts []Status) int {
	if sts == nil {
		var err error
		if sts, err = h.follow(ctx, recs); err != nil {
			return h.fail(w, f, h.unavailable("the case store", err))
		}
	}
	doc := requestList{Requests: make([]requestDoc, len(recs))}
	for i, rec := range recs {
		doc.Requests[i] = h.requestDoc(rec, sts[i])
	}
	return write(w, f, http.StatusOK, doc)
}

// parseQuery reads the arguments of GET requests: the window (the last
// Window when neither end is given, Window from the end given, never
// longer), service_code and status, both comma-separated. keep is nil when
// every status is wanted.
func (h *Handler) parseQuery(q url.Values) (Query, func(Status) bool, []problem) {
	var probs []problem
	start, ok1 := h.parseTime(&probs, "start_date", q.Get("start_date"))
	end, ok2 := h.parseTime(&probs, "end_date", q.Get("end_date"))
	switch {
	case !ok1 || !ok2:
	case start.IsZero() && end.IsZero():
		end = h.opts.Now()
		start = end.Add(-Window)
	case start.IsZero():
		start = end.Add(-Window)
	case end.IsZero():
		end = start.Add(Window)
	case end.Before(start):
		probs = append(probs, problem{"end_date", "before start_date"})
	case end.Sub(start) > Window:
		probs = append(probs, problem{"end_date", "start_date and end_date may not span more than 90 days"})
	}
	codes := values(q, "service_code")
	for _, c := range codes {
		if !codeRE.MatchString(c) {
			probs = append(probs, problemf("service_code", "%q is not a service code", clip(c)))
		}
	}
	var open, closed bool
	for _, s := range values(q, "status") {
		switch s {
		case "open":
			open = true
		case "closed":
			closed = true
		default:
			probs = append(probs, problemf("status", "%q: want open or closed", clip(s)))
		}
	}
	var keep func(Status) bool
	if open != closed {
		keep = func(st Status) bool { return st.Open == open }
	}
	return Query{From: start, To: end, ServiceCodes: codes}, keep, probs
}

// parseTime reads a w3c datetime with its offset, or a date (midnight in
// the city's time zone); empty is the zero time.
func (h *Handler) parseTime(probs *[]problem, field, s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, h.zone); err == nil {
		return t, true
	}
	*probs = append(*probs, problemf(field, "%q: want a w3c datetime with its offset, such as 2026-07-01T00:00:00+08:00", clip(s)))
	return time.Time{}, false
}

// scan pages through the window, following each request, until MaxResults
// are kept.
func (h *Handler) scan(ctx context.Context, q Query, keep func(Status) bool) ([]Request, []Status, *refusal) {
	var recs []Request
	var sts []Status
	// Reports arriving meanwhile shift the pages: one may come twice.
	seen := map[string]bool{}
	for q.Offset = 0; q.Offset < maxScan && len(recs) < MaxResults; q.Offset += scanPage {
		q.Limit = scanPage
		page, err := h.opts.Requests.List(ctx, q)
		if err != nil {
			return nil, nil, h.unavailable("the request store", err)
		}
		pst, err := h.follow(ctx, page)
		if err != nil {
			return nil, nil, h.unavailable("the case store", err)
		}
		for i := range page {
			if keep(pst[i]) && len(recs) < MaxResults && !seen[page[i].ID] {
				seen[page[i].ID] = true
				recs, sts = append(recs, page[i]), append(sts, pst[i])
			}
		}
		if len(page) < scanPage {
			break
		}
	}
	return recs, sts, nil
}

// follow asks Cases for the status of each request, a few at a time. A
// request no case holds is open.
func (h *Handler) follow(ctx context.Context, recs []Request) ([]Status, error) {
	sts := make([]Status, len(recs))
	errs := make([]error, len(recs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(followers, len(recs)) {
		wg.Go(func() {
			for i := range next {
				st, found, err := h.opts.Cases.Follow(ctx, recs[i].District, recs[i].Source, recs[i].ID)
				if !found {
					st = Status{Open: true}
				}
				if st.Updated.IsZero() {
					st.Updated = recs[i].Requested
				}
				sts[i], errs[i] = st, err
			}
		})
	}
	for i := range recs {
		next <- i
	}
	close(next)
	wg.Wait()
	return sts, errors.Join(errs...)
}

// requestDoc is rec as GET requests shows it.
func (h *Handler) requestDoc(rec Request, st Status) requestDoc {
	status := "closed"
	if st.Open {
		status = "open"
	}
	doc := requestDoc{
		ID:                rec.ID,
		Status:            status,
		StatusNotes:       text(st.Notes),
		ServiceName:       text(rec.ServiceName),
		ServiceCode:       rec.ServiceCode,
		Description:       text(rec.Description),
		AgencyResponsible: text(st.Agency),
		ServiceNotice:     text(rec.Notice),
		Requested:         h.datetime(rec.Requested),
		Updated:           text(h.datetime(st.Updated)),
		Address:           text(rec.Address),
		Lat:               rec.Lat,
		Long:              rec.Long,
		MediaURL:          text(rec.MediaURL),
	}
	if !st.Expected.IsZero() {
		doc.Expected = text(h.datetime(st.Expected))
	}
	return doc
}

// datetime writes t in the w3c form, in the city's time zone.
func (h *Handler) datetime(t time.Time) string {
	return t.In(h.zone).Format(time.RFC3339)
}

// values returns the comma-separated values of a query argument, which may
// also be given several times, each once, in order. It stops after
// MaxResults+1, which is more than any argument may have.
func values(q url.Values, name string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range q[name] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" || seen[s] {
				continue
			}
			if len(out) > MaxResults {
				return out
			}
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
