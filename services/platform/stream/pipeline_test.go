package stream

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
)

func fetchedAt(offsets ...int64) []fetched[int] {
	out := make([]fetched[int], len(offsets))
	for i, o := range offsets {
		out[i] = fetched[int]{msg: kafka.Message{Offset: o}}
	}
	return out
}

// committer records what a pipeline commits.
type committer struct{ offsets []int64 }

func (c *committer) commit(_ context.Context, msgs ...kafka.Message) error {
	for _, m := range msgs {
		c.offsets = append(c.offsets, m.Offset)
	}
	return nil
}

func TestPipelineCommitsInOrderOnceFinished(t *testing.T) {
	ctx := context.Background()
	var c committer
	p := &pipeline[int]{commit: c.commit, topic: "t"}
	release := make(chan error)
	hold := func(context.Context) error { return <-release }

	b0 := fetchedAt(1, 2)
	spare := p.start(ctx, hold, b0)
	if len(spare) != 0 || cap(spare) < 2 {
		t.Fatalf("spare buffer len %d cap %d", len(spare), cap(spare))
	}
	if len(c.offsets) != 0 {
		t.Fatal("committed a batch still pending")
	}
	go func() { release <- nil }()
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.offsets, []int64{1, 2}) || p.finished != nil {
		t.Fatalf("committed %v, pending %v", c.offsets, p.finished != nil)
	}
	// The buffer of a settled batch is handed out again.
	b1 := append(spare, fetchedAt(3)...)
	spare = p.start(ctx, hold, b1)
	if cap(spare) == 0 || &spare[:1][0] != &b0[0] {
		t.Error("the settled batch's buffer was not reused")
	}
	go func() { release <- errors.New("kafka down") }()
	if err := p.wait(ctx); err == nil {
		t.Fatal("a failed Pending settled without an error")
	}
	if !slices.Equal(c.offsets, []int64{1, 2}) {
		t.Errorf("a batch whose Pending failed was committed: %v", c.offsets)
	}
	p.join() // nothing pending: returns at once
}

func TestPipelineJoinDoesNotCommit(t *testing.T) {
	var c committer
	p := &pipeline[int]{commit: c.commit, topic: "t"}
	done := make(chan struct{})
	p.start(context.Background(), func(context.Context) error { <-done; return nil }, fetchedAt(7))
	close(done)
	p.join()
	if len(c.offsets) != 0 || p.finished != nil {
		t.Errorf("join committed %v", c.offsets)
	}
}

func TestFetcherFillsWithoutWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := make(chan kafka.Message)
	fetch := func(ctx context.Context) (kafka.Message, error) {
		select {
		case m := <-next:
			return m, nil
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		}
	}
	decode := func(m kafka.Message) fetched[int] { return fetched[int]{msg: m, value: int(m.Offset)} }
	f := startFetcher(ctx, fetch, decode, 3)
	for o := range int64(5) {
		next <- kafka.Message{Offset: o}
	}
	// The fifth message may still be on its way into the channel.
	first := <-f.msgs
	batch := f.fill([]fetched[int]{first})
	if len(batch) != 3 || batch[0].value != 0 || batch[2].value != 2 {
		t.Fatalf("first batch %v, want offsets 0..2", batch)
	}
	batch = f.fill(batch[:0])
	if len(batch) > 2 {
		t.Fatalf("second fill took %d", len(batch))
	}
	f.stop()
	if _, ok := <-f.msgs; ok {
		t.Error("messages after stop")
	}
}

func TestFetcherReportsWhyItEnded(t *testing.T) {
	boom := errors.New("broker gone")
	f := startFetcher(context.Background(), func(context.Context) (kafka.Message, error) { return kafka.Message{}, boom },
		func(m kafka.Message) fetched[int] { return fetched[int]{msg: m} }, 4)
	for range f.msgs {
	}
	if err := f.err(); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}
