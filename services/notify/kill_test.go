package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/durationpb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/notify/receiver"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// workOrders is a department's system: it verifies each delivery and
// counts every notification a delivery carries (a grouped message carries
// several), by case and change.
type workOrders struct {
	secret []byte
	mu     sync.Mutex
	got    map[string]int
}

func (wo *workOrders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !receiver.Verify(wo.secret, r.Header.Get(receiver.SignatureHeader), r.Header.Get(receiver.TimestampHeader), body, time.Now(), 5*time.Minute) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ce struct {
		Data struct {
			Change string          `json:"change"`
			Case   *message.Case   `json:"case"`
			More   []message.Brief `json:"more"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ce); err != nil || ce.Data.Case == nil {
		http.Error(w, "not a case event", http.StatusBadRequest)
		return
	}
	time.Sleep(100 * time.Millisecond) // a system that takes its time
	wo.mu.Lock()
	defer wo.mu.Unlock()
	wo.got[ce.Data.Case.ID+"|"+ce.Data.Change]++
	for _, b := range ce.Data.More {
		wo.got[b.CaseID+"|"+b.Change]++
	}
}

func (wo *workOrders) counts() (distinct, total int, twice []string) {
	wo.mu.Lock()
	defer wo.mu.Unlock()
	for k, n := range wo.got {
		distinct++
		total += n
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s ×%d", k, n))
		}
	}
	sort.Strings(twice)
	return distinct, total, twice
}

// The notify service stopped at random moments ten times — while case
// changes are being decided, queued and delivered — and started again on
// the same Kafka and Redis: every notification reaches the department's
// system, and none twice.
func TestKilledMidBatchLosesNothingAndSendsNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the service ten times")
	}
	const lives, perLife = 11, 40
	k := kafkatest.Start(t)
	rdb := redistest.Start(t).Client
	cat, err := catalog.Load("../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wo := &workOrders{secret: []byte("work-order-secret"), got: map[string]int{}}
	srv := httptest.NewServer(wo)
	defer srv.Close()
	cfg, err := config.Parse("notify.yaml", fmt.Appendf(nil, `
defaults: {group_wait: 20ms, group_interval: 20ms}
receivers:
  - name: gas-system
    webhook: {url: %q, secret: work-order-secret}
    parallel: 4
routes:
  receivers: [gas-system]
`, srv.URL), cat)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(stream.WriterOptions{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	group := kafkatest.Group("kill") + "-"
	// What the department's system must get: each notification the
	// changes decide, that is due now (not the repeats due in hours).
	decider := NewDecider(cfg, cat, holidays{}, cat.WorkCalendar().Location(), nil, "https://hub.example")
	want := map[string]bool{}
	now := time.Now()
	change := func(i int) *cityhubv1.CaseChange {
		c := &cityhubv1.Case{Id: fmt.Sprintf("xuhui-kill%04d", i), District: "xuhui", Title: fmt.Sprintf("燃气泄漏 %d", i), EventType: "gas_leak"}
		spec := &cityhubv1.DispatchSpec{Lead: "gas", Sla: &cityhubv1.Sla{Accept: durationpb.New(10 * time.Minute), Handle: durationpb.New(2 * time.Hour)}}
		entry, err := lifecycle.New(c, spec, lifecycle.Actor{Subject: "rule:gas/leak", Role: lifecycle.RoleSystem}, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		cc := &cityhubv1.CaseChange{Case: c, Change: entry}
		for _, n := range decider.Case(cc).Notifications {
			if n.GetDue().AsTime().Before(now.Add(time.Minute)) {
				var m message.Message
				if err := json.Unmarshal(n.GetMessage(), &m); err != nil {
					t.Fatal(err)
				}
				want[n.GetCaseId()+"|"+m.Change] = true
			}
		}
		return cc
	}

	rnd := rand.New(rand.NewPCG(1, 2))
	behind := 0 // lives stopped before the system had everything decided so far
	for life := range lives {
		svc, err := New(Options{
			Brokers: k.Brokers, Topics: k.Topics, GroupPrefix: group, Redis: rdb, Writer: w,
			Config: cfg, Catalog: cat, Calendar: holidays{}, BaseURL: "https://hub.example",
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- svc.Run(ctx) }()
		msgs := make([]kafka.Message, 0, perLife)
		for i := range perLife {
			cc := change(life*perLife + i)
			m, err := stream.Marshal(k.Topics.Cases, "xuhui", cc)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		if err := w.Write(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		if life < lives-1 {
			// Stopped while its batches are in flight.
			time.Sleep(time.Duration(30+rnd.IntN(220)) * time.Millisecond)
		} else {
			deadline := time.Now().Add(90 * time.Second)
			for {
				if d, _, _ := wo.counts(); d >= len(want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second) // anything sent twice has had time to come
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatalf("life %d: Run = %v", life, err)
		}
		d, total, _ := wo.counts()
		t.Logf("life %d: %d of the %d notifications decided so far taken, %d deliveries", life, d, len(want), total)
		if d < len(want) {
			behind++
		}
	}
	if behind < lives/2 {
		t.Errorf("only %d of %d lives ended with work in flight: the test does not stop the service mid-batch", behind, lives)
	}
	distinct, total, twice := wo.counts()
	if distinct != len(want) {
		var lost []string
		wo.mu.Lock()
		for k := range want {
			if wo.got[k] == 0 {
				lost = append(lost, k)
			}
		}
		wo.mu.Unlock()
		sort.Strings(lost)
		t.Errorf("%d of %d notifications reached the system; lost: %v", distinct, len(want), lost)
	}
	if len(twice) > 0 {
		t.Errorf("%d notifications sent twice or more (%d deliveries in all): %v", len(twice), total, twice)
	}
}
