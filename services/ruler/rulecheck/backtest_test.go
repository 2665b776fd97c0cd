package rulecheck

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/kafkatest"
	"github.com/cityhub/cityhub/services/platform/stream"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

var shanghai = time.FixedZone("CST", 8*3600)

func at(hh, mm int) time.Time { return time.Date(2025, 7, 1, hh, mm, 0, 0, shanghai) }

// TestBacktestFromKafka records events on a Kafka topic (kfake over TCP),
// some outside the window and one that is not an event at all, and
// replays the window through a new pack against a baseline: the diff
// shows the alert the edit adds and the one whose severity it changes.
func TestBacktestFromKafka(t *testing.T) {
	k := kafkatest.Start(t)
	type rec struct {
		id, district, street string
		depth                float64
		at                   time.Time
	}
	var msgs []kafka.Message
	for _, r := range []rec{
		{"before", "xuhui", "huashan-road", 50, at(7, 50)},
		{"e1", "xuhui", "tianping", 40, at(8, 0)},
		{"e2", "jingan", "yanan-road", 20, at(8, 10)},
		{"e3", "xuhui", "tianping", 35, at(8, 20)},
		{"not an event", "xuhui", "", 0, at(8, 30)},
		{"after", "pudong", "century-avenue", 60, at(10, 30)},
	} {
		if r.id == "not an event" {
			// Kafka orders a partition by offset, not by time: this comes
			// before "after" so that the window's end offset lies past it.
			msgs = append(msgs, kafka.Message{Key: []byte(r.district), Value: []byte("not an event"), Time: r.at,
				Headers: []kafka.Header{{Key: stream.ContentTypeHeader, Value: []byte("text/plain")}}})
			continue
		}
		ev := &cityhubv1.Event{
			Id: r.id, Source: "iot", Type: "waterlogging", OccurredAt: timestamppb.New(r.at), ReceivedAt: timestamppb.New(r.at),
			Location: &cityhubv1.Location{District: r.district, Street: r.street},
			Attrs:    &structpb.Struct{Fields: map[string]*structpb.Value{"water_depth_cm": structpb.NewNumberValue(r.depth)}},
		}
		m, err := stream.Marshal("", r.district, ev)
		if err != nil {
			t.Fatal(err)
		}
		m.Time = r.at
		msgs = append(msgs, m)
	}
	w := &kafka.Writer{
		Addr: kafka.TCP(k.Brokers...), Topic: k.Topics.Events, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, Transport: &kafka.Transport{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Transport.(*kafka.Transport).CloseIdleConnections()

	code, out, errOut := run(t, "backtest", "--kafka", strings.Join(k.Brokers, ","), "--topic", k.Topics.Events,
		"--from", at(8, 0).Format(time.RFC3339), "--to", at(10, 0).Format(time.RFC3339),
		"--pack", "testdata/backtest/new.yaml", "--baseline", "testdata/backtest/old.yaml", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "skipped 1 of 4 messages that are not events") {
		t.Errorf("stderr: %s", errOut)
	}
	var rep BacktestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Events != 3 {
		t.Errorf("replayed %d events, want the 3 inside the window", rep.Events)
	}
	if len(rep.Diff) != 2 {
		t.Fatalf("diff:\n%s", out)
	}
	changed, added := rep.Diff[0], rep.Diff[1]
	if changed.Kind != Changed || changed.Episode.Rule != "water/deep" || changed.Episode.Severity != "extreme" ||
		changed.Baseline.Severity != "severe" || !changed.Episode.Start.Equal(at(8, 0)) || !changed.Episode.End.Equal(at(9, 20)) {
		t.Errorf("changed = %+v", changed)
	}
	if added.Kind != Added || added.Episode.Rule != "water/shallow" || added.Episode.Labels["street"] != "yanan-road" ||
		!added.Episode.End.Equal(at(9, 10)) {
		t.Errorf("added = %+v", added)
	}
}

func TestDiff(t *testing.T) {
	ep := func(fp string, start, end time.Time, sev string) Episode {
		return Episode{Fingerprint: fp, Rule: "p/" + fp, Start: start, End: end, Severity: sev}
	}
	var never time.Time
	old := []Episode{
		ep("a", at(8, 0), at(9, 0), "minor"),
		ep("b", at(8, 0), at(8, 30), "severe"),
		ep("b", at(10, 0), never, "severe"),
		ep("c", at(8, 0), at(9, 0), "minor"),
	}
	cur := []Episode{
		ep("a", at(8, 0), at(9, 0), "minor"),    // unchanged
		ep("b", at(8, 10), at(8, 30), "severe"), // fires later
		ep("c", at(8, 0), at(9, 0), "moderate"), // more severe
		ep("d", at(11, 0), never, "extreme"),    // new
	}
	var got []string
	for _, d := range Diff(old, cur) {
		got = append(got, string(d.Kind)+" "+d.Episode.Fingerprint+" "+d.Episode.Start.Format("15:04"))
	}
	want := "changed c 08:00,changed b 08:10,removed b 10:00,added d 11:00"
	if strings.Join(got, ",") != want {
		t.Errorf("Diff = %s\nwant   %s", strings.Join(got, ","), want)
	}
}

// TestReplayFollowsEventTime checks that a pending alert fires when its
// `for` runs out and resolves when its resolve_after does, at those very
// moments, although no event comes then.
func TestReplayFollowsEventTime(t *testing.T) {
	doc := `pack: p
owner: water-affairs
rules:
  - id: slow
    when: event.type == "waterlogging"
    severity: minor
    group_by: [district]
    for: 10m
    resolve_after: 1h
`
	dir := t.TempDir()
	path := dir + "/p.yaml"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	packs, err := rulepack.LoadFiles(testCatalog(t), path)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string, when time.Time) *cityhubv1.Event {
		return &cityhubv1.Event{Id: id, Source: "iot", Type: "waterlogging", OccurredAt: timestamppb.New(when),
			Location: &cityhubv1.Location{District: "xuhui"}}
	}
	// Out of order on purpose: the replay sorts by occurred_at.
	events := []*cityhubv1.Event{ev("b", at(8, 5)), ev("a", at(8, 0)), ev("c", at(8, 12))}
	changes, err := Replay(context.Background(), packs, nil, events, at(12, 0))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.At.In(shanghai).Format("15:04")+" "+c.State)
	}
	if want := "08:00 pending,08:10 firing,09:12 resolved"; strings.Join(got, ",") != want {
		t.Errorf("changes = %s, want %s", strings.Join(got, ","), want)
	}
}

