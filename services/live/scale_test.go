package live

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// TestScopeIsolationAtScale sends 10,000 alert and case changes across six
// departments and four districts through Kafka, the followers and the
// gateway, and counts what every subscriber reads: nothing outside its
// scope, and every change inside it.
func TestScopeIsolationAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 changes through Kafka; skipped with -short")
	}
	e := newEnv(t, func(g *Gateway) { g.queueSize = 1 << 14 }) // this test is about scope, not back-pressure
	depts := []string{"water-affairs", "traffic-police", "sanitation", "gas", "housing", "parks"}
	districts := []string{"xuhui", "pudong", "jingan", "huangpu"}
	rng := rand.New(rand.NewPCG(1, 2))

	// A fixed set of items, each with its district and departments; every
	// change bumps one item's version.
	type thing struct {
		alert    bool
		id       string
		district string
		lead     string
		assist   []string
		version  int64
	}
	var things []*thing
	for i := range 700 {
		th := &thing{alert: i%3 == 0, id: fmt.Sprintf("item-%d", i), district: districts[rng.IntN(len(districts))], lead: depts[rng.IntN(len(depts))]}
		if rng.IntN(2) == 0 {
			if a := depts[rng.IntN(len(depts))]; a != th.lead {
				th.assist = []string{a}
			}
		}
		things = append(things, th)
	}
	involves := func(th *thing, dept string) bool { return th.lead == dept || slices.Contains(th.assist, dept) }

	type subscriber struct {
		name    string
		p       auth.Principal
		sees    func(*thing) bool
		markers int
		want    map[string]bool // "alert item-3 v7"
	}
	var subs []*subscriber
	for _, d := range depts {
		subs = append(subs, &subscriber{name: d, p: auth.Principal{Role: auth.RoleDepartment, Dept: d},
			sees: func(th *thing) bool { return involves(th, d) }, markers: 2 * len(districts)})
	}
	subs = append(subs,
		&subscriber{name: "xuhui dispatcher", p: auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui"}},
			sees: func(th *thing) bool { return th.district == "xuhui" }, markers: 2},
		&subscriber{name: "commander", p: auth.Principal{Role: auth.RoleCommander},
			sees: func(*thing) bool { return true }, markers: 2 * len(districts)})

	type result struct {
		got        map[string]bool
		dups, away []string
		removed    int
	}
	results := make([]result, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		s.want = map[string]bool{}
		ws := e.dial(s.p)
		subscribe(t, ws, subscribeAll)
		wg.Go(func() {
			r := result{got: map[string]bool{}}
			defer func() { results[i] = r }()
			for markers := 0; markers < s.markers; {
				f, err := tryRead(ws, 30*time.Second)
				if err != nil {
					t.Errorf("%s: read: %v", s.name, err)
					return
				}
				if f.Type == frameRemoved {
					r.removed++
					continue
				}
				var x entity
				if err := json.Unmarshal(f.Data, &x); err != nil {
					t.Errorf("%s: %s frame: %v", s.name, f.Type, err)
					return
				}
				if x.ID == "marker" {
					markers++
					continue
				}
				th := &thing{district: x.District, lead: x.Lead, assist: x.Assist}
				if x.Dispatch != nil {
					th.lead, th.assist = x.Dispatch.Lead, x.Dispatch.Assist
				}
				key := fmt.Sprintf("%s %s v%d", f.Type, x.ID, f.Version)
				if !s.sees(th) {
					r.away = append(r.away, key)
				}
				if r.got[key] {
					r.dups = append(r.dups, key)
				}
				r.got[key] = true
			}
		})
	}

	const changes = 10_000
	var batch []kafka.Message
	flush := func() {
		e.produce(batch...)
		batch = batch[:0]
	}
	for range changes {
		th := things[rng.IntN(len(things))]
		th.version++
		var m kafka.Message
		kind := frameCase
		if th.alert {
			kind = frameAlert
			m = e.alertMsg(alert(th.id, th.version, th.district, cityhubv1.Severity_SEVERITY_SEVERE, th.lead, th.assist...))
		} else {
			m = e.caseMsg(kase(th.id, th.version, th.district, th.lead, th.assist...))
		}
		for _, s := range subs {
			if s.sees(th) {
				s.want[fmt.Sprintf("%s %s v%d", kind, th.id, th.version)] = true
			}
		}
		if batch = append(batch, m); len(batch) == 1000 {
			flush()
		}
	}
	for _, d := range districts {
		batch = append(batch,
			e.caseMsg(kase("marker", 1, d, depts[0], depts[1:]...)),
			e.alertMsg(alert("marker", 1, d, cityhubv1.Severity_SEVERITY_EXTREME, depts[0], depts[1:]...)))
	}
	flush()
	wg.Wait()

	total := 0
	for i, s := range subs {
		r := results[i]
		total += len(r.got)
		if len(r.away) > 0 {
			t.Errorf("%s read %d items outside its scope, e.g. %s", s.name, len(r.away), r.away[0])
		}
		if len(r.dups) > 0 {
			t.Errorf("%s read %d items twice, e.g. %s", s.name, len(r.dups), r.dups[0])
		}
		if r.removed > 0 {
			t.Errorf("%s got %d removed frames; no item changed scope", s.name, r.removed)
		}
		if len(r.got) != len(s.want) {
			missing := slices.Collect(func(yield func(string) bool) {
				for k := range s.want {
					if !r.got[k] && !yield(k) {
						return
					}
				}
			})
			t.Errorf("%s read %d in-scope changes, want %d; missing e.g. %v", s.name, len(r.got), len(s.want), missing[:min(3, len(missing))])
		}
	}
	if want := len(subs[len(subs)-1].want); want != changes {
		t.Errorf("the commander expected %d changes, want %d", want, changes)
	}
	t.Logf("%d changes, %d deliveries to %d subscribers", changes, total, len(subs))
}

