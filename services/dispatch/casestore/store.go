// Package casestore keeps cases in Redis: each case as protobuf bytes, its
// audit history, the replies to the requests that changed it, and the indexes
// the API lists by. Every write is one Lua script over keys that share the
// case's district as hash tag, so a store works on one Redis or on Redis
// Cluster alike, and a script that runs twice changes nothing the second time.
// A change is that one script and nothing else when the store holds the
// case at the version the change starts from (cache.go): the script checks
// the version, the digest of the case and the request id itself.
//
// The same scripts keep each district's timer set, so that a case's
// deadlines are watched from the moment its change is stored; Claim and
// Release (timers.go) let several sweepers share them.
//
// Redis is the working state, not the record: Restore writes back what was
// published on city.cases.v1, so an empty Redis can be rebuilt from Kafka.
package casestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

var (
	// ErrNotFound means there is no case with the given id.
	ErrNotFound = errors.New("case not found")
	// ErrConflict means the case is not at the version the caller expected:
	// someone else changed it first. Read it again and decide again.
	ErrConflict = errors.New("case version conflict")
	// ErrInvalid means the case or change handed to the store is malformed;
	// retrying it cannot succeed.
	ErrInvalid = errors.New("invalid case")
	// ErrBadCursor means a list cursor was not one List returned.
	ErrBadCursor = errors.New("malformed cursor")
)

// restoreAttempts bounds how often Restore retries when the case moves under
// it; only a concurrent writer of the same case makes it retry at all.
const restoreAttempts = 16

// Store reads and writes cases. It is safe for concurrent use.
//
// A Store keeps the cases it read or wrote last (a few thousand, least
// recently used out) so that a change of one of them costs one round trip;
// see Update. Several stores on one Redis (replicas of a service) are fine:
// a copy another one made stale costs a conflict or a second round trip,
// never a lost update.
type Store struct {
	rdb       redis.UniversalClient
	districts []string
	cache     *lru
}

// New returns a Store on rdb. districts are the codes of every district of
// the city: OpenCases and List without a district filter look at these.
func New(rdb redis.UniversalClient, districts []string) *Store {
	return &Store{rdb: rdb, districts: append([]string(nil), districts...), cache: newLRU(cacheSize)}
}

// Districts returns the district codes the store was given.
func (s *Store) Districts() []string { return append([]string(nil), s.districts...) }

// Create opens case c with its creation entry, once per origin: the alert
// firing (c.AlertId, c.AlertStartsAt) of a case opened from an alert, or the
// entry's request id of one opened by hand. c must be at version 1, with an
// id from NewID. When the origin already opened a case, Create changes
// nothing and returns the change that opened that case, with created false.
func (s *Store) Create(ctx context.Context, c *cityhubv1.Case, entry *cityhubv1.AuditEntry) (change *cityhubv1.CaseChange, created bool, err error) {
	if err := checkCase(c); err != nil {
		return nil, false, err
	}
	if c.GetVersion() != 1 || entry.GetVersion() != 1 {
		return nil, false, fmt.Errorf("%w: a new case and its entry are at version 1", ErrInvalid)
	}
	origin, err := originKey(c, entry)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	change = &cityhubv1.CaseChange{Case: c, Change: entry}
	w, err := newWrite(c, entry, 0)
	if err != nil {
		return nil, false, err
	}
	w.origin, w.setOrigin = origin, true
	w.add = indexes(c)
	res, err := w.run(ctx, s.rdb, createScript)
	if err != nil {
		return nil, false, fmt.Errorf("create case %s: %w", c.GetId(), err)
	}
	switch res.status {
	case "ok":
		s.cache.put(seen{c: proto.CloneOf(c), digest: w.digest}) // the caller keeps c
		return change, true, nil
	case "exists":
		first, err := s.creation(ctx, res.value, entry.GetRequestId())
		if err != nil {
			return nil, false, err
		}
		return first, false, nil
	case "conflict":
		return nil, false, fmt.Errorf("%w: case %s already exists", ErrConflict, c.GetId())
	}
	return nil, false, fmt.Errorf("create case %s: unexpected reply %q", c.GetId(), res.status)
}