// TestReplayHonoursSilencesSetAtRunTime replays under a silence as GET
// /v1/silences lists it: the alert that fires under it is muted, and
// unmuted the moment the silence ends, with no event then.
func TestReplayHonoursSilencesSetAtRunTime(t *testing.T) {
	doc := `pack: p
owner: water-affairs
rules:
  - id: deep
    when: event.type == "waterlogging"
    severity: severe
    group_by: [district]
`
	dir := t.TempDir()
	path := dir + "/p.yaml"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	silences := dir + "/silences.json"
	list := `{"items": [
	  {"id": "S-1", "source": "api", "matchers": {"rule": ["p/deep"], "district": ["xuhui"]},
	   "starts_at": "` + at(8, 0).Format(time.RFC3339) + `", "ends_at": "` + at(9, 0).Format(time.RFC3339) + `", "comment": "pumps"},
	  {"id": "night-works", "source": "pack", "matchers": {"district": ["xuhui"]},
	   "starts_at": "` + at(8, 0).Format(time.RFC3339) + `", "ends_at": "` + at(12, 0).Format(time.RFC3339) + `"}]}`
	if err := os.WriteFile(silences, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime, err := readSilences(silences)
	if err != nil || len(runtime) != 1 {
		t.Fatalf("readSilences = %v, %v; want the one set at run time", runtime, err)
	}
	packs, err := rulepack.LoadFiles(testCatalog(t), path)
	if err != nil {
		t.Fatal(err)
	}
	ev := &cityhubv1.Event{Id: "a", Source: "iot", Type: "waterlogging", OccurredAt: timestamppb.New(at(8, 30)),
		Location: &cityhubv1.Location{District: "xuhui"}}
	changes, err := Replay(context.Background(), packs, runtime, []*cityhubv1.Event{ev}, at(10, 0))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, fmt.Sprintf("%s %s %v", c.At.In(shanghai).Format("15:04"), c.State, c.SilencedBy))
	}
	if want := "08:30 firing [S-1],09:00 firing []"; strings.Join(got, ",") != want {
		t.Errorf("changes = %s, want %s", strings.Join(got, ","), want)
	}
}
