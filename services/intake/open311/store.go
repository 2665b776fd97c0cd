package open311

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Request is what the hub keeps of a report it accepted: what the report
// said, never who made it.
type Request struct {
	// ID is the service_request_id, which is also the event's id.
	ID string `json:"id"`
	// Source is the event's source: the event is Source/ID.
	Source      string    `json:"source"`
	ServiceCode string    `json:"service_code"`
	ServiceName string    `json:"service_name"`
	Requested   time.Time `json:"requested"`
	Lat         *float64  `json:"lat,omitempty"`
	Long        *float64  `json:"long,omitempty"`
	Address     string    `json:"address,omitempty"`
	District    string    `json:"district"`
	Description string    `json:"description,omitempty"`
	MediaURL    string    `json:"media_url,omitempty"`
	// Notice is the service_notice the report was answered with.
	Notice string `json:"notice,omitempty"`
	// Fingerprint identifies the content of a report sent with an
	// Idempotency-Key, so that the key sent again with another report is
	// refused.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Query selects recorded requests by the time they were made.
type Query struct {
	// From and To bound the requested time, both included.
	From, To time.Time
	// ServiceCodes, when given, keep the requests of these services only.
	ServiceCodes []string
	// Offset skips the first requests, newest first; Limit bounds the
	// answer.
	Offset, Limit int
}

// Store keeps the accepted requests, so that they can be listed and
// followed. Implementations are safe for concurrent use.
type Store interface {
	// Add records r unless a request with its id is recorded already, and
	// returns the request recorded under the id and whether it is r.
	Add(ctx context.Context, r Request) (Request, bool, error)
	// Get returns the requests with the given ids that are recorded, in the
	// order of ids.
	Get(ctx context.Context, ids ...string) ([]Request, error)
	// List returns the requests q selects, newest first.
	List(ctx context.Context, q Query) ([]Request, error)
}

// DefaultRetention is how long a RedisStore keeps a request.
const DefaultRetention = 400 * 24 * time.Hour

// RedisStore is a Store in Redis. Every key carries the hash tag
// {requests}, so the multi-key commands run on Redis Cluster too (on the
// one node that holds the slot: citizens' reports are few beside events):
//
//	cityhub:open311:{requests}:r:ID            a request (JSON), expiring after the retention
//	cityhub:open311:{requests}:by-time         request ids by requested time (Unix ms)
//	cityhub:open311:{requests}:by-service:CODE the same, for one service_code
//
// The indexes forget entries older than the retention whenever a request
// is added to them.
type RedisStore struct {
	rdb       redis.UniversalClient
	retention time.Duration
	now       func() time.Time
}

var _ Store = (*RedisStore)(nil)

// StoreOptions tune a RedisStore.
type StoreOptions struct {
	// Retention is how long a request is kept; DefaultRetention when zero.
	Retention time.Duration
	// Now is the clock retention is counted on; time.Now when nil.
	Now func() time.Time
}

// NewRedisStore returns a Store on rdb.
func NewRedisStore(rdb redis.UniversalClient, opts StoreOptions) *RedisStore {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &RedisStore{rdb: rdb, retention: opts.Retention, now: opts.Now}
}

const keyPrefix = "cityhub:open311:{requests}:"

var (
	// idRE is the form of event ids (package events), which request ids are.
	idRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// codeRE is the form of catalog codes, which service codes are.
	codeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

const byTimeKey = keyPrefix + "by-time"

func requestKey(id string) string     { return keyPrefix + "r:" + id }
func byServiceKey(code string) string { return keyPrefix + "by-service:" + code }
func score(t time.Time) float64       { return float64(t.UnixMilli()) }
func scoreArg(t time.Time) string     { return strconv.FormatInt(t.UnixMilli(), 10) }

// Add records r and its place in the indexes in one transaction.
func (s *RedisStore) Add(ctx context.Context, r Request) (Request, bool, error) {
	if !idRE.MatchString(r.ID) {
		return Request{}, false, fmt.Errorf("open311 store: request id %q: want 1 to 128 of A-Z a-z 0-9 . _ : -", clip(r.ID))
	}
	if !codeRE.MatchString(r.ServiceCode) {
		return Request{}, false, fmt.Errorf("open311 store: service code %q: want a catalog code", clip(r.ServiceCode))
	}
	b, err := json.Marshal(r)
	if err != nil {
		return Request{}, false, fmt.Errorf("open311 store: encoding request %s: %w", r.ID, err)
	}
	cut := "(" + scoreArg(s.now().Add(-s.retention))
	member := redis.Z{Score: score(r.Requested), Member: r.ID}
	var set *redis.StatusCmd
	var stored *redis.StringCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		set = p.SetArgs(ctx, requestKey(r.ID), b, redis.SetArgs{Mode: "NX", TTL: s.retention})
		for _, k := range []string{byTimeKey, byServiceKey(r.ServiceCode)} {
			p.ZAddNX(ctx, k, member)
			p.ZRemRangeByScore(ctx, k, "-inf", cut)
			p.Expire(ctx, k, s.retention)
		}
		stored = p.Get(ctx, requestKey(r.ID))
		return nil
	})
	// SET NX answers nil when the id is taken: not a failure.
	if err != nil && !errors.Is(err, redis.Nil) {
		return Request{}, false, fmt.Errorf("open311 store: adding request %s: %w", r.ID, err)
	}
	created := set.Err() == nil
	var got Request
	if err := json.Unmarshal([]byte(stored.Val()), &got); err != nil {
		return Request{}, false, fmt.Errorf("open311 store: request %s: %w", r.ID, err)
	}
	return got, created, nil
}

