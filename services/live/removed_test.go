package live

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

// readUntilMarker returns what a subscriber was sent before the given
// number of markers, one line per frame, e.g. "case c1 v2" or "removed
// cases c1 v3".
func readUntilMarker(t *testing.T, ws *websocket.Conn, markers int) []string {
	t.Helper()
	var out []string
	for markers > 0 {
		f := read(t, ws)
		switch f.Type {
		case frameAlert, frameCase:
			x := f.entity(t)
			if x.ID == "marker" {
				markers--
				continue
			}
			out = append(out, fmt.Sprintf("%s %s v%d", f.Type, x.ID, f.Version))
		case frameRemoved:
			out = append(out, fmt.Sprintf("removed %s %s v%d", f.Stream, f.ID, f.Version))
		default:
			t.Fatalf("unexpected %q frame", f.Type)
		}
	}
	return out
}

func withStatus(c *cityhubv1.Case, s cityhubv1.CaseStatus) *cityhubv1.Case {
	c.Status = s
	return c
}

func resolved(a *cityhubv1.Alert) *cityhubv1.Alert {
	a.State = cityhubv1.AlertState_ALERT_STATE_RESOLVED
	return a
}

// TestRemoved moves items out of subscribers' reach in every way the
// gateway knows of and checks that each affected subscriber is told once.
func TestRemoved(t *testing.T) {
	e := newEnv(t, nil)
	const water, traffic = "water-affairs", "traffic-police"
	const openStates = `"new","dispatched","accepted","handled"`
	e.snap.cases = []*cityhubv1.Case{kase("snap", 4, "xuhui", water)}

	type subscriber struct {
		name string
		p    auth.Principal
		msg  string
		want []string
		ws   *websocket.Conn
	}
	subs := []*subscriber{
		{name: "water department", p: auth.Principal{Role: auth.RoleDepartment, Dept: water}, msg: subscribeAll, want: []string{
			"case moved v1", "removed cases moved v2", // re-dispatched to traffic; v3 stays there: nothing
			"case back v1", "removed cases back v2", "case back v3", // away and back again
			"case closing v1", "case closing v2", "case closing v3", // no states filter: the closed case itself
			"removed cases snap v5", // known from the snapshot only
			"alert a1 v1", "alert a1 v2",
		}},
		{name: "traffic department", p: auth.Principal{Role: auth.RoleDepartment, Dept: traffic}, msg: subscribeAll, want: []string{
			"case moved v2", "case moved v3",
			"case back v2", "removed cases back v3",
			"case snap v5",
		}},
		{name: "open cases only", p: auth.Principal{Role: auth.RoleCommander},
			msg: `{"type":"subscribe","streams":["alerts","cases"],"filter":{"states":[` + openStates + `,"firing"]}}`, want: []string{
				"case moved v1", "case moved v2", "case moved v3",
				"case back v1", "case back v2", "case back v3",
				"case closing v1", "removed cases closing v2",
				"case snap v5",
				"alert a1 v1", "removed alerts a1 v2",
			}},
	}
	for _, s := range subs {
		s.ws = e.dial(s.p)
		subscribe(t, s.ws, s.msg)
	}

	var msgs []kafka.Message
	add := func(m kafka.Message) { m.Key = []byte("k"); msgs = append(msgs, m) }
	dispatched, closed := cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED, cityhubv1.CaseStatus_CASE_STATUS_CLOSED
	add(e.caseMsg(kase("moved", 1, "xuhui", water)))
	add(e.caseMsg(kase("moved", 2, "xuhui", traffic)))
	add(e.caseMsg(kase("moved", 3, "xuhui", traffic)))
	add(e.caseMsg(kase("back", 1, "xuhui", water)))
	add(e.caseMsg(kase("back", 2, "xuhui", traffic)))
	add(e.caseMsg(kase("back", 3, "xuhui", water)))
	add(e.caseMsg(withStatus(kase("closing", 1, "xuhui", water), dispatched)))
	add(e.caseMsg(withStatus(kase("closing", 2, "xuhui", water), closed)))
	add(e.caseMsg(withStatus(kase("closing", 3, "xuhui", water), closed))) // a redelivery-like repeat: gone already
	add(e.caseMsg(kase("snap", 5, "xuhui", traffic)))
	add(e.alertMsg(alert("a1", 1, "xuhui", cityhubv1.Severity_SEVERITY_SEVERE, water)))
	add(e.alertMsg(resolved(alert("a1", 2, "xuhui", cityhubv1.Severity_SEVERITY_SEVERE, water))))
	add(e.caseMsg(kase("marker", 1, "xuhui", water, traffic)))
	add(e.alertMsg(alert("marker", 1, "xuhui", cityhubv1.Severity_SEVERITY_EXTREME, water, traffic)))
	e.produce(msgs...)

	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() {
			// The two topics are read independently: compare each
			// stream's frames in order.
			got := readUntilMarker(t, s.ws, 2)
			for _, alerts := range []bool{false, true} {
				if g, w := ofStream(got, alerts), ofStream(s.want, alerts); !slices.Equal(g, w) {
					t.Errorf("%s got\n  %v\nwant\n  %v", s.name, g, w)
				}
			}
		})
	}
	wg.Wait()
}

