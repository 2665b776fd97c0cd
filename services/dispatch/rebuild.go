package dispatch

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// Rebuild reads topic (city.cases.v1) from its start to its current end and
// restores every case change into store, so that an empty Redis holds the
// cases again; it returns how many changes it restored. Running it over a
// Redis that already holds the cases changes nothing. A record that does not
// decode, or holds no valid case, is skipped: it never was one.
func Rebuild(ctx context.Context, brokers []string, topic string, store *casestore.Store) (n int, err error) {
	err = stream.Replay(ctx, brokers, topic, func(m kafka.Message) error {
		change := new(cityhubv1.CaseChange)
		if stream.Unmarshal(m, change) != nil {
			return nil
		}
		err := store.Restore(ctx, change)
		if errors.Is(err, casestore.ErrInvalid) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("offset %d/%d: %w", m.Partition, m.Offset, err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("dispatch: rebuild from %s: %w", topic, err)
	}
	return n, nil
}