// creation returns the change that opened case id, as its request log kept
// it; should the log lack it, the case as it is now.
func (s *Store) creation(ctx context.Context, id, requestID string) (*cityhubv1.CaseChange, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, fmt.Errorf("origin points at malformed case id %q", id)
	}
	if requestID != "" {
		b, err := s.rdb.HGet(ctx, requestsKey(district, id), requestID).Bytes()
		if err == nil {
			return decodeChange(b)
		}
		if !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read creation of %s: %w", id, err)
		}
	}
	c, hist, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	change := &cityhubv1.CaseChange{Case: c}
	if len(hist) > 0 {
		change.Change = hist[len(hist)-1]
	}
	return change, nil
}

// UpdateFunc changes c, a copy of the case at the expected version, in place
// and returns the audit entry that describes the change. Update sets the
// version of both; the function sets everything else. An error from it is
// returned by Update as it is.
//
// Update may call the function on a copy the store kept, before the update
// script tells whether the request is a repeat or the copy is stale: then
// its result is thrown away and, when it failed, it is called again on the
// case as Redis holds it. It must therefore change nothing but c.
type UpdateFunc func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error)

// updateAttempts bounds how often one Update computes its change: on a
// copy the store kept, then, should that copy turn out stale in content or
// the function refuse it, on the case read afresh.
const updateAttempts = 2

// Update changes case id from version expected to expected+1 with fn. A
// requestID that already changed the case returns the change it made then,
// and changes nothing, whatever the case's version is now; an empty
// requestID is never deduplicated. It fails with ErrNotFound when there is no
// such case and ErrConflict when the case is not at version expected.
//
// When the store holds the case at version expected (it read or wrote it
// lately: see Recent), Update is one round trip, the update script, which
// checks the request id, the version and the digest of the case the change
// was computed from, and writes everything. Otherwise it first reads the
// case and the request log in one pipeline. The case of the returned
// change is shared with the store's cache: do not modify it.
func (s *Store) Update(ctx context.Context, id string, expected int64, requestID string, fn UpdateFunc) (*cityhubv1.CaseChange, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, ErrNotFound
	}
	// fromCache: base is a kept copy, not read in this call, so a refusal
	// computed from it may be stale. needRead: there is no base yet.
	base, fromCache := s.cache.get(id)
	fromCache = fromCache && base.c.GetVersion() == expected
	needRead := !fromCache
	for attempt := 1; ; attempt++ {
		if needRead {
			var dup *cityhubv1.CaseChange
			var err error
			if base, dup, err = s.readForUpdate(ctx, district, id, requestID); err != nil || dup != nil {
				return dup, err
			}
			if v := base.c.GetVersion(); v != expected {
				return nil, fmt.Errorf("%w: case %s is at version %d, not %d", ErrConflict, id, v, expected)
			}
		}
		change, w, err := prepare(base, requestID, fn)
		if err != nil {
			if fromCache {
				// Decide again on the case as Redis holds it, after looking
				// for a first answer to the request, as a read-first
				// update would have.
				needRead, fromCache = true, false
				continue
			}
			return nil, err
		}
		res, err := w.run(ctx, s.rdb, updateScript)
		if err != nil {
			return nil, fmt.Errorf("update case %s: %w", id, err)
		}
		switch res.status {
		case "ok":
			s.cache.put(seen{c: change.GetCase(), digest: w.digest})
			return change, nil
		case "dup":
			return decodeChange([]byte(res.value))
		case "missing":
			s.cache.drop(id)
			return nil, ErrNotFound
		case "conflict":
			cur, err := decodeSeen(id, res.body)
			if err != nil {
				return nil, err
			}
			s.cache.put(cur)
			if v := cur.c.GetVersion(); v != expected || attempt >= updateAttempts {
				return nil, fmt.Errorf("%w: case %s is at version %d, not %d", ErrConflict, id, v, expected)
			}
			// Same version, other bytes: Redis lost the write the copy came
			// from and the case moved on to this version again. Decide on
			// what it holds now; the script already found the request new.
			base, needRead, fromCache = cur, false, false
			continue
		}
		return nil, fmt.Errorf("update case %s: unexpected reply %q", id, res.status)
	}
}

