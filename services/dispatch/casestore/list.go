package casestore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Limits of List.
const (
	// DefaultLimit is the page size when Filter.Limit is zero.
	DefaultLimit = 50
	// MaxLimit is the largest page List returns.
	MaxLimit = 500
)

// Filter selects the cases List returns. Conditions combine with AND.
type Filter struct {
	// Districts limits the cases to these districts; nil means every
	// district of the store, an empty non-nil slice means none.
	Districts []string
	// Status, when set, keeps only cases in this status.
	Status cityhubv1.CaseStatus
	// Open keeps only cases that still need work.
	Open bool
	// Department keeps only cases where this department leads or assists.
	Department string
	// Arbitration keeps only open cases flagged for arbitration.
	Arbitration bool
	// Limit is the page size: DefaultLimit when zero, at most MaxLimit.
	Limit int
	// Cursor continues a listing where the page that returned it ended.
	Cursor string
}

// Page is one page of a listing.
type Page struct {
	Cases []*cityhubv1.Case
	// NextCursor fetches the next page; empty on the last one. A page may
	// hold fewer cases than the limit and still have a next one, when the
	// filter skipped many cases.
	NextCursor string
}

// position is a place in the listing order: newest first by creation time,
// then by id descending.
type position struct {
	Score int64  `json:"s"`
	ID    string `json:"i"`
}

func (p position) before(q position) bool {
	return p.Score > q.Score || (p.Score == q.Score && p.ID > q.ID)
}

func encodeCursor(p position) string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (position, error) {
	var p position
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 512 {
		return p, ErrBadCursor
	}
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
		return p, ErrBadCursor
	}
	return p, nil
}

// List returns a page of the cases that match f, newest first. Cases created
// while a client pages through come before its cursor, so paging never
// repeats or skips a case that existed when it began.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var after *position
	if f.Cursor != "" {
		p, err := decodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		after = &p
	}
	districts := f.Districts
	if districts == nil {
		districts = s.districts
	}
	var its []*indexIter
	for _, d := range districts {
		if !ValidDistrict(d) {
			continue
		}
		its = append(its, &indexIter{key: f.indexKey(d), district: d, after: after, max: "+inf"})
		if after != nil {
			its[len(its)-1].max = strconv.FormatInt(after.Score, 10)
		}
	}

	batch := max(limit, 32)
	budget := max(20*limit, 2000) // cases read for one page at most
	var page Page
	var last position
	scanned := 0
	for {
		cands, err := next(ctx, s.rdb, its, batch)
		if err != nil {
			return Page{}, err
		}
		if len(cands) == 0 {
			return page, nil
		}
		cases, err := s.loadMixed(ctx, cands)
		if err != nil {
			return Page{}, err
		}
		for i, c := range cases {
			last = cands[i].pos
			scanned++
			if c != nil && f.match(c) {
				page.Cases = append(page.Cases, c)
				if len(page.Cases) == limit {
					page.NextCursor = encodeCursor(last)
					return page, nil
				}
			}
			if scanned >= budget {
				page.NextCursor = encodeCursor(last)
				return page, nil
			}
		}
	}
}

// indexKey picks the narrowest index of district that covers f.
func (f Filter) indexKey(d string) string {
	switch {
	case f.Arbitration:
		return indexArbitration(d)
	case f.Department != "" && f.Open:
		return indexDeptOpen(d, f.Department)
	case f.Department != "":
		return indexDept(d, f.Department)
	case f.Open:
		return indexOpen(d)
	case f.Status != cityhubv1.CaseStatus_CASE_STATUS_UNSPECIFIED:
		return indexStatus(d, f.Status)
	}
	return indexAll(d)
}

// match checks c itself: an index entry read a moment ago may be stale.
func (f Filter) match(c *cityhubv1.Case) bool {
	if f.Status != cityhubv1.CaseStatus_CASE_STATUS_UNSPECIFIED && c.GetStatus() != f.Status {
		return false
	}
	if f.Open && !c.GetStatus().Open() {
		return false
	}
	if f.Department != "" && !slices.Contains(departments(c), f.Department) {
		return false
	}
	if f.Arbitration && (!c.GetArbitration() || !c.GetStatus().Open()) {
		return false
	}
	return true
}

type candidate struct {
	district string
	pos      position
}

// next returns up to n index entries in listing order, merged across the
// iterators.
func next(ctx context.Context, rdb redis.UniversalClient, its []*indexIter, n int) ([]candidate, error) {
	var out []candidate
	for len(out) < n {
		var best *indexIter
		for _, it := range its {
			if err := it.fill(ctx, rdb, n); err != nil {
				return nil, err
			}
			if len(it.buf) > 0 && (best == nil || it.buf[0].before(best.buf[0])) {
				best = it
			}
		}
		if best == nil {
			break
		}
		out = append(out, candidate{best.district, best.buf[0]})
		best.buf = best.buf[1:]
	}
	return out, nil
}

// indexIter walks one index newest first, starting after a position.
type indexIter struct {
	key, district string
	after         *position
	// max is the score to read from (inclusive) and skip how many entries at
	// exactly that score were read already.
	max  string
	skip int64
	buf  []position
	done bool
}

func (it *indexIter) fill(ctx context.Context, rdb redis.UniversalClient, n int) error {
	for len(it.buf) == 0 && !it.done {
		zs, err := rdb.ZRevRangeByScoreWithScores(ctx, it.key, &redis.ZRangeBy{
			Max: it.max, Min: "-inf", Offset: it.skip, Count: int64(n),
		}).Result()
		if err != nil {
			return fmt.Errorf("list %s: %w", it.key, err)
		}
		if len(zs) < n {
			it.done = true
		}
		if len(zs) == 0 {
			return nil
		}
		lastScore := zs[len(zs)-1].Score
		same := int64(0)
		for _, z := range zs {
			id, _ := z.Member.(string)
			p := position{Score: int64(z.Score), ID: id}
			if z.Score == lastScore {
				same++
			}
			if it.after != nil && !it.after.before(p) {
				continue
			}
			it.buf = append(it.buf, p)
		}
		nextMax := strconv.FormatInt(int64(lastScore), 10)
		if nextMax == it.max {
			it.skip += same
		} else {
			it.max, it.skip = nextMax, same
		}
	}
	return nil
}

// loadMixed reads the cases of candidates from any districts, in order.
func (s *Store) loadMixed(ctx context.Context, cands []candidate) ([]*cityhubv1.Case, error) {
	out := make([]*cityhubv1.Case, len(cands))
	byDistrict := map[string][]int{}
	for i, c := range cands {
		byDistrict[c.district] = append(byDistrict[c.district], i)
	}
	for d, idx := range byDistrict {
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = cands[i].pos.ID
		}
		cases, err := s.load(ctx, d, ids)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = cases[j]
		}
	}
	return out, nil
}
