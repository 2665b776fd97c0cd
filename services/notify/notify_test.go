package notify

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// From a case change on city.cases.v1 to messages in the inbox, through
// the outbox topic and the Redis queue, on kfake over TCP and a real
// redis-server; and an accept on the topic stops what chases the part.
func TestChangesBecomeMessages(t *testing.T) {
	k := kafkatest.Start(t)
	rdb := redistest.Start(t).Client
	cat, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("../../rules/notify.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	inbox := receiver.NewInbox(100)
	svc, err := New(Options{
		Brokers: k.Brokers, Topics: k.Topics, GroupPrefix: kafkatest.Group("t") + "-", Redis: rdb, Writer: w,
		Config: cfg, Catalog: cat, Calendar: holidays{}, BaseURL: "https://hub.example", Inbox: inbox, Dev: true,
		AckKey: []byte("0123456789abcdef0123456789abcdef"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	// A gas leak dispatched now.
	now := time.Now()
	c := &cityhubv1.Case{Id: "xuhui-01k0gas", District: "xuhui", Title: "燃气泄漏 天平路", EventType: "gas_leak"}
	spec := &cityhubv1.DispatchSpec{Lead: "gas", Sla: &cityhubv1.Sla{Accept: durationpb.New(10 * time.Minute), Handle: durationpb.New(2 * time.Hour)}}
	entry, err := lifecycle.New(c, spec, lifecycle.Actor{Subject: "rule:gas/leak", Role: lifecycle.RoleSystem}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(cc *cityhubv1.CaseChange) {
		m, err := stream.Marshal(k.Topics.Cases, cc.GetCase().GetDistrict(), cc)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish(&cityhubv1.CaseChange{Case: c, Change: entry})
	// The person on duty is paged at once, by SMS and in the duty room's group.
	var paged []string
	deadline := time.Now().Add(30 * time.Second)
	for len(paged) < 2 && time.Now().Before(deadline) {
		paged = paged[:0]
		for _, it := range inbox.Items() {
			if it.Person != "" {
				paged = append(paged, it.Receiver)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(paged) != 2 {
		t.Fatalf("paged through %v", paged)
	}
	item := inbox.Items()[0]
	if !strings.Contains(item.Title, "燃气泄漏") || !strings.HasPrefix(item.AckURL, "https://hub.example/ack/ey") || item.CaseID != "xuhui-01k0gas" {
		t.Errorf("inbox item %+v", item)
	}
	// Accepted: the next steps (5 and 8 minutes on) and the repeats are dropped.
	if next, ok, _ := svc.queue.Next(ctx, "sms"); !ok || next.Before(now.Add(4*time.Minute)) {
		t.Fatalf("the ladder's next SMS is due at %v (%v), want five minutes on", next, ok)
	}
	e, err := lifecycle.Apply(c, lifecycle.Request{Action: lifecycle.Accept}, lifecycle.Actor{Subject: "li-na", Role: auth.RoleDepartment, Dept: "gas"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c.Version++ // as the case store numbers a change
	e.Version = c.GetVersion()
	publish(&cityhubv1.CaseChange{Case: c, Change: e})
	deadline = time.Now().Add(30 * time.Second)
	for {
		next, ok, err := svc.queue.Next(ctx, "sms")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an SMS is still queued for %v after the part was accepted", next)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Whatever reached the inbox was on the outbox, keyed by its case, and
	// so is the accept's cancel.
	want := map[string]bool{}
	for _, it := range inbox.Items() {
		want[it.ID] = true
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, GroupID: kafkatest.Group("outbox"), Topic: k.Topics.Notifications,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	cancelled := false
	for len(want) > 0 || !cancelled {
		m, err := r.FetchMessage(rctx)
		if err != nil {
			t.Fatalf("the outbox lacks %v (the cancel seen: %v): %v", slices.Collect(maps.Keys(want)), cancelled, err)
		}
		var n cityhubv1.Notification
		if err := stream.Unmarshal(m, &n); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != c.GetId() {
			t.Errorf("an outbox message keyed %q, want the case id", m.Key)
		}
		delete(want, n.GetId())
		cancelled = cancelled || (n.GetCancel() && n.GetDepartment() == "gas")
	}
}
