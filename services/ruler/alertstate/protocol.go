package alertstate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The protocol between the Go side and the scripts, and between the Go side
// and Memory, which stands in for the scripts. Every argument and every
// field of a reply is named once, in the tables below (the alert's hash
// fields in record.go's columns), and the Lua that reads the arguments and
// places the reply is made from them (stepsLua, replyLua): the scripts
// only ever say u.event or h[STATE], the Go side only goes through the rows,
// and the order on the wire is the tables' order, written down nowhere
// else. Adding a field is a row here and its use in a script.
//
// Names could travel on the wire instead, as name/value pairs (restore.lua,
// which runs in a rebuild only, takes them so): on a stream of many count
// events that costs the ruler about an eighth of its throughput, tally.lua
// being most of its Redis work and every call building its tables field
// by field, so they are compiled in. TestScriptsUseTheNamedFields holds the
// scripts to the tables.

// Op codes of steps, as the scripts receive them.
const (
	opFire    = "f" // an event matched (apply.lua)
	opWindow  = "w" // an event for a count window (tally.lua)
	opClear   = "c" // a clear condition held
	opMute    = "m" // set what mutes the alert
	opExpire  = "x" // the sweep resolves the alert if its resolve_at has passed
	opPromote = "p" // the sweep fires the alert if it is pending and due
)

var ops = []string{opFire, opWindow, opClear, opMute, opExpire, opPromote}

// step is an update as the scripts take it: times and durations in Unix
// milliseconds (Redis keeps nothing finer), the body encoded, marks joined.
type step struct {
	op         string
	event      string
	time       int64
	atLeast    int64
	within     int64
	distinct   bool
	value      string
	body       []byte
	pendingFor int64
	resolveAt  int64
	severity   int64
	silenced   string
	inhibited  string
}

// arg is one named argument of a step; ops lists the op codes of the steps
// that carry it. A script reads it as u.NAME, a string; a bool is "1" or
// "0".
type arg struct {
	name  string
	ops   string
	value func(*step) any
}

var stepArgs = []arg{
	{"event", "fw", func(s *step) any { return s.event }},
	{"time", "fw", func(s *step) any { return s.time }},
	// at_least > 0 asks for a count window of within ms, which counts
	// distinct values (value, the event's) when distinct is "1".
	{"at_least", "fw", func(s *step) any { return s.atLeast }},
	{"within", "fw", func(s *step) any { return s.within }},
	{"distinct", "fw", func(s *step) any { return flag(s.distinct) }},
	{"value", "fw", func(s *step) any { return s.value }},
	{"body", "f", func(s *step) any { return s.body }},
	{"pending_for", "f", func(s *step) any { return s.pendingFor }}, // 0: fire at once
	{"resolve_at", "f", func(s *step) any { return s.resolveAt }},   // 0: never
	{"severity", "f", func(s *step) any { return s.severity }},
	{"silenced", "fm", func(s *step) any { return s.silenced }},
	{"inhibited", "fm", func(s *step) any { return s.inhibited }},
}

// header is what one call of apply.lua is given besides its steps.
type header struct {
	now    int64 // Unix ms
	maxIDs int64 // event ids an alert keeps
	ttl    int64 // ms to keep a resolved alert
}

// headerArgs names what apply.lua reads of its call as call.NAME.
var headerArgs = []struct {
	name  string
	value func(*header) any
}{
	{"now", func(h *header) any { return h.now }},
	{"max_ids", func(h *header) any { return h.maxIDs }},
	{"ttl", func(h *header) any { return h.ttl }},
}

// argsOf holds the rows of stepArgs of each op, in order.
var argsOf = func() map[string][]arg {
	m := map[string][]arg{}
	for _, op := range ops {
		m[op] = []arg{}
		for _, a := range stepArgs {
			if strings.Contains(a.ops, op) {
				m[op] = append(m[op], a)
			}
		}
	}
	return m
}()

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// appendHeader appends h's arguments.
func appendHeader(a []any, h *header) []any {
	for _, x := range headerArgs {
		a = append(a, x.value(h))
	}
	return a
}

// appendStep appends s's arguments: its op, then those of the op.
func appendStep(a []any, s *step) []any {
	a = append(a, s.op)
	for _, x := range argsOf[s.op] {
		a = append(a, x.value(s))
	}
	return a
}

