package silence

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Keys of the silences in Redis, under one hash tag.
const (
	// AllKey maps silence ids to encoded silences.
	AllKey = "cityhub:silences:{silences}"
	// VersionsKey maps silence ids to the version AllKey holds.
	VersionsKey = "cityhub:silences:{silences}:versions"
	// ChangedKey counts the changes, so that a ruler reads the silences
	// again only when they changed.
	ChangedKey = "cityhub:silences:{silences}:changed"
)

var (
	//go:embed put.lua
	putSrc    string
	putScript = redis.NewScript(putSrc)
)

// Store keeps the silences as they stand in Redis: the working state,
// which Rebuild restores from the record on Kafka. It is safe for
// concurrent use.
type Store struct {
	c redis.UniversalClient
}

// NewStore returns a Store on c.
func NewStore(c redis.UniversalClient) *Store { return &Store{c: c} }

// Put keeps s unless the store holds its id at the same or a later
// version, and reports whether it kept it.
func (st *Store) Put(ctx context.Context, s *cityhubv1.Silence) (bool, error) {
	b, err := proto.Marshal(s)
	if err != nil {
		return false, fmt.Errorf("silence: encode %s: %w", s.GetId(), err)
	}
	n, err := putScript.Run(ctx, st.c, []string{AllKey, VersionsKey, ChangedKey}, s.GetId(), s.GetVersion(), b).Int()
	if err != nil {
		return false, fmt.Errorf("silence: keep %s: %w", s.GetId(), err)
	}
	return n == 1, nil
}

// Get returns the silence id, or ErrNotFound.
func (st *Store) Get(ctx context.Context, id string) (*cityhubv1.Silence, error) {
	b, err := st.c.HGet(ctx, AllKey, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("silence: read %s: %w", id, err)
	}
	s := &cityhubv1.Silence{}
	if err := proto.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("silence: decode %s: %w", id, err)
	}
	return s, nil
}

// All returns every silence the store holds, expired ones included, and
// the change count they are as of.
func (st *Store) All(ctx context.Context) ([]*cityhubv1.Silence, int64, error) {
	var (
		all     *redis.MapStringStringCmd
		changed *redis.StringCmd
	)
	_, err := st.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, AllKey)
		changed = p.Get(ctx, ChangedKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("silence: read all: %w", err)
	}
	n, _ := strconv.ParseInt(changed.Val(), 10, 64)
	out := make([]*cityhubv1.Silence, 0, len(all.Val()))
	for id, b := range all.Val() {
		s := &cityhubv1.Silence{}
		if err := proto.Unmarshal([]byte(b), s); err != nil {
			return nil, 0, fmt.Errorf("silence: decode %s: %w", id, err)
		}
		out = append(out, s)
	}
	return out, n, nil
}

// Changed returns the change count: it grows whenever a silence changes.
func (st *Store) Changed(ctx context.Context) (int64, error) {
	n, err := st.c.Get(ctx, ChangedKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("silence: read the change count: %w", err)
	}
	return n, nil
}

// Rebuild puts every silence the record on topic holds into st, the
// latest version of each winning, and returns how many silences it
// restored (wrote a version of). An undecodable message is skipped.
func Rebuild(ctx context.Context, brokers []string, topic string, st *Store) (int, error) {
	restored := map[string]bool{}
	err := stream.Replay(ctx, brokers, topic, func(m kafka.Message) error {
		s := &cityhubv1.Silence{}
		if err := stream.Unmarshal(m, s); err != nil || s.GetId() == "" || s.GetVersion() <= 0 {
			return nil
		}
		kept, err := st.Put(ctx, s)
		if kept {
			restored[s.GetId()] = true
		}
		return err
	})
	if err != nil {
		return len(restored), fmt.Errorf("silence: rebuild from %s: %w", topic, err)
	}
	return len(restored), nil
}