// Answered returns the change requestID made to case id, as Update would
// answer a repeat of it, or nil when that request changed nothing there.
func (s *Store) Answered(ctx context.Context, id, requestID string) (*cityhubv1.CaseChange, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, ErrNotFound
	}
	if requestID == "" {
		return nil, nil
	}
	b, err := s.rdb.HGet(ctx, requestsKey(district, id), requestID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read request %s of %s: %w", requestID, id, err)
	}
	return decodeChange(b)
}

// readForUpdate reads case id and, in the same pipeline, the answer kept
// for requestID: dup is that answer when the request was seen before.
func (s *Store) readForUpdate(ctx context.Context, district, id, requestID string) (base seen, dup *cityhubv1.CaseChange, err error) {
	pipe := s.rdb.Pipeline()
	cur := pipe.HGet(ctx, caseKey(district, id), "pb")
	var prev *redis.StringCmd
	if requestID != "" {
		prev = pipe.HGet(ctx, requestsKey(district, id), requestID)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return seen{}, nil, fmt.Errorf("read case %s: %w", id, err)
	}
	if prev != nil {
		if b, err := prev.Bytes(); err == nil {
			dup, err := decodeChange(b)
			return seen{}, dup, err
		}
	}
	b, err := cur.Bytes()
	if errors.Is(err, redis.Nil) {
		s.cache.drop(id)
		return seen{}, nil, ErrNotFound
	}
	if err != nil {
		return seen{}, nil, fmt.Errorf("read case %s: %w", id, err)
	}
	if base, err = decodeSeen(id, b); err != nil {
		return seen{}, nil, err
	}
	s.cache.put(base)
	return base, nil, nil
}

// prepare computes the change fn makes to base and the script call that
// stores it.
func prepare(base seen, requestID string, fn UpdateFunc) (*cityhubv1.CaseChange, *write, error) {
	old := base.c
	c := proto.CloneOf(old)
	entry, err := fn(c)
	if err != nil {
		return nil, nil, err
	}
	if entry == nil {
		return nil, nil, fmt.Errorf("%w: a change of %s has no audit entry", ErrInvalid, old.GetId())
	}
	if c.GetId() != old.GetId() || c.GetDistrict() != old.GetDistrict() {
		return nil, nil, fmt.Errorf("%w: an update may not change a case's id or district", ErrInvalid)
	}
	c.Version = old.GetVersion() + 1
	entry.Version = c.Version
	entry.RequestId = requestID
	w, err := newWrite(c, entry, old.GetVersion())
	if err != nil {
		return nil, nil, err
	}
	w.requestID, w.baseDigest = requestID, base.digest
	w.remove, w.add = indexes(old), indexes(c)
	return &cityhubv1.CaseChange{Case: c, Change: entry}, w, nil
}

// Recent returns case id as the store last saw it: from its cache when it
// read or wrote the case lately, else read from Redis. The copy may be
// older than what Redis holds now; it is what to base an Update on (which
// is then one round trip, and conflicts when the copy was stale), not what
// to refuse a request on: confirm a refusal with Current. The case is
// shared with the store's cache: do not modify it.
func (s *Store) Recent(ctx context.Context, id string) (*cityhubv1.Case, error) {
	if sn, ok := s.cache.get(id); ok {
		return sn.c, nil
	}
	return s.Current(ctx, id)
}