// stepsLua returns the Lua that reads ARGV, as appendHeader (when header)
// and appendStep lay it out, into call (the header's arguments by name) and
// updates (each step's by name, in order).
func stepsLua(header bool) string {
	var b strings.Builder
	b.WriteString("-- Made by protocol.go from its tables.\nlocal call, updates = {}, {}\ndo\n  local argv, i = ARGV, 1\n")
	if header {
		b.WriteString("  call = {")
		for i, x := range headerArgs {
			fmt.Fprintf(&b, "%s%s = argv[%d]", sep(i), x.name, i+1)
		}
		fmt.Fprintf(&b, "}\n  i = %d\n", len(headerArgs)+1)
	}
	b.WriteString("  while i <= #argv do\n    local op = argv[i]\n    ")
	for _, op := range ops {
		fmt.Fprintf(&b, "if op == '%s' then\n      updates[#updates + 1] = {op = op", op)
		for i, x := range argsOf[op] {
			fmt.Fprintf(&b, ", %s = argv[i + %d]", x.name, i+1)
		}
		fmt.Fprintf(&b, "}\n      i = i + %d\n    else", 1+len(argsOf[op]))
	}
	b.WriteString("\n      return redis.error_reply('unknown op ' .. tostring(op))\n    end\n  end\nend\n")
	return b.String()
}

func sep(i int) string {
	if i == 0 {
		return ""
	}
	return ", "
}

// applyStep returns the step u, the i-th update, asks of apply.lua at now.
func applyStep(now time.Time, u *Update, i int) (step, error) {
	switch u.Op {
	case Fire:
		b, err := encodeBody(u.Alert)
		if err != nil {
			return step{}, fmt.Errorf("alertstate: encode alert %s: %w", u.Alert.GetId(), err)
		}
		s := windowStep(u)
		s.op, s.body = opFire, b
		if u.ResolveAfter > 0 {
			s.resolveAt = now.Add(u.ResolveAfter).UnixMilli()
		}
		s.pendingFor = u.For.Milliseconds()
		s.severity = int64(u.Alert.GetSeverity())
		s.silenced, s.inhibited = joinMarks(u.Alert.GetSilencedBy()), joinMarks(u.Alert.GetInhibitedBy())
		return s, nil
	case Resolve:
		return step{op: opClear}, nil
	case Mute:
		return step{op: opMute, silenced: joinMarks(u.Alert.GetSilencedBy()), inhibited: joinMarks(u.Alert.GetInhibitedBy())}, nil
	}
	return step{}, fmt.Errorf("alertstate: update %d: unknown op %d", i, u.Op)
}

// windowStep returns the part of a Fire update that tally.lua reads.
func windowStep(u *Update) step {
	return step{
		op: opWindow, event: u.EventID, time: u.EventTime.UnixMilli(),
		atLeast: int64(u.AtLeast), within: u.Within.Milliseconds(),
		distinct: u.CountDistinct, value: u.Distinct,
	}
}

// tallyable reports whether Tally may settle the updates idx of one alert:
// all are events for a count window or clears.
func tallyable(updates []Update, idx []int) bool {
	for _, i := range idx {
		u := &updates[i]
		if u.Op != Resolve && (u.Op != Fire || u.AtLeast <= 0) {
			return false
		}
	}
	return true
}

// tallyStep returns the step u asks of tally.lua; u is tallyable.
func tallyStep(u *Update) step {
	if u.Op == Resolve {
		return step{op: opClear}
	}
	return windowStep(u)
}

// The answers of tally.lua.
const (
	tallyDone  = "done"  // the updates did all there was to do
	tallyApply = "apply" // run the alert's updates through apply.lua
)

// reply is what apply.lua answers for the steps of one alert, and what
// Memory answers for the same.
type reply struct {
	// was and wasSeverity are the state and severity before the first
	// step; "" and 0 when there was no alert.
	was         string
	wasSeverity int64
	// changed: a step changed the alert. redelivered: a step found its
	// work done already (an event the alert or its window held, or a
	// clear, sweep or mark that changed nothing of an alert that exists).
	changed, redelivered bool
	// snapshots are the alert just before each change of state that
	// follows a change of this call, then, when the alert exists and a
	// step changed it or found its work done, as it ends up.
	snapshots []snapshot
}

// snapshot is the alert as a reply shows it.
type snapshot struct {
	rec record
	// bodyFrom is the 1-based step whose body the alert holds, when the
	// reply leaves the body out (the caller has it); 0: rec.body is it.
	bodyFrom int
	events   []string
}

// replyFields names the fields of apply.lua's reply, in order; the
// snapshots follow, each a list.
var replyFields = []struct {
	name string
	set  func(*reply, any) error
}{
	{"was", func(r *reply, v any) (err error) {
		r.was, err = text(v)
		return err
	}},
	{"was_severity", func(r *reply, v any) (err error) {
		r.wasSeverity, err = number(v)
		return err
	}},
	{"changed", func(r *reply, v any) (err error) {
		r.changed, err = boolean(v)
		return err
	}},
	{"redelivered", func(r *reply, v any) (err error) {
		r.redelivered, err = boolean(v)
		return err
	}},
}