func ofStream(lines []string, alerts bool) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		isAlert := strings.HasPrefix(l, "alert ") || strings.HasPrefix(l, "removed alerts ")
		return isAlert != alerts
	})
}

// TestRemovedWhileTheSnapshotIsTaken moves items out of reach, and back,
// while a subscriber's snapshot is being read: what the snapshot shows and
// then lost must be removed, once, after it.
func TestRemovedWhileTheSnapshotIsTaken(t *testing.T) {
	e := newEnv(t, nil)
	const water, traffic = "water-affairs", "traffic-police"
	// The snapshot was read before the changes below reached Redis.
	e.snap.cases = []*cityhubv1.Case{kase("gone", 1, "xuhui", water), kase("back", 1, "xuhui", water)}
	deltas := e.g.metrics.deltas.WithLabelValues(streamCases)
	var once sync.Once
	e.snap.during = func() {
		once.Do(func() {
			before := testutil.ToFloat64(deltas)
			var msgs []kafka.Message
			for _, c := range []*cityhubv1.Case{
				kase("gone", 2, "xuhui", traffic),
				kase("back", 2, "xuhui", traffic), kase("back", 3, "xuhui", water),
				kase("never", 1, "xuhui", water), kase("never", 2, "xuhui", traffic),
			} {
				m := e.caseMsg(c)
				m.Key = []byte("k")
				msgs = append(msgs, m)
			}
			e.produce(msgs...)
			waitFor(t, "the gateway to read the changes", func() bool { return testutil.ToFloat64(deltas) >= before+float64(len(msgs)) })
		})
	}
	ws := e.dial(auth.Principal{Role: auth.RoleDepartment, Dept: water})
	send(t, ws, `{"type":"subscribe","streams":["cases"]}`)
	if f := read(t, ws); f.Type != frameSnapshot || !slices.Equal(f.ids(t), []string{"back", "gone"}) {
		t.Fatalf("got %s %v, want the snapshot [back gone]", f.Type, f.ids(t))
	}
	m := e.caseMsg(kase("marker", 1, "xuhui", water))
	m.Key = []byte("k")
	e.produce(m)
	got := readUntilMarker(t, ws, 1)
	slices.Sort(got)
	if want := []string{"case back v3", "removed cases gone v2"}; !slices.Equal(got, want) {
		t.Errorf("after the snapshot got %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(e.g.metrics.dropped); n != 1 {
		t.Errorf("dropped %v held-back deltas, want 1 (never v1, superseded by its move out of reach)", n)
	}
}
