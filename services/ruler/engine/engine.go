package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"
	"github.com/prometheus/client_golang/prometheus"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/ruler/fastpath"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Kind says what a Result asks of an alert.
type Kind int

const (
	// Fire means the rule's condition held: the alert fires, or an event
	// counts towards its window.
	Fire Kind = iota + 1
	// Clear means the rule's clear condition held: the alert resolves.
	Clear
	// Signal means the condition of an absent rule held: a sign of life
	// of the group, which resolves an alert the group's silence fired and
	// starts its wait again.
	Signal
)

// String returns "fire", "clear" or "signal".
func (k Kind) String() string {
	switch k {
	case Fire:
		return "fire"
	case Clear:
		return "clear"
	case Signal:
		return "signal"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Result is one rule's verdict on one event.
type Result struct {
	Kind Kind
	Rule *rulepack.Rule
	// Fingerprint is the id of the alert the result is about.
	Fingerprint string
	Labels      map[string]string
	// Title, Summary, Severity and Explanation are set for Fire and Signal
	// results.
	Title       string
	Summary     string
	Explanation []*cityhubv1.Explanation
	// Severity is the rule's severity, or that of the first of its
	// escalate steps that holds for the event.
	Severity cityhubv1.Severity
	// Distinct is the value of the rule's count.distinct field for the
	// event, when the rule counts distinct values.
	Distinct string

	rule int // Rule's index in the engine
}

// Options configures an Engine.
type Options struct {
	// Registerer receives the engine's metrics; a private registry when nil.
	Registerer prometheus.Registerer
}

// Engine holds compiled rules, indexed by the event types they can match.
// It is safe for concurrent use through Workers.
type Engine struct {
	packs []*rulepack.Pack
	rules []*rulepack.Rule
	// candidates lists, per event type, the rules (by index) whose
	// condition or clear condition may hold for it, in rule order;
	// anyType lists those that name no type.
	candidates map[string][]int
	anyType    []int
	metrics    *metrics
	// fast holds the programs Workers run for conditions and clear
	// conditions, by rule index.
	fast *fastpath.Conditions
}

// New returns an engine for the rules of packs, which must be compiled.
func New(packs []*rulepack.Pack, opts Options) (*Engine, error) {
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	e := &Engine{packs: packs, rules: rulepack.Rules(packs), candidates: map[string][]int{}}
	for _, r := range e.rules {
		if r.Program == nil {
			return nil, fmt.Errorf("engine: rule %s is not compiled", r.Name())
		}
	}
	// A rule is a candidate for type t when its condition or its clear
	// condition can hold for t.
	typed := map[string]bool{}
	for _, r := range e.rules {
		for _, t := range ruleTypes(r) {
			typed[t] = true
		}
	}
	for i, r := range e.rules {
		types := ruleTypes(r)
		if types == nil {
			e.anyType = append(e.anyType, i)
			for t := range typed {
				e.candidates[t] = append(e.candidates[t], i)
			}
			continue
		}
		for _, t := range types {
			e.candidates[t] = append(e.candidates[t], i)
		}
	}
	e.fast = fastpath.Compile(e.rules)
	e.metrics = newMetrics(opts.Registerer, e.rules)
	return e, nil
}

// ruleTypes returns the types a rule can act on, nil for any.
func ruleTypes(r *rulepack.Rule) []string {
	if r.Types == nil || (r.ClearProgram != nil && r.ClearTypes == nil) {
		return nil
	}
	// Each type once, or the rule would be evaluated twice per event.
	types := append(append([]string(nil), r.Types...), r.ClearTypes...)
	slices.Sort(types)
	return slices.Compact(types)
}

// Rules returns the engine's rules in evaluation order.
func (e *Engine) Rules() []*rulepack.Rule { return e.rules }

// Packs returns the packs the engine was built from, for their silences
// and inhibit rules.
func (e *Engine) Packs() []*rulepack.Pack { return e.packs }

// Worker evaluates events for one goroutine at a time.
type Worker struct {
	e  *Engine
	vm vm.VM
	// env is filled for the current event only on demand (fill): after a
	// condition holds it is always filled.
	env  rulepack.Env
	fast *fastpath.Runner
	// cur is the event being evaluated; filled reports whether env holds
	// it yet.
	cur    *cityhubv1.Event
	filled bool
}

// NewWorker returns a Worker. A Worker is not safe for concurrent use;
// give each goroutine its own.
func (e *Engine) NewWorker() *Worker {
	w := &Worker{e: e}
	w.vm.MemoryBudget = rulepack.MemoryBudget
	w.fast = e.fast.NewRunner(&w.vm, &w.env)
	return w
}

// Eval evaluates ev against every candidate rule that sees it (see
// rulepack.Rule.Sees) and appends a Result to out for each condition that
// holds, clear results before fire results of the same rule. A rule whose
// evaluation fails is counted in cityhub_ruler_rule_errors_total and
// skipped; the other rules still see the event.
func (w *Worker) Eval(ev *cityhubv1.Event, out []Result) []Result {
	n := len(out)
	out = w.Match(ev, out)
	for i := n; i < len(out); i++ {
		if out[i].Kind != Clear {
			w.describe(&out[i])
		}
	}
	return out
}

// Match is Eval without the description of Fire results: their Title,
// Summary and Explanation are left empty and their Severity is the rule's
// until Describe fills them in. Most events a count rule matches only add
// to a window that does not fill, and need no description.
func (w *Worker) Match(ev *cityhubv1.Event, out []Result) []Result {
	w.begin(ev)
	idx, ok := w.e.candidates[ev.GetType()]
	if !ok {
		idx = w.e.anyType
	}
	for _, i := range idx {
		r := w.e.rules[i]
		if !r.Sees(ev) {
			// Outside the rule's active time: not a match, not a clear,
			// not a sign of life.
			continue
		}
		m := w.e.metrics.rules[i]
		if p := w.e.fast.Clear(i); p != nil && w.holdsDirect(p, m) {
			labels := w.labels(r)
			out = append(out, Result{Kind: Clear, Rule: r, Fingerprint: Fingerprint(r.Name(), labels), Labels: labels, rule: i})
			m.clears.Inc()
		}
		if w.holdsDirect(w.e.fast.When(i), m) {
			labels := w.labels(r)
			kind := Fire
			if r.Absent != nil {
				kind = Signal
			}
			res := Result{
				Kind:        kind,
				Rule:        r,
				Fingerprint: Fingerprint(r.Name(), labels),
				Labels:      labels,
				Severity:    r.Severity,
				rule:        i,
			}
			if r.Count != nil && r.Count.Distinct != "" {
				res.Distinct = w.env.Value(r.Count.Distinct)
			}
			out = append(out, res)
			m.matches.Inc()
		}
	}
	return out
}

// Describe fills in the description of res, a Fire or Signal result Match
// gave for ev (a signal is described as the alert its group's silence
// would fire): its Title, Summary, Explanation and the Severity of the first of its
// rule's escalate steps that holds.
func (w *Worker) Describe(ev *cityhubv1.Event, res *Result) {
	if res.Kind == Clear || res.Rule == nil {
		return
	}
	if w.cur != ev {
		w.begin(ev)
	}
	w.fill()
	w.describe(res)
}

// begin starts the evaluation of ev. The worker's rulepack.Env is filled
// later, and only when a program or a Result needs it.
func (w *Worker) begin(ev *cityhubv1.Event) {
	w.cur = ev
	w.filled = false
	w.fast.Begin(ev)
}

// fill fills the worker's rulepack.Env with the current event, once.
func (w *Worker) fill() {
	if !w.filled {
		w.env.Reset(w.cur)
		w.filled = true
	}
}

// holdsDirect runs p on the current event. When it holds, the worker's
// rulepack.Env is filled, so everything that builds a Result may read it.
func (w *Worker) holdsDirect(p *fastpath.Program, m *ruleMetrics) bool {
	ok := w.verdict(p, m)
	if ok {
		w.fill()
	}
	return ok
}

// verdict runs p on the current event: the stateless path. For a program
// that does not need the environment it allocates nothing.
func (w *Worker) verdict(p *fastpath.Program, m *ruleMetrics) bool {
	if p.NeedsEnv() {
		w.fill()
	}
	ok, err := w.fast.Run(p)
	if err != nil {
		m.errors.Inc()
	}
	return ok
}

// describe describes res for the current event, whose environment is
// filled.
func (w *Worker) describe(res *Result) {
	r := res.Rule
	m := w.e.metrics.rules[res.rule]
	res.Title = w.title(r, res.Labels, m)
	res.Severity = r.Severity
	res.Explanation = w.explain(r)
	if r.SummaryTemplate != nil {
		// A summary that fails to render is left out; the title stands.
		if s, err := r.SummaryTemplate.Execute(w.env.TemplateData(res.Labels)); err == nil {
			res.Summary = s
		} else {
			m.titleErrors.Inc()
		}
	}
	for i, st := range r.Escalate {
		if w.holds(st.Program, m) {
			res.Severity = st.Severity
			res.Explanation = append(res.Explanation, &cityhubv1.Explanation{
				Expr: fmt.Sprintf("escalate[%d]: %s", i, st.When), Value: "true → " + st.Severity.Name(),
			})
			break
		}
	}
}

func (w *Worker) holds(p *vm.Program, m *ruleMetrics) bool {
	v, err := w.vm.Run(p, &w.env)
	if err != nil {
		m.errors.Inc()
		return false
	}
	b, ok := v.(bool)
	return ok && b
}

func (w *Worker) labels(r *rulepack.Rule) map[string]string {
	labels := make(map[string]string, len(r.GroupBy))
	for _, l := range r.GroupBy {
		labels[l] = w.env.Label(l)
	}
	return labels
}

// title renders the rule's title; a failing template falls back to the
// rule's name so that the alert is never lost.
func (w *Worker) title(r *rulepack.Rule, labels map[string]string, m *ruleMetrics) string {
	if r.TitleTemplate == nil {
		if r.Description != "" {
			return r.Description
		}
		return r.Name()
	}
	s, err := r.TitleTemplate.Execute(w.env.TemplateData(labels))
	if err != nil || strings.TrimSpace(s) == "" {
		m.titleErrors.Inc()
		return r.Name()
	}
	return s
}

// MaxExplainedValue bounds the text of one explained value.
const MaxExplainedValue = 256

// explain returns the condition and the values of its leaves for the
// current event: each comparison's operands, then the comparison's own
// value, so that a reader sees event.attrs.water_depth_cm = 35 and then
// event.attrs.water_depth_cm >= 30 = true.
func (w *Worker) explain(r *rulepack.Rule) []*cityhubv1.Explanation {
	out := make([]*cityhubv1.Explanation, 0, 1+len(r.Operands))
	out = append(out, &cityhubv1.Explanation{Expr: r.When, Value: "true"})
	for _, op := range r.Operands {
		v, err := w.vm.Run(op.Program, &w.env)
		if err != nil {
			continue
		}
		out = append(out, &cityhubv1.Explanation{Expr: op.Source, Value: formatValue(v)})
	}
	return out
}

func formatValue(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		s = "nil"
	case string:
		s = fmt.Sprintf("%q", v)
	case float64:
		s = fmt.Sprint(v)
	default:
		s = fmt.Sprint(v)
	}
	if len(s) > MaxExplainedValue {
		s = s[:MaxExplainedValue] + "…"
	}
	return s
}

type metrics struct {
	rules []*ruleMetrics
}

type ruleMetrics struct {
	matches, clears, errors, titleErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, rules []*rulepack.Rule) *metrics {
	matches := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cityhub_ruler_rule_matches_total",
		Help: "Events for which a rule's condition held, by rule.",
	}, []string{"rule"}))
	clears := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cityhub_ruler_rule_clears_total",
		Help: "Events for which a rule's clear condition held, by rule.",
	}, []string{"rule"}))
	errs := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cityhub_ruler_rule_errors_total",
		Help: "Evaluations of a rule's condition that failed at run time, by rule; the event still reaches the other rules.",
	}, []string{"rule"}))
	titles := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cityhub_ruler_rule_title_errors_total",
		Help: "Titles that failed to render and fell back to the rule's name, and summaries that failed to render and were left out, by rule.",
	}, []string{"rule"}))
	m := &metrics{}
	for _, r := range rules {
		n := r.Name()
		m.rules = append(m.rules, &ruleMetrics{
			matches:     matches.WithLabelValues(n),
			clears:      clears.WithLabelValues(n),
			errors:      errs.WithLabelValues(n),
			titleErrors: titles.WithLabelValues(n),
		})
	}
	return m
}

// register registers c on reg, or returns the collector of the same
// description already there: a reload builds a new engine on the same
// registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // two metrics of one name and different shapes: a programming error
	}
	return c
}
