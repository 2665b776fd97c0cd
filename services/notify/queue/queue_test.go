package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

var t0 = time.Date(2026, 10, 1, 3, 0, 0, 0, time.UTC)

func delivery(id string, due time.Duration, stop bool) *Delivery {
	return &Delivery{ID: id, Receiver: "sms", CaseID: "xuhui-01", Department: "gas", StopOnAccept: stop, Group: "g", Due: t0.Add(due), Message: message.Sample()}
}

func TestEnqueueClaimRetryDone(t *testing.T) {
	ctx := context.Background()
	q := New(redistest.Start(t).Client)
	for _, d := range []*Delivery{delivery("a", 0, false), delivery("b", time.Minute, true)} {
		if ok, err := q.Enqueue(ctx, d); err != nil || !ok {
			t.Fatalf("Enqueue %s = %v, %v", d.ID, ok, err)
		}
	}
	if ok, _ := q.Enqueue(ctx, delivery("a", 0, false)); ok {
		t.Error("the same delivery was queued twice")
	}
	got, err := q.Claim(ctx, "sms", t0, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != "a" || got[0].Attempts != 0 || got[0].Message.Case.ID == "" {
		t.Fatalf("Claim = %+v, %v", got, err)
	}
	if again, _ := q.Claim(ctx, "sms", t0, time.Minute, 10); len(again) != 0 {
		t.Fatalf("a claimed delivery was claimed again while its lease runs: %+v", again)
	}
	if err := q.Retry(ctx, &got[0].Delivery, t0.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, _ = q.Claim(ctx, "sms", t0.Add(30*time.Second), time.Minute, 10)
	if len(got) != 1 || got[0].ID != "a" || got[0].Attempts != 1 {
		t.Fatalf("after a retry: %+v", got)
	}
	if err := q.Done(ctx, &got[0].Delivery); err != nil {
		t.Fatal(err)
	}
	if ok, _ := q.Enqueue(ctx, delivery("a", 0, false)); ok {
		t.Error("a delivered delivery was queued again")
	}
	// A worker that dies holding b: the next claim after the lease takes it.
	got, _ = q.Claim(ctx, "sms", t0.Add(time.Minute), time.Minute, 10)
	if len(got) != 1 || got[0].ID != "b" || got[0].Reclaimed {
		t.Fatalf("b: %+v", got)
	}
	got, _ = q.Claim(ctx, "sms", t0.Add(2*time.Minute+time.Millisecond), time.Minute, 10)
	if len(got) != 1 || got[0].ID != "b" || !got[0].Reclaimed {
		t.Fatalf("b after its lease ran out: %+v", got)
	}
	if next, ok, _ := q.Next(ctx, "sms"); ok {
		t.Errorf("something is still due at %v", next)
	}
}

func TestCancelDropsWhatChasesAPart(t *testing.T) {
	ctx := context.Background()
	q := New(redistest.Start(t).Client)
	q.Enqueue(ctx, delivery("step-1", 0, true))
	q.Enqueue(ctx, delivery("step-2", 5*time.Minute, true))
	q.Enqueue(ctx, delivery("info", 0, false))
	held, _ := q.Claim(ctx, "sms", t0, time.Minute, 1) // step-1 or info, in flight
	n, err := q.Cancel(ctx, "sms", "xuhui-01", "gas")
	if err != nil || n != 2 {
		t.Fatalf("Cancel = %d, %v", n, err)
	}
	// A worker reporting on a cancelled delivery changes nothing.
	for _, h := range held {
		if err := q.Retry(ctx, &h.Delivery, t0); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := q.Claim(ctx, "sms", t0.Add(10*time.Minute), time.Minute, 10)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	if len(ids) != 1 || ids[0] != "info" {
		t.Errorf("left after the cancel: %v", ids)
	}
	if ok, _ := q.Enqueue(ctx, delivery("step-2", 5*time.Minute, true)); ok {
		t.Error("a cancelled delivery was queued again")
	}
}

func TestBadReceiverName(t *testing.T) {
	q := New(redistest.Start(t).Client)
	d := delivery("x", 0, false)
	d.Receiver = "{all}"
	if _, err := q.Enqueue(context.Background(), d); err != ErrBadName {
		t.Errorf("Enqueue = %v", err)
	}
}

// One round trip settles a worker's batch: each delivery as it went.
func TestSettle(t *testing.T) {
	ctx := context.Background()
	q := New(redistest.Start(t).Client)
	for _, id := range []string{"a", "b", "c", "d"} {
		q.Enqueue(ctx, delivery(id, 0, id == "a"))
	}
	got, err := q.Claim(ctx, "sms", t0, time.Minute, 10)
	if err != nil || len(got) != 4 {
		t.Fatalf("Claim = %d, %v", len(got), err)
	}
	by := map[string]*Delivery{}
	for i := range got {
		by[got[i].ID] = &got[i].Delivery
	}
	if n, _ := q.Cancel(ctx, "sms", "xuhui-01", "gas"); n != 1 {
		t.Fatalf("Cancel = %d, want a", n)
	}
	err = q.Settle(ctx, "sms", []Settlement{
		{Delivery: by["a"], Outcome: Retried, At: t0}, // cancelled meanwhile: stays so
		{Delivery: by["b"], Outcome: Delivered},
		{Delivery: by["c"], Outcome: Retried, At: t0.Add(time.Second)},
		{Delivery: by["d"], Outcome: Released, At: t0},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = q.Claim(ctx, "sms", t0.Add(time.Second), time.Minute, 10)
	attempts := map[string]int{}
	for _, c := range got {
		attempts[c.ID] = c.Attempts
	}
	if len(attempts) != 2 || attempts["c"] != 1 || attempts["d"] != 0 {
		t.Errorf("claimed after settling: %v, want c tried once and d never", attempts)
	}
	if ok, _ := q.Enqueue(ctx, delivery("b", 0, false)); ok {
		t.Error("a delivered delivery was queued again")
	}
	other := delivery("e", 0, false)
	other.Receiver = "mail"
	if err := q.Settle(ctx, "sms", []Settlement{{Delivery: other, Outcome: Delivered}}); err == nil {
		t.Error("Settle took a delivery of another receiver")
	}
}

// A batch applies in order, in one round trip, and works on a server that
// has not seen the scripts yet.
func TestBatch(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client
	q := New(rdb)
	var b Batch
	// Version 1 dispatched the part (step-1 chases it), version 2 took it
	// back (the cancel), version 3 dispatched it again (step-2).
	step1, step2 := delivery("step-1", 0, true), delivery("step-2", 0, true)
	step1.Version, step2.Version = 1, 3
	for _, d := range []*Delivery{step1, delivery("info", 0, false), delivery("info", 0, false)} {
		if err := b.Enqueue(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Cancel("sms", "xuhui-01", "gas", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.Enqueue(step2); err != nil { // after the cancel: stays
		t.Fatal(err)
	}
	if err := b.Cancel("{x}", "xuhui-01", "gas", 2); err != ErrBadName {
		t.Errorf("a cancel for a bad receiver name: %v", err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := q.Apply(ctx, &b)
	if err != nil || n.Queued != 3 || n.Cancelled != 1 {
		t.Fatalf("Apply = %+v, %v; want 3 queued, 1 cancelled", n, err)
	}
	got, _ := q.Claim(ctx, "sms", t0, time.Minute, 10)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	if strings.Join(ids, " ") != "info step-2" {
		t.Errorf("queued after the batch: %v, want info step-2", ids)
	}
	// Applied again (a retry, a redelivery): the cancel spares what the
	// later dispatch decided.
	if n, err := q.Apply(ctx, &b); err != nil || n.Queued != 0 || n.Cancelled != 0 {
		t.Errorf("the batch again = %+v, %v; want nothing more queued or cancelled", n, err)
	}
	if err := q.Settle(ctx, "sms", []Settlement{{Delivery: &got[0].Delivery, Outcome: Released, At: t0}, {Delivery: &got[1].Delivery, Outcome: Released, At: t0}}); err != nil {
		t.Fatal(err)
	}
	again, _ := q.Claim(ctx, "sms", t0, time.Minute, 10)
	if len(again) != 2 {
		t.Errorf("after the batch again %d are queued, want info and step-2", len(again))
	}
	// A cancel of a later version takes step-2 too.
	var later Batch
	if err := later.Cancel("sms", "xuhui-01", "gas", 4); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Apply(ctx, &later); err != nil || n.Cancelled != 1 {
		t.Errorf("a cancel at version 4 = %+v, %v; want step-2 dropped", n, err)
	}
}

// TestBatchSpansCalls applies a batch larger than one script call takes,
// for two receivers: the calls of each receiver run in the batch's order,
// so a cancel in the last call drops what the first ones queued.
func TestBatchSpansCalls(t *testing.T) {
	ctx := context.Background()
	q := New(redistest.Start(t).Client)
	var b Batch
	const n = 2*opsPerCall + 100
	for i := range n {
		for _, r := range []string{"sms", "mail"} {
			d := delivery(fmt.Sprintf("%s-%d", r, i), time.Duration(i)*time.Millisecond, i%2 == 0)
			d.Receiver = r
			if err := b.Enqueue(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Cancel("sms", "xuhui-01", "gas", 0); err != nil {
		t.Fatal(err)
	}
	got, err := q.Apply(ctx, &b)
	if err != nil || got.Queued != 2*n || got.Cancelled != n/2 {
		t.Fatalf("Apply = %+v, %v; want %d queued and %d cancelled", got, err, 2*n, n/2)
	}
	for r, want := range map[string]int{"sms": n / 2, "mail": n} {
		claimed, err := q.Claim(ctx, r, t0.Add(time.Hour), time.Minute, 2*n)
		if err != nil || len(claimed) != want {
			t.Fatalf("%s: %d claimed, %v; want %d", r, len(claimed), err, want)
		}
		for i, c := range claimed {
			if c.Err != nil || c.Message == nil || (r == "sms" && c.StopOnAccept) {
				t.Fatalf("%s: claimed %d: %+v", r, i, c)
			}
		}
	}
}

// TestUnreadableDelivery: a delivery kept in a form that cannot be read is
// claimed with its error, beside the others, rather than failing the
// claim; one kept as JSON by an earlier version still reads.
func TestUnreadableDelivery(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client
	q := New(rdb)
	for _, d := range []*Delivery{delivery("good", 0, false), delivery("broken", 0, false), delivery("legacy", 0, false)} {
		if ok, err := q.Enqueue(ctx, d); err != nil || !ok {
			t.Fatalf("Enqueue %s = %v, %v", d.ID, ok, err)
		}
	}
	if err := rdb.HSet(ctx, prefix("sms")+"d:broken", "d", "\xff\x01 not a notification").Err(); err != nil {
		t.Fatal(err)
	}
	legacy, _ := json.Marshal(delivery("legacy", 0, false))
	if err := rdb.HSet(ctx, prefix("sms")+"d:legacy", "d", legacy).Err(); err != nil {
		t.Fatal(err)
	}
	claimed, err := q.Claim(ctx, "sms", t0, time.Minute, 10)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("Claim = %d, %v; want all 3", len(claimed), err)
	}
	for _, c := range claimed {
		switch c.ID {
		case "broken":
			if c.Err == nil || !strings.Contains(c.Err.Error(), "broken") || c.Receiver != "sms" {
				t.Errorf("broken: %+v", c)
			}
		default:
			if c.Err != nil || c.Message.Case.ID != message.Sample().Case.ID || !c.Due.Equal(t0) {
				t.Errorf("%s: %+v", c.ID, c)
			}
		}
	}
}

// TestRepeated: a repeating delivery sent goes back due again with one
// more send counted and its attempts cleared, until it is cancelled.
func TestRepeated(t *testing.T) {
	ctx := context.Background()
	q := New(redistest.Start(t).Client)
	d := delivery("chase", 0, true)
	d.RepeatEvery, d.Repeats = time.Hour, 2
	if ok, err := q.Enqueue(ctx, d); err != nil || !ok {
		t.Fatalf("Enqueue = %v, %v", ok, err)
	}
	got, _ := q.Claim(ctx, "sms", t0, time.Minute, 10)
	if len(got) != 1 || got[0].Sends != 0 || got[0].RepeatEvery != time.Hour || got[0].Repeats != 2 {
		t.Fatalf("first claim: %+v", got)
	}
	if err := q.Retry(ctx, &got[0].Delivery, t0); err != nil {
		t.Fatal(err)
	}
	got, _ = q.Claim(ctx, "sms", t0, time.Minute, 10)
	if err := q.Settle(ctx, "sms", []Settlement{{Delivery: &got[0].Delivery, Outcome: Repeated, At: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if again, _ := q.Claim(ctx, "sms", t0.Add(time.Hour-time.Millisecond), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed before its repeat is due: %+v", again)
	}
	got, _ = q.Claim(ctx, "sms", t0.Add(time.Hour), time.Minute, 10)
	if len(got) != 1 || got[0].Sends != 1 || got[0].Attempts != 0 {
		t.Fatalf("the repeat: %+v, want one send before and no attempts since", got)
	}
	if err := q.Settle(ctx, "sms", []Settlement{{Delivery: &got[0].Delivery, Outcome: Repeated, At: t0.Add(2 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Cancel(ctx, "sms", "xuhui-01", "gas"); err != nil || n != 1 {
		t.Fatalf("Cancel = %d, %v", n, err)
	}
	if next, ok, _ := q.Next(ctx, "sms"); ok {
		t.Errorf("a cancelled repeat is still due at %v", next)
	}
	if ok, _ := q.Enqueue(ctx, d); ok {
		t.Error("a cancelled repeating delivery was queued again")
	}
}

// TestCancelTakesAnEarlierVersionsSet: what an earlier version kept
// chasing a part in a set (part:CASE:DEPT) is cancelled whatever the
// cancel's version, and the set goes with it.
func TestCancelTakesAnEarlierVersionsSet(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client
	q := New(rdb)
	if _, err := q.Enqueue(ctx, delivery("old", 0, false)); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, prefix("sms")+"part:xuhui-01:gas", "old").Err(); err != nil {
		t.Fatal(err)
	}
	var b Batch
	if err := b.Cancel("sms", "xuhui-01", "gas", 7); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Apply(ctx, &b); err != nil || n.Cancelled != 1 {
		t.Fatalf("Apply = %+v, %v; want the old one cancelled", n, err)
	}
	if n, _ := rdb.Exists(ctx, prefix("sms")+"part:xuhui-01:gas").Result(); n != 0 {
		t.Error("the old set is still there")
	}
}