// Get reads the requests with the given ids; ids of no request, or not of
// the form of one, are left out.
func (s *RedisStore) Get(ctx context.Context, ids ...string) ([]Request, error) {
	var keys []string
	for _, id := range ids {
		if idRE.MatchString(id) {
			keys = append(keys, requestKey(id))
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("open311 store: reading %d requests: %w", len(keys), err)
	}
	out := make([]Request, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // not recorded, or expired
		}
		var r Request
		if err := json.Unmarshal([]byte(str), &r); err != nil {
			return nil, fmt.Errorf("open311 store: %s: %w", keys[i], err)
		}
		out = append(out, r)
	}
	return out, nil
}

// List reads the ids q selects from the indexes, newest first, then the
// requests. With several service codes it merges their indexes, reading
// Offset+Limit ids from each.
func (s *RedisStore) List(ctx context.Context, q Query) ([]Request, error) {
	if q.Limit <= 0 || q.Offset < 0 || q.To.Before(q.From) {
		return nil, nil
	}
	keys := []string{byTimeKey}
	if len(q.ServiceCodes) > 0 {
		keys = keys[:0]
		for _, c := range q.ServiceCodes {
			if !codeRE.MatchString(c) {
				return nil, fmt.Errorf("open311 store: service code %q: want a catalog code", clip(c))
			}
			keys = append(keys, byServiceKey(c))
		}
	}
	offset, count := int64(q.Offset), int64(q.Limit)
	if len(keys) > 1 {
		offset, count = 0, int64(q.Offset+q.Limit)
	}
	cmds := make([]*redis.ZSliceCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
				Key: k, Start: scoreArg(q.To), Stop: scoreArg(q.From),
				ByScore: true, Rev: true, Offset: offset, Count: count,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open311 store: listing requests: %w", err)
	}
	var zs []redis.Z
	for _, c := range cmds {
		zs = append(zs, c.Val()...)
	}
	if len(keys) > 1 {
		slices.SortFunc(zs, func(a, b redis.Z) int {
			if c := cmp.Compare(b.Score, a.Score); c != 0 {
				return c
			}
			return cmp.Compare(fmt.Sprint(b.Member), fmt.Sprint(a.Member))
		})
		zs = zs[min(q.Offset, len(zs)):]
		zs = zs[:min(q.Limit, len(zs))]
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i] = fmt.Sprint(z.Member)
	}
	return s.Get(ctx, ids...)
}
