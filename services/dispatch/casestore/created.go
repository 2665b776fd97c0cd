package casestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// scanPage is how many cases EachCreated reads per round trip: their ids
// come in one ZRANGE and their bodies and histories in one pipeline of two
// commands per case.
const scanPage = 256

// CountCreated returns how many cases of districts were created in
// [from, to), in one round trip of ZCOUNTs over the districts' indexes. It
// is cheap (logarithmic in each index), so callers use it to refuse a range
// that would be too costly to read.
func (s *Store) CountCreated(ctx context.Context, districts []string, from, to time.Time) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, 0, len(districts))
	lo, hi := msBound(from, false), msBound(to, true)
	for _, d := range districts {
		if ValidDistrict(d) {
			cmds = append(cmds, pipe.ZCount(ctx, indexAll(d), lo, hi))
		}
	}
	if len(cmds) == 0 {
		return 0, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("count cases: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// EachCreated calls fn with every case of district created in [from, to)
// and its history (oldest entry first), in creation order. A case that
// vanished between reading the index and reading it is skipped. An error
// from fn stops the walk and is returned as it is.
//
// It costs one round trip per scanPage cases and holds only one page in
// memory: the walk continues from the last score it read rather than by
// offset, so a long range stays linear.
func (s *Store) EachCreated(ctx context.Context, district string, from, to time.Time, fn func(*cityhubv1.Case, []*cityhubv1.AuditEntry) error) error {
	if !ValidDistrict(district) {
		return nil
	}
	lo, hi := msBound(from, false), msBound(to, true)
	var skip int64 // entries at score lo already handed on
	for {
		zs, err := s.rdb.ZRangeByScoreWithScores(ctx, indexAll(district), &redis.ZRangeBy{
			Min: lo, Max: hi, Offset: skip, Count: scanPage,
		}).Result()
		if err != nil {
			return fmt.Errorf("cases of %s: %w", district, err)
		}
		if len(zs) == 0 {
			return nil
		}
		if err := s.eachOf(ctx, district, zs, fn); err != nil {
			return err
		}
		if len(zs) < scanPage {
			return nil
		}
		last := zs[len(zs)-1].Score
		same := int64(0)
		for _, z := range zs {
			if z.Score == last {
				same++
			}
		}
		next := strconv.FormatInt(int64(last), 10)
		if next == lo {
			skip += same
		} else {
			lo, skip = next, same
		}
	}
}

// eachOf reads the cases and histories of one page in one pipeline.
func (s *Store) eachOf(ctx context.Context, district string, zs []redis.Z, fn func(*cityhubv1.Case, []*cityhubv1.AuditEntry) error) error {
	pipe := s.rdb.Pipeline()
	bodies := make([]*redis.StringCmd, len(zs))
	hists := make([]*redis.StringSliceCmd, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		bodies[i] = pipe.HGet(ctx, caseKey(district, id), "pb")
		hists[i] = pipe.ZRange(ctx, historyKey(district, id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read cases of %s: %w", district, err)
	}
	for i := range zs {
		b, err := bodies[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read case %v: %w", zs[i].Member, err)
		}
		c := new(cityhubv1.Case)
		if err := proto.Unmarshal(b, c); err != nil {
			return fmt.Errorf("decode case %v: %w", zs[i].Member, err)
		}
		hist := make([]*cityhubv1.AuditEntry, 0, len(hists[i].Val()))
		for _, raw := range hists[i].Val() {
			e := new(cityhubv1.AuditEntry)
			if err := proto.Unmarshal([]byte(raw), e); err != nil {
				return fmt.Errorf("decode history of %s: %w", c.GetId(), err)
			}
			hist = append(hist, e)
		}
		if err := fn(c, hist); err != nil {
			return err
		}
	}
	return nil
}

// msBound renders t as an index score bound: inclusive for a range's start,
// exclusive for its end.
func msBound(t time.Time, exclusive bool) string {
	s := strconv.FormatInt(t.UnixMilli(), 10)
	if exclusive {
		return "(" + s
	}
	return s
}