// client is one screen in TestViewsConvergeToRedisAcrossReconnects.
type client struct {
	name string
	p    auth.Principal
	msg  string
	sees func(*cityhubv1.Case) bool
	view screen

	mu   sync.Mutex
	ws   *websocket.Conn
	done chan struct{}
}

// storeSnapshot serves cases from the real case store and no alerts.
type storeSnapshot struct{ s *casestore.Store }

func (s storeSnapshot) FiringAlerts(context.Context) ([]*cityhubv1.Alert, error) { return nil, nil }
func (s storeSnapshot) OpenCases(ctx context.Context) ([]*cityhubv1.Case, error) {
	return s.s.OpenCases(ctx)
}

// screen is what a client shows: the highest version it knows of every case,
// and whether that version is on screen.
type screen struct {
	mu       sync.Mutex
	items    map[string]viewItem
	gens     int // snapshots taken
	problems []string
}

func (v *screen) fail(problem string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.problems = append(v.problems, problem)
}

func (v *screen) troubles() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.problems)
}

func (v *screen) snapshots() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.gens
}

type viewItem struct {
	version int64
	shown   bool
}

func (v *screen) apply(f frame) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch f.Type {
	case frameSnapshot:
		v.items = map[string]viewItem{}
		v.gens++
		for _, raw := range f.Items {
			var x struct {
				ID      string `json:"id"`
				Version int64  `json:"version"`
			}
			if err := json.Unmarshal(raw, &x); err != nil {
				v.problems = append(v.problems, "snapshot item: "+err.Error())
			}
			v.items[x.ID] = viewItem{x.Version, true}
		}
	case frameCase:
		var x struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(f.Data, &x); err != nil {
			v.problems = append(v.problems, "case frame: "+err.Error())
		}
		if f.Version > v.items[x.ID].version {
			open := x.Status != "closed" && x.Status != "cancelled"
			v.items[x.ID] = viewItem{f.Version, open}
		}
	case frameRemoved:
		if f.Version > v.items[f.ID].version {
			v.items[f.ID] = viewItem{f.Version, false}
		}
	case frameReset, frameError:
		v.problems = append(v.problems, f.Type+" frame: "+f.Message)
	}
}