// Current reads case id from Redis (without its history) and keeps it in
// the store's cache. The case is shared with that cache: do not modify it.
func (s *Store) Current(ctx context.Context, id string) (*cityhubv1.Case, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, ErrNotFound
	}
	b, err := s.rdb.HGet(ctx, caseKey(district, id), "pb").Bytes()
	if errors.Is(err, redis.Nil) {
		s.cache.drop(id)
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read case %s: %w", id, err)
	}
	sn, err := decodeSeen(id, b)
	if err != nil {
		return nil, err
	}
	s.cache.put(sn)
	return sn.c, nil
}

// decodeSeen decodes the stored bytes b of case id.
func decodeSeen(id string, b []byte) (seen, error) {
	c := new(cityhubv1.Case)
	if err := proto.Unmarshal(b, c); err != nil {
		return seen{}, fmt.Errorf("decode case %s: %w", id, err)
	}
	if c.GetId() != id {
		return seen{}, fmt.Errorf("decode case %s: it holds case %q", id, c.GetId())
	}
	return seen{c: c, digest: digestOf(b)}, nil
}

// Restore writes a change as published on city.cases.v1: the case when it is
// newer than what Redis holds, and its audit entry, request reply and origin
// whatever the order changes arrive in. Restoring a change twice, or an
// older one, changes nothing.
func (s *Store) Restore(ctx context.Context, change *cityhubv1.CaseChange) error {
	c, entry := change.GetCase(), change.GetChange()
	if err := checkCase(c); err != nil {
		return err
	}
	if entry == nil || entry.GetVersion() != c.GetVersion() {
		return fmt.Errorf("%w: change of %s has no audit entry at version %d", ErrInvalid, c.GetId(), c.GetVersion())
	}
	for range restoreAttempts {
		old, err := s.current(ctx, c.GetDistrict(), c.GetId())
		if err != nil {
			return err
		}
		w, err := newWrite(c, entry, old.GetVersion())
		if err != nil {
			return err
		}
		w.requestID = entry.GetRequestId()
		if entry.GetVersion() == 1 {
			if key, err := originKey(c, entry); err == nil {
				w.origin, w.setOrigin = key, true
			}
		}
		if old.GetVersion() > 0 {
			w.remove = indexes(old)
		}
		w.add = indexes(c)
		res, err := w.run(ctx, s.rdb, restoreScript)
		if err != nil {
			return fmt.Errorf("restore case %s: %w", c.GetId(), err)
		}
		if res.status != "stale" {
			return nil
		}
	}
	return fmt.Errorf("restore case %s: %w: it kept changing", c.GetId(), ErrConflict)
}

// current returns the case as Redis holds it, or an empty case at version 0.
func (s *Store) current(ctx context.Context, district, id string) (*cityhubv1.Case, error) {
	b, err := s.rdb.HGet(ctx, caseKey(district, id), "pb").Bytes()
	if errors.Is(err, redis.Nil) {
		return &cityhubv1.Case{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read case %s: %w", id, err)
	}
	c := new(cityhubv1.Case)
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("decode case %s: %w", id, err)
	}
	return c, nil
}

// Get returns case id and its history, oldest first, and keeps the case in
// the store's cache (see Recent).
func (s *Store) Get(ctx context.Context, id string) (*cityhubv1.Case, []*cityhubv1.AuditEntry, error) {
	district, ok := DistrictOf(id)
	if !ok {
		return nil, nil, ErrNotFound
	}
	pipe := s.rdb.Pipeline()
	cur := pipe.HGet(ctx, caseKey(district, id), "pb")
	hist := pipe.ZRange(ctx, historyKey(district, id), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read case %s: %w", id, err)
	}
	b, err := cur.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read case %s: %w", id, err)
	}
	sn, err := decodeSeen(id, b)
	if err != nil {
		return nil, nil, err
	}
	s.cache.put(sn)
	c := proto.CloneOf(sn.c) // the caller may change its copy
	entries := make([]*cityhubv1.AuditEntry, 0, len(hist.Val()))
	for _, raw := range hist.Val() {
		e := new(cityhubv1.AuditEntry)
		if err := proto.Unmarshal([]byte(raw), e); err != nil {
			return nil, nil, fmt.Errorf("decode history of %s: %w", id, err)
		}
		entries = append(entries, e)
	}
	return c, entries, nil
}