// snapshotFields names what a snapshot holds after the alert's hash fields
// (columns), in order.
var snapshotFields = []struct {
	name string
	set  func(*snapshot, any) error
}{
	{"body_from", func(s *snapshot, v any) error {
		n, err := number(v)
		s.bodyFrom = int(n)
		return err
	}},
	{"event_ids", func(s *snapshot, v any) error { // joined by spaces: event ids hold none
		ids, err := text(v)
		if ids != "" {
			s.events = strings.Split(ids, " ")
		}
		return err
	}},
}

// replyLua returns the Lua apply.lua answers with: a constant naming the
// place of each field of the reply (WAS, ...) and of a snapshot (STATE,
// ..., BODY, BODY_FROM, EVENT_IDS), in the order decodeReply reads them,
// and read_hash(key), which returns the alert's hash fields each in its
// place (false when unset), as a snapshot holds them.
func replyLua() string {
	var names, places []string
	for i, f := range replyFields {
		names, places = append(names, strings.ToUpper(f.name)), append(places, strconv.Itoa(i+1))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- Made by protocol.go from its tables.\nlocal %s = %s\n", strings.Join(names, ", "), strings.Join(places, ", "))
	names, places = nil, nil
	for _, c := range columns {
		names = append(names, strings.ToUpper(c.name))
	}
	for _, f := range snapshotFields {
		names = append(names, strings.ToUpper(f.name))
	}
	for i := range names {
		places = append(places, strconv.Itoa(i+1))
	}
	fmt.Fprintf(&b, "local %s = %s\n", strings.Join(names, ", "), strings.Join(places, ", "))
	fmt.Fprintf(&b, "local function read_hash(key)\n  return redis.call('HMGET', key, '%s')\nend\n", strings.Join(columnNames, "', '"))
	return b.String()
}

// decodeReply reads apply.lua's reply.
func decodeReply(v []any) (reply, error) {
	var r reply
	if len(v) < len(replyFields) {
		return r, fmt.Errorf("script reply of %d items", len(v))
	}
	for i, f := range replyFields {
		if err := f.set(&r, v[i]); err != nil {
			return r, fmt.Errorf("script reply field %s: %w", f.name, err)
		}
	}
	r.snapshots = make([]snapshot, len(v)-len(replyFields))
	for k, x := range v[len(replyFields):] {
		s := &r.snapshots[k]
		fields, ok := x.([]any)
		if !ok || len(fields) != len(columns)+len(snapshotFields) {
			return r, fmt.Errorf("script reply snapshot of %T %d", x, len(fields))
		}
		for i := range columns {
			val, err := text(fields[i])
			if err == nil {
				err = s.rec.set(columns[i].name, val)
			}
			if err != nil {
				return r, fmt.Errorf("script reply field %s: %w", columns[i].name, err)
			}
		}
		for i, f := range snapshotFields {
			if err := f.set(s, fields[len(columns)+i]); err != nil {
				return r, fmt.Errorf("script reply field %s: %w", f.name, err)
			}
		}
	}
	return r, nil
}

// result turns r into the Result it describes. fired returns the Alert of
// the n-th step (1-based) of the call, whose body the store holds when a
// snapshot names it instead of carrying the body.
func (r *reply) result(fired func(n int) *cityhubv1.Alert) (Result, error) {
	res := Result{Changed: r.changed, redelivered: r.redelivered, WasSeverity: cityhubv1.Severity(r.wasSeverity)}
	if r.was != "" {
		var err error
		if res.Was, err = parseState(r.was); err != nil {
			return Result{}, err
		}
	}
	for k := range r.snapshots {
		s := &r.snapshots[k]
		var base *cityhubv1.Alert
		if s.bodyFrom > 0 {
			if fired != nil {
				base = fired(s.bodyFrom)
			}
			if base == nil {
				return Result{}, fmt.Errorf("script reply names update %d, which it was not given", s.bodyFrom)
			}
		}
		a, err := s.rec.alert(base, s.events)
		if err != nil {
			return Result{}, err
		}
		if k < len(r.snapshots)-1 {
			res.Earlier = append(res.Earlier, a)
			continue
		}
		res.Alert = a
		res.resolveAt = s.rec.resolveAt
	}
	return res, nil
}

// text reads a reply value that is a string; a Lua number comes as an
// integer, false (a hash field that is not set) as nil.
func text(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%T is no string", v)
}

func number(v any) (int64, error) {
	if n, ok := v.(int64); ok {
		return n, nil
	}
	s, err := text(v)
	if err != nil || s == "" {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

func boolean(v any) (bool, error) {
	n, err := number(v)
	return n != 0, err
}