// shown returns the version of every case on screen.
func (v *screen) shown() map[string]int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]int64{}
	for id, it := range v.items {
		if it.shown {
			out[id] = it.version
		}
	}
	return out
}

// TestViewsConvergeToRedisAcrossReconnects keeps changing cases in a real
// Redis (and publishing each change, as dispatch does) while clients
// disconnect and subscribe again; once the writes stop, what every client
// shows must be exactly the open cases Redis holds in its scope and filter,
// each at its current version.
func TestViewsConvergeToRedisAcrossReconnects(t *testing.T) {
	rs := redistest.Start(t)
	districts := []string{"xuhui", "pudong"}
	store := casestore.New(rs.Client, districts)
	e := newEnv(t, func(g *Gateway) { g.opts.Snapshot = storeSnapshot{store} })
	depts := []string{"water-affairs", "traffic-police", "sanitation"}

	clients := []*client{
		{name: "commander", p: auth.Principal{Role: auth.RoleCommander}, msg: `{"type":"subscribe","streams":["cases"]}`,
			sees: func(*cityhubv1.Case) bool { return true }},
		{name: "water department", p: auth.Principal{Role: auth.RoleDepartment, Dept: "water-affairs"}, msg: `{"type":"subscribe","streams":["cases"]}`,
			sees: func(c *cityhubv1.Case) bool {
				return c.GetLead() == "water-affairs" || slices.Contains(c.GetAssist(), "water-affairs")
			}},
		{name: "xuhui dispatcher, early states", p: auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui"}},
			msg: `{"type":"subscribe","streams":["cases"],"filter":{"states":["new","dispatched","accepted"]}}`,
			sees: func(c *cityhubv1.Case) bool {
				return c.GetDistrict() == "xuhui" && slices.Contains([]string{"new", "dispatched", "accepted"}, c.GetStatus().Name())
			}},
	}
	clients = append(clients, &client{name: "second commander", p: clients[0].p, msg: clients[0].msg, sees: clients[0].sees},
		&client{name: "second water department", p: clients[1].p, msg: clients[1].msg, sees: clients[1].sees})

	// Each client hangs up after a moment and subscribes again, until told
	// to stay on its last connection; the writer carries on meanwhile and
	// after.
	stay := make(chan struct{})
	var controllers sync.WaitGroup
	for i, c := range clients {
		controllers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				if err := c.connect(e); err != nil {
					t.Errorf("%s: %v", c.name, err)
					return
				}
				select {
				case <-stay:
					return
				case <-time.After(time.Duration(1+rng.IntN(25)) * time.Millisecond):
				}
				c.hangUp()
			}
		})
	}
	defer func() {
		for _, c := range clients {
			c.hangUp()
		}
	}()

	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	versions := map[string]int64{}
	var ids []string
	publish := func(change *cityhubv1.CaseChange) {
		m, err := stream.Marshal(e.k.Topics.Cases, change.GetCase().GetDistrict(), change)
		if err != nil {
			t.Fatal(err)
		}
		e.produce(m)
		versions[change.GetCase().GetId()] = change.GetCase().GetVersion()
	}
	create := func() {
		now := time.Now()
		d := districts[rng.IntN(len(districts))]
		c := &cityhubv1.Case{
			Id: casestore.NewID(d, now), Version: 1, Status: cityhubv1.CaseStatus_CASE_STATUS_NEW, District: d,
			Title: "case", Origin: casestore.OriginManual, Lead: depts[rng.IntN(len(depts))],
			CreatedAt: timestamppb.New(now), UpdatedAt: timestamppb.New(now),
		}
		change, _, err := store.Create(ctx, c, &cityhubv1.AuditEntry{Version: 1, Action: "create", Actor: "test", RequestId: "create-" + c.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.GetId())
		publish(change)
	}
	update := func(id string) {
		change, err := store.Update(ctx, id, versions[id], "", func(c *cityhubv1.Case) (*cityhubv1.AuditEntry, error) {
			c.UpdatedAt = timestamppb.Now()
			switch r := rng.IntN(10); {
			case r < 4: // dispatched again, perhaps to someone else
				c.Lead, c.Assist = depts[rng.IntN(len(depts))], nil
				if a := depts[rng.IntN(len(depts))]; a != c.Lead && rng.IntN(2) == 0 {
					c.Assist = []string{a}
				}
				if c.Status == cityhubv1.CaseStatus_CASE_STATUS_NEW {
					c.Status = cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED
				}
			case r < 9: // one step along the workflow
				c.Status++
			default:
				c.Status = cityhubv1.CaseStatus_CASE_STATUS_CANCELLED
			}
			return &cityhubv1.AuditEntry{Action: "change", Actor: "test"}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !change.GetCase().GetStatus().Open() {
			ids = slices.DeleteFunc(ids, func(x string) bool { return x == id })
		}
		publish(change)
	}
	for range 30 {
		create()
	}
	// Write until every client has subscribed again a few times.
	reconnected := func() bool {
		for _, c := range clients {
			if c.view.snapshots() < 5 {
				return false
			}
		}
		return true
	}
	ops := 0
	for ; ops < 200 || !reconnected(); ops++ {
		if ops > 20_000 {
			t.Fatal("the clients did not reconnect while 20,000 changes were written")
		}
		if len(ids) < 30 || rng.IntN(8) == 0 {
			create()
		} else {
			update(ids[rng.IntN(len(ids))])
		}
	}
	close(stay)
	controllers.Wait()
	// The last connections were opened while the writer ran; now they must
	// follow a few hundred changes more on deltas alone.
	for range 200 {
		if len(ids) < 30 || rng.IntN(8) == 0 {
			create()
		} else {
			update(ids[rng.IntN(len(ids))])
		}
		ops++
	}

	open, err := store.OpenCases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		want := map[string]int64{}
		for _, x := range open {
			if c.sees(x) {
				want[x.GetId()] = x.GetVersion()
			}
		}
		var got map[string]int64
		deadline := time.Now().Add(20 * time.Second)
		for {
			if got = c.view.shown(); maps.Equal(got, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, p := range c.view.troubles() {
			t.Errorf("%s: %s", c.name, p)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s shows %d cases, Redis holds %d in its scope; differences: %s", c.name, len(got), len(want), diffViews(got, want))
		}
		t.Logf("%s: %d cases, %d snapshots", c.name, len(want), c.view.snapshots())
	}
	t.Logf("%d changes written", ops+30)
	if n := testutil.ToFloat64(e.g.metrics.resets); n != 0 {
		t.Errorf("%v clients were reset", n)
	}
}

// connect dials, subscribes and reads into the view until hangUp.
func (c *client) connect(e *env) error {
	h := http.Header{"Authorization": {"Bearer " + e.token(c.p)}}
	ws, resp, err := websocket.DefaultDialer.Dial(e.url(), h)
	if err != nil {
		return fmt.Errorf("dial: %v (%s)", err, status(resp))
	}
	_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(c.msg)); err != nil {
		ws.Close()
		return fmt.Errorf("subscribe: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			mt, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f frame
			if mt != websocket.TextMessage || json.Unmarshal(b, &f) != nil {
				c.view.fail(fmt.Sprintf("unreadable frame %q", b))
				return
			}
			c.view.apply(f)
		}
	}()
	c.mu.Lock()
	c.ws, c.done = ws, done
	c.mu.Unlock()
	return nil
}

func (c *client) hangUp() {
	c.mu.Lock()
	ws, done := c.ws, c.done
	c.ws, c.done = nil, nil
	c.mu.Unlock()
	if ws != nil {
		ws.Close()
		<-done
	}
}

func diffViews(got, want map[string]int64) string {
	var out []string
	for id, v := range want {
		if g, ok := got[id]; !ok {
			out = append(out, fmt.Sprintf("missing %s v%d", id, v))
		} else if g != v {
			out = append(out, fmt.Sprintf("%s at v%d, not v%d", id, g, v))
		}
	}
	for id, v := range got {
		if _, ok := want[id]; !ok {
			out = append(out, fmt.Sprintf("stale %s v%d", id, v))
		}
	}
	slices.Sort(out)
	return strings.Join(out[:min(len(out), 8)], "; ")
}