// OpenCases returns every open case of every district, for the snapshot the
// live gateway sends a new subscriber.
func (s *Store) OpenCases(ctx context.Context) ([]*cityhubv1.Case, error) {
	var out []*cityhubv1.Case
	for _, d := range s.districts {
		ids, err := s.rdb.ZRange(ctx, indexOpen(d), 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("open cases of %s: %w", d, err)
		}
		cases, err := s.load(ctx, d, ids)
		if err != nil {
			return nil, err
		}
		for _, c := range cases {
			if c != nil && c.GetStatus().Open() {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// loadChunk bounds the commands of one pipelined read.
const loadChunk = 512

// load reads the cases ids of district; a case that vanished is nil.
func (s *Store) load(ctx context.Context, district string, ids []string) ([]*cityhubv1.Case, error) {
	out := make([]*cityhubv1.Case, 0, len(ids))
	for start := 0; start < len(ids); start += loadChunk {
		chunk := ids[start:min(start+loadChunk, len(ids))]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = pipe.HGet(ctx, caseKey(district, id), "pb")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read cases of %s: %w", district, err)
		}
		for i, cmd := range cmds {
			b, err := cmd.Bytes()
			if errors.Is(err, redis.Nil) {
				out = append(out, nil)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read case %s: %w", chunk[i], err)
			}
			c := new(cityhubv1.Case)
			if err := proto.Unmarshal(b, c); err != nil {
				return nil, fmt.Errorf("decode case %s: %w", chunk[i], err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func checkCase(c *cityhubv1.Case) error {
	if c == nil {
		return fmt.Errorf("%w: no case", ErrInvalid)
	}
	d, ok := DistrictOf(c.GetId())
	if !ok {
		return fmt.Errorf("%w: malformed id %q", ErrInvalid, c.GetId())
	}
	if d != c.GetDistrict() {
		return fmt.Errorf("%w: id %q is not of district %q", ErrInvalid, c.GetId(), c.GetDistrict())
	}
	if c.GetVersion() < 1 {
		return fmt.Errorf("%w: case %s has version %d", ErrInvalid, c.GetId(), c.GetVersion())
	}
	if c.GetStatus() == cityhubv1.CaseStatus_CASE_STATUS_UNSPECIFIED || c.GetCreatedAt() == nil {
		return fmt.Errorf("%w: case %s has no status or creation time", ErrInvalid, c.GetId())
	}
	return nil
}

func decodeChange(b []byte) (*cityhubv1.CaseChange, error) {
	ch := new(cityhubv1.CaseChange)
	if err := proto.Unmarshal(b, ch); err != nil {
		return nil, fmt.Errorf("decode stored reply: %w", err)
	}
	return ch, nil
}

// write is one call of a script, in the convention scripts.go describes.
type write struct {
	c                      *cityhubv1.Case
	caseB, changeB, entryB []byte
	base                   int64
	requestID, origin      string
	setOrigin              bool
	remove, add            []string
	// digest names caseB; baseDigest the case the change was computed
	// from (updates only).
	digest, baseDigest string
}

// reply is a script's answer: a status, a value, and for a conflict the
// case as stored.
type reply struct {
	status, value string
	body          []byte
}

// Field numbers of CaseChange, for encoding it from its parts.
var (
	changeCaseField  = (&cityhubv1.CaseChange{}).ProtoReflect().Descriptor().Fields().ByName("case").Number()
	changeEntryField = (&cityhubv1.CaseChange{}).ProtoReflect().Descriptor().Fields().ByName("change").Number()
)

// newWrite encodes case c, its entry and the CaseChange of the two. The
// change is put together from the encodings of its parts, which is what
// a deterministic Marshal of it produces, without encoding both again.
func newWrite(c *cityhubv1.Case, entry *cityhubv1.AuditEntry, base int64) (*write, error) {
	w := &write{c: c, base: base, requestID: entry.GetRequestId()}
	var err error
	opts := proto.MarshalOptions{Deterministic: true}
	if w.caseB, err = opts.Marshal(c); err != nil {
		return nil, fmt.Errorf("encode case %s: %w", c.GetId(), err)
	}
	if w.entryB, err = opts.Marshal(entry); err != nil {
		return nil, fmt.Errorf("encode entry of %s: %w", c.GetId(), err)
	}
	b := make([]byte, 0, len(w.caseB)+len(w.entryB)+2*(1+binary.MaxVarintLen64))
	b = protowire.AppendTag(b, changeCaseField, protowire.BytesType)
	b = protowire.AppendBytes(b, w.caseB)
	b = protowire.AppendTag(b, changeEntryField, protowire.BytesType)
	w.changeB = protowire.AppendBytes(b, w.entryB)
	w.digest = digestOf(w.caseB)
	return w, nil
}

// keys returns the KEYS of the write's script, in the order scripts.go
// describes.
func (w *write) keys() []string {
	d, id := w.c.GetDistrict(), w.c.GetId()
	origin := w.origin
	if origin == "" {
		origin = caseKey(d, id) // a placeholder within the hash tag; the script leaves it alone
	}
	keys := append([]string{caseKey(d, id), historyKey(d, id), requestsKey(d, id), origin, timersKey(d)}, w.remove...)
	return append(keys, w.add...)
}

func (w *write) run(ctx context.Context, rdb redis.UniversalClient, script *redis.Script) (reply, error) {
	id := w.c.GetId()
	keys := w.keys()
	setOrigin := "0"
	if w.setOrigin {
		setOrigin = "1"
	}
	args := []any{
		w.requestID, w.base, w.c.GetVersion(),
		w.caseB, w.changeB, w.entryB,
		w.c.GetStatus().Name(), score(w.c), id,
		len(w.remove), len(w.add), setOrigin, timerScore(w.c),
		w.baseDigest, w.digest,
	}
	v, err := script.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return reply{}, err
	}
	if len(v) < 2 {
		return reply{}, fmt.Errorf("script replied %v", v)
	}
	r := reply{}
	r.status, _ = v[0].(string)
	r.value, _ = v[1].(string)
	if len(v) > 2 {
		body, _ := v[2].(string)
		r.body = []byte(body)
	}
	return r, nil
}

// MergeFollowUp is how long after a merge the duplicate's timer comes due,
// so that a sweeper looks at it once: should the merge have stopped between
// the duplicate's change and the target's, the sweeper records the
// duplicate on the target. A sweeper that finds the merge whole takes the
// timer away with Disarm.
const MergeFollowUp = time.Minute

// timerScore is when the case's timer is due, in Unix milliseconds, or ""
// when no clock of the case runs and it is no merged duplicate.
func timerScore(c *cityhubv1.Case) string {
	switch {
	case c.GetStatus().Open() && c.GetTimerAt() != nil:
		return strconv.FormatInt(c.GetTimerAt().AsTime().UnixMilli(), 10)
	case !c.GetStatus().Open() && c.GetMergedInto() != "" && c.GetClosedAt() != nil:
		return strconv.FormatInt(c.GetClosedAt().AsTime().Add(MergeFollowUp).UnixMilli(), 10)
	}
	return ""
}

// score orders a case in every index: its creation time in milliseconds,
// which never changes, so a cursor stays valid while cases change.
func score(c *cityhubv1.Case) string {
	return strconv.FormatInt(c.GetCreatedAt().AsTime().UnixMilli(), 10)
}
