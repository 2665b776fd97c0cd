package ruler_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/logging"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler"
)

// roundTrips counts the requests a Redis client sends about data: one per
// command outside a pipeline, one per pipeline. The handshake of a new
// connection and the loading of scripts (once, or after Redis lost them)
// are not the batch's work and are not counted.
type roundTrips struct{ n atomic.Int64 }

var setup = map[string]bool{"hello": true, "client": true, "script": true}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !setup[cmd.Name()] {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !setup[cmds[0].Name()] {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// TestRedisRoundTripsPerBatch checks that the Redis work of a batch costs
// a number of round trips that does not grow with its events: every alert
// script of the batch goes in one pipeline, in event order, and the index
// updates in one more (what mutes alerts reads per rule, not per event).
// A batch of 20 times the events must not need more round trips.
func TestRedisRoundTripsPerBatch(t *testing.T) {
	small := redisRoundTrips(t, 30)
	large := redisRoundTrips(t, 600)
	t.Logf("Redis round trips per batch: %.1f with 30 events, %.1f with 600", small, large)
	if large > small*1.25+1 {
		t.Errorf("a batch of 600 events takes %.1f Redis round trips, one of 30 %.1f: the Redis work is not batched", large, small)
	}
}

// redisRoundTrips runs a ruler over n events (deep water on 30 streets,
// every third report a hotline call that fills a count window) and
// returns the Redis round trips per batch it made.
func redisRoundTrips(t *testing.T, n int) float64 {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t)
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var evs []*cityhubv1.Event
	for i := range n {
		street := fmt.Sprintf("street-%d", i%30)
		ev := event(fmt.Sprintf("ev-%d", i), "waterlogging", "xuhui", street, map[string]any{"water_depth_cm": 35})
		if i%3 == 0 {
			ev.Source = "hotline"
		}
		evs = append(evs, ev)
	}
	produce(t, w, k.Topics.Events, evs...)

	hook := &roundTrips{}
	rdb.Client.AddHook(hook)
	reg := prometheus.NewRegistry()
	r, err := ruler.New(ruler.Options{
		Brokers: k.Brokers, Topics: k.Topics, Group: kafkatest.Group("ruler"),
		Redis: rdb.Client, Writer: w, PacksDir: "../../rules/packs", Catalog: loadCatalog(t),
		Logger: logging.Discard(), Registerer: reg, PollInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "every event", func() bool { return counterValue(t, reg, "cityhub_ruler_events_total") == float64(len(evs)) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	batches := uint64(metricSum(t, reg, "cityhub_ruler_batch_seconds", func(m *dto.Metric) float64 { return float64(m.GetHistogram().GetSampleCount()) }))
	if batches == 0 {
		t.Fatal("no batch was recorded")
	}
	return float64(hook.n.Load()) / float64(batches)
}
