package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// benchSizes are the rule counts the engine is measured at.
var benchSizes = []int{10, 100, 1000}

const benchEvents = 1024

// naive evaluates events the way a ruler without an engine would: every
// rule's compiled programs on every event, through expr.Run (a new VM per
// run), with the event's environment built afresh for each event. It
// returns how many conditions held, which must equal what Engine finds.
type naive struct {
	rules []*rulepack.Rule
}

func (n naive) eval(ev *cityhubv1.Event) int {
	var env rulepack.Env
	env.Reset(ev)
	held := 0
	for _, r := range n.rules {
		if r.ClearProgram != nil {
			if v, err := expr.Run(r.ClearProgram, &env); err == nil && v == true {
				held++
			}
		}
		if v, err := expr.Run(r.Program, &env); err == nil && v == true {
			held++
		}
	}
	return held
}

type workload struct {
	engine *Engine
	naive  naive
	events []*cityhubv1.Event
}

func newWorkload(b *testing.B, rules int) workload {
	b.Helper()
	cat := loadCatalog(b)
	packs := genPacks(b, cat, rules, 1)
	e, err := New(packs, Options{})
	if err != nil {
		b.Fatal(err)
	}
	wl := workload{engine: e, naive: naive{rules: rulepack.Rules(packs)}, events: genEvents(cat, benchEvents, 2)}
	// Both ways must find the same verdicts, or the comparison means
	// nothing.
	w, out := e.NewWorker(), []Result(nil)
	for _, ev := range wl.events {
		out = w.Eval(ev, out[:0])
		if got, want := len(out), wl.naive.eval(ev); got != want {
			b.Fatalf("event %s: engine found %d verdicts, naive %d", ev.GetId(), got, want)
		}
	}
	return wl
}

// BenchmarkEngine measures Engine on generated packs of 10, 100 and 1000
// rules, and in the same run the naive evaluation of the same events
// against the same rules, reporting how many times faster the engine is
// (x-faster). allocs/event counts every allocation, those of building the
// Results of matching events included; allocs/nomatch-event those of an
// event no rule matches.
func BenchmarkEngine(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			wl := newWorkload(b, n)
			w := wl.engine.NewWorker()
			out := make([]Result, 0, 8)
			verdicts := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				out = w.Eval(wl.events[i%len(wl.events)], out[:0])
				verdicts += len(out)
			}
			b.StopTimer()
			engineNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)

			// The baseline, over every event once, in this process.
			start := time.Now()
			for _, ev := range wl.events {
				wl.naive.eval(ev)
			}
			naiveNs := float64(time.Since(start).Nanoseconds()) / float64(len(wl.events))

			b.ReportMetric(engineNs, "ns/event")
			b.ReportMetric(eventAllocs(w, wl.events), "allocs/event")
			b.ReportMetric(naiveNs, "naive-ns/event")
			b.ReportMetric(naiveNs/engineNs, "x-faster")
			b.ReportMetric(float64(verdicts)/float64(b.N), "verdicts/event")
			b.ReportMetric(nomatchAllocs(w, wl.events), "allocs/nomatch-event")
		})
	}
}

// BenchmarkNaive is the baseline of BenchmarkEngine on its own.
func BenchmarkNaive(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			wl := newWorkload(b, n)
			verdicts := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				verdicts += wl.naive.eval(wl.events[i%len(wl.events)])
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
			b.ReportMetric(float64(verdicts)/float64(b.N), "verdicts/event")
		})
	}
}

// eventAllocs returns the allocations of evaluating every event once, per
// event.
func eventAllocs(w *Worker, events []*cityhubv1.Event) float64 {
	i := 0
	out := make([]Result, 0, 8)
	return testing.AllocsPerRun(len(events), func() {
		out = w.Eval(events[i%len(events)], out[:0])
		i++
	})
}

// nomatchAllocs returns the allocations of evaluating the events that
// match no rule, per event.
func nomatchAllocs(w *Worker, events []*cityhubv1.Event) float64 {
	var quiet []*cityhubv1.Event
	for _, ev := range events {
		if len(w.Eval(ev, nil)) == 0 {
			quiet = append(quiet, ev)
		}
	}
	i := 0
	out := make([]Result, 0, 8)
	return testing.AllocsPerRun(len(quiet), func() {
		out = w.Eval(quiet[i%len(quiet)], out[:0])
		i++
	})
}
