package redistest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A cluster started here spreads keys over its masters, routes each
// command to the master holding the key, and is emptied whole by flush.
func TestStartCluster(t *testing.T) {
	s := StartCluster(t, 3)
	ctx := context.Background()
	for i := range 300 {
		if err := s.Client.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	sizes := func() []int64 {
		var mu sync.Mutex
		var out []int64
		err := s.Client.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			size, err := n.DBSize(ctx).Result()
			mu.Lock()
			out = append(out, size)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := sizes()
	var total int64
	for _, n := range got {
		if n == 0 {
			t.Errorf("a master holds no key: %v", got)
		}
		total += n
	}
	if len(got) != 3 || total != 300 {
		t.Errorf("keys per master %v, want 3 masters holding 300", got)
	}
	if err := Flush(ctx, s.Client); err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes() {
		if n != 0 {
			t.Errorf("flush left keys: %v", sizes())
		}
	}
}
