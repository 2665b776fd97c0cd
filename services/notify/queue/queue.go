// Package queue keeps the deliveries waiting for each receiver in Redis:
// durable, due at a time, claimed under a lease by one worker at a time,
// retried, cancelled when the part they chase is accepted, and remembered
// once done so that a redelivered outbox message never notifies twice.
//
// Every key of a receiver carries the receiver's name as its hash tag, so
// each script touches one slot and runs unchanged on Redis Cluster:
//
//	cityhub:notify:{R}:due            deliveries by when they are due (Unix ms)
//	cityhub:notify:{R}:leases         claimed deliveries by when their lease ends
//	cityhub:notify:{R}:d:ID           a delivery: field d (a cityhub.v1.Notification in
//	                                  protobuf, as the outbox carries it), field a (attempts)
//	cityhub:notify:{R}:done:ID        a delivery that is done, for DoneTTL
//	cityhub:notify:{R}:chase:CASE:DEPT the deliveries chasing one part of a case, by
//	                                  the version of the change that decided them
//	                                  (part:CASE:DEPT, a set, from earlier versions)
package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/notify/message"
)

// Delivery is one message to deliver through one receiver.
type Delivery struct {
	// ID is the same for every copy of the same decision (a redelivered
	// outbox message decides it again): the queue keeps one.
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	// CaseID and Department name the part the delivery chases, when it
	// chases one: StopOnAccept deliveries are cancelled once it is
	// accepted.
	CaseID       string `json:"case_id,omitempty"`
	Department   string `json:"department,omitempty"`
	StopOnAccept bool   `json:"stop_on_accept,omitempty"`
	// Group gathers deliveries to one receiver that are due together into
	// one message.
	Group   string           `json:"group"`
	Due     time.Time        `json:"due"`
	Message *message.Message `json:"message"`
	// Route is the notify.yaml route that decided it, for the record.
	Route string `json:"route,omitempty"`
	// FallbackFrom names the receiver that failed it over to this one.
	FallbackFrom string `json:"fallback_from,omitempty"`
	// RepeatEvery, when set, sends the delivery again that long after each
	// time it was sent, Repeats more times at most, until it is cancelled
	// (the part it chases was accepted).
	RepeatEvery time.Duration `json:"repeat_every,omitempty"`
	Repeats     int           `json:"repeats,omitempty"`
	// Version is that of the case change that decided the delivery: a
	// cancel drops what changes before it decided.
	Version int64 `json:"version,omitempty"`
}

// Claimed is a delivery a worker holds.
type Claimed struct {
	Delivery
	// Attempts is how many times it was tried before, since it was last
	// sent.
	Attempts int
	// Sends is how many times it was sent before (a repeating delivery's
	// repeats so far).
	Sends int
	// Reclaimed says the delivery came from a lease that ran out: a worker
	// died holding it, and may or may not have delivered it.
	Reclaimed bool
	// Err says why the delivery as stored cannot be read; only ID and
	// Receiver, and whatever else could be read, are set. Nothing can
	// send it: the worker gives it up.
	Err error
}

// DoneTTL is how long a done delivery is remembered; an outbox message
// redelivered later than this would notify again.
const DoneTTL = 7 * 24 * time.Hour

// Queue is the deliveries of every receiver. It is safe for concurrent use.
type Queue struct {
	rdb redis.UniversalClient
}

// New returns a Queue on rdb.
func New(rdb redis.UniversalClient) *Queue { return &Queue{rdb: rdb} }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func prefix(receiver string) string { return "cityhub:notify:{" + receiver + "}:" }

// partOf names one part of a case in the keys of what chases it.
func partOf(caseID, dept string) string { return caseID + ":" + dept }

// ErrBadName is returned for a receiver name that cannot be a key.
var ErrBadName = errors.New("queue: bad receiver name")

// Enqueue adds d, due at d.Due. It reports false when d is queued or was
// delivered already (its id is the same decision made again).
func (q *Queue) Enqueue(ctx context.Context, d *Delivery) (bool, error) {
	var b Batch
	if err := b.Enqueue(d); err != nil {
		return false, err
	}
	n, err := q.Apply(ctx, &b)
	return n.Queued == 1, err
}

// Cancel drops the deliveries of receiver that chase the part of dept in
// caseID (paging steps, repeats): it was accepted, or the case left the
// state they chase. A worker holding one of them finds it gone when it
// reports (Done and Retry of a cancelled delivery change nothing).
func (q *Queue) Cancel(ctx context.Context, receiver, caseID, dept string) (int, error) {
	var b Batch
	if err := b.Cancel(receiver, caseID, dept, 0); err != nil {
		return 0, err
	}
	n, err := q.Apply(ctx, &b)
	return n.Cancelled, err
}

// A Batch gathers enqueues and cancels, to be applied in one round trip
// and in their order: a cancel drops what an enqueue before it added.
type Batch struct {
	ops []op
}

// op is one enqueue (raw set) or one cancel (raw nil) of a receiver.
type op struct {
	receiver string
	id       string
	due      int64  // Unix ms
	part     string // the case and department chased, "CASE:DEPT"
	version  int64  // of the change that decided the enqueue or the cancel
	raw      []byte
}

// Append adds o's operations to b, after b's own.
func (b *Batch) Append(o *Batch) { b.ops = append(b.ops, o.ops...) }

// Len returns how many operations b holds.
func (b *Batch) Len() int { return len(b.ops) }

// Enqueue adds d to b: queued at d.Due unless it is queued or done.
func (b *Batch) Enqueue(d *Delivery) error {
	n, err := d.Notification()
	if err != nil {
		return err
	}
	raw, err := proto.Marshal(n)
	if err != nil {
		return err
	}
	return b.EnqueueEncoded(n, raw)
}

// EnqueueEncoded adds n, whose protobuf encoding is raw, to b: queued at
// its due time unless it is queued or done. It is Enqueue for a
// notification as the outbox carries it, kept as it is.
func (b *Batch) EnqueueEncoded(n *cityhubv1.Notification, raw []byte) error {
	if !nameRE.MatchString(n.GetReceiver()) {
		return ErrBadName
	}
	if n.GetId() == "" {
		return errors.New("queue: a notification without an id")
	}
	o := op{receiver: n.GetReceiver(), id: n.GetId(), due: n.GetDue().AsTime().UnixMilli(), version: n.GetVersion(), raw: raw}
	if n.GetStopOnAccept() && n.GetCaseId() != "" {
		o.part = partOf(n.GetCaseId(), n.GetDepartment())
	}
	b.ops = append(b.ops, o)
	return nil
}

// Cancel adds to b the cancel of what receiver has queued to chase the
// part of dept in caseID, decided by changes before version (every
// version when zero). Applied again, it spares what later changes
// decided since.
func (b *Batch) Cancel(receiver, caseID, dept string, version int64) error {
	if !nameRE.MatchString(receiver) {
		return ErrBadName
	}
	b.ops = append(b.ops, op{receiver: receiver, part: partOf(caseID, dept), version: version})
	return nil
}

// Notification returns d as the outbox carries it, its message as JSON.
func (d *Delivery) Notification() (*cityhubv1.Notification, error) {
	mb, err := json.Marshal(d.Message)
	if err != nil {
		return nil, fmt.Errorf("queue: encoding the message of %s: %w", d.ID, err)
	}
	return &cityhubv1.Notification{
		Id: d.ID, Receiver: d.Receiver, CaseId: d.CaseID, Department: d.Department, StopOnAccept: d.StopOnAccept,
		Group: d.Group, Due: timestamppb.New(d.Due), Route: d.Route, Message: mb, FallbackFrom: d.FallbackFrom,
		RepeatEvery: repeatEvery(d.RepeatEvery), Repeats: int32(d.Repeats), Version: d.Version,
	}, nil
}

func repeatEvery(d time.Duration) *durationpb.Duration {
	if d <= 0 {
		return nil
	}
	return durationpb.New(d)
}

// decode reads a delivery as the queue keeps it. Deliveries queued by
// earlier versions were kept as JSON, and still read.
func decode(b []byte, d *Delivery) error {
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, d)
	}
	var n cityhubv1.Notification
	if err := proto.Unmarshal(b, &n); err != nil {
		return err
	}
	*d = Delivery{
		ID: n.GetId(), Receiver: n.GetReceiver(), CaseID: n.GetCaseId(), Department: n.GetDepartment(), StopOnAccept: n.GetStopOnAccept(),
		Group: n.GetGroup(), Due: n.GetDue().AsTime(), Route: n.GetRoute(), FallbackFrom: n.GetFallbackFrom(),
		RepeatEvery: n.GetRepeatEvery().AsDuration(), Repeats: int(n.GetRepeats()), Version: n.GetVersion(),
	}
	m := new(message.Message)
	if err := json.Unmarshal(n.GetMessage(), m); err != nil {
		return fmt.Errorf("its message: %w", err)
	}
	d.Message = m
	return nil
}

// applyScript applies one receiver's share of a batch, in order. KEYS:
// due, leases; ARGV: key prefix, done TTL seconds, then each operation:
// an enqueue ('e', id, due ms, part or empty, the delivery, version) adds
// a delivery unless it is queued or done; a cancel ('c', part, version)
// drops every delivery chasing the part that a change before version
// decided (all when version is 0; all of a part kept as a set by an
// earlier version) and remembers each as done. It answers how many it
// queued and how many it dropped.
var applyScript = redis.NewScript(`
local p, ttl = ARGV[1], ARGV[2]
local queued, cancelled = 0, 0
local i = 3
while i <= #ARGV do
  if ARGV[i] == 'e' then
    local id = ARGV[i+1]
    local d = p .. 'd:' .. id
    if redis.call('EXISTS', d, p .. 'done:' .. id) == 0 then
      redis.call('HSET', d, 'd', ARGV[i+4], 'a', 0)
      redis.call('ZADD', KEYS[1], ARGV[i+2], id)
      if ARGV[i+3] ~= '' then
        redis.call('ZADD', p .. 'chase:' .. ARGV[i+3], ARGV[i+5], id)
      end
      queued = queued + 1
    end
    i = i + 6
  elseif ARGV[i] == 'c' then
    local chase, legacy = p .. 'chase:' .. ARGV[i+1], p .. 'part:' .. ARGV[i+1]
    local before = '(' .. ARGV[i+2]
    if ARGV[i+2] == '0' then
      before = '+inf'
    end
    local ids = redis.call('ZRANGEBYSCORE', chase, '-inf', before)
    for _, id in ipairs(redis.call('SMEMBERS', legacy)) do
      table.insert(ids, id)
    end
    for _, id in ipairs(ids) do
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('DEL', p .. 'd:' .. id)
      redis.call('SET', p .. 'done:' .. id, '1', 'EX', ttl)
    end
    cancelled = cancelled + #ids
    redis.call('ZREMRANGEBYSCORE', chase, '-inf', before)
    redis.call('DEL', legacy)
    i = i + 3
  else
    return redis.error_reply('unknown operation ' .. tostring(ARGV[i]))
  end
end
return {queued, cancelled}
`)

// opsPerCall bounds the operations of one script call, so that a large
// batch does not hold Redis for long at a time.
const opsPerCall = 512

// Applied counts what a batch did.
type Applied struct {
	// Queued counts deliveries added; the others were queued or done
	// already.
	Queued int
	// Cancelled counts deliveries dropped.
	Cancelled int
}

// call is one script call: up to opsPerCall operations of one receiver.
type call struct {
	receiver string
	ops      int
	args     []any
}

// Apply applies b in one pipelined round trip: one script call per
// receiver (and per opsPerCall of its operations), each receiver's
// operations in b's order. Applying a batch again changes nothing more:
// it may be retried whole after an error.
func (q *Queue) Apply(ctx context.Context, b *Batch) (Applied, error) {
	var n Applied
	if len(b.ops) == 0 {
		return n, nil
	}
	var calls []*call
	open := map[string]*call{}
	for _, o := range b.ops {
		c := open[o.receiver]
		if c == nil || c.ops == opsPerCall {
			c = &call{receiver: o.receiver, args: []any{prefix(o.receiver), int64(DoneTTL / time.Second)}}
			open[o.receiver] = c
			calls = append(calls, c)
		}
		c.ops++
		if o.raw != nil {
			c.args = append(c.args, "e", o.id, o.due, o.part, o.raw, o.version)
		} else {
			c.args = append(c.args, "c", o.part, o.version)
		}
	}
	run := func(load bool) ([]*redis.Cmd, error) {
		pipe := q.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(calls))
		for i, c := range calls {
			p := prefix(c.receiver)
			keys := []string{p + "due", p + "leases"}
			if load {
				cmds[i] = applyScript.Eval(ctx, pipe, keys, c.args...)
			} else {
				cmds[i] = applyScript.EvalSha(ctx, pipe, keys, c.args...)
			}
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run(false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The script is not loaded (a new or restarted server): send it
		// whole this once; later batches find it cached.
		cmds, err = run(true)
	}
	for i, c := range cmds {
		v, cerr := c.Int64Slice()
		if cerr != nil || len(v) != 2 {
			return n, fmt.Errorf("queue: applying %d operations for %s: %w", calls[i].ops, calls[i].receiver, cmp.Or(cerr, errors.New("unexpected answer")))
		}
		n.Queued += int(v[0])
		n.Cancelled += int(v[1])
	}
	if err != nil {
		return n, fmt.Errorf("queue: %w", err)
	}
	return n, nil
}

// claimScript leases up to ARGV[3] deliveries — expired leases first, then
// due ones — until ARGV[2], and answers id, reclaimed, attempts, sends and
// the delivery for each. KEYS: due, leases; ARGV: now ms, lease end ms, limit, key prefix.
var claimScript = redis.NewScript(`
local out = {}
local limit = tonumber(ARGV[3])
local function take(id, reclaimed)
  local d = redis.call('HMGET', ARGV[4] .. 'd:' .. id, 'd', 'a', 's')
  redis.call('ZREM', KEYS[1], id)
  if not d[1] then
    redis.call('ZREM', KEYS[2], id)
    return
  end
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  table.insert(out, id); table.insert(out, reclaimed); table.insert(out, d[2] or '0'); table.insert(out, d[3] or '0'); table.insert(out, d[1])
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)) do
  take(id, '1')
end
local left = limit - #out / 5
if left > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, left)) do
    take(id, '0')
  end
end
return out
`)

// Claim leases up to n deliveries of receiver that are due at now, or
// whose lease ran out, until now+lease.
func (q *Queue) Claim(ctx context.Context, receiver string, now time.Time, lease time.Duration, n int) ([]Claimed, error) {
	if !nameRE.MatchString(receiver) {
		return nil, ErrBadName
	}
	p := prefix(receiver)
	res, err := claimScript.Run(ctx, q.rdb, []string{p + "due", p + "leases"}, now.UnixMilli(), now.Add(lease).UnixMilli(), n, p).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of %s: %w", receiver, err)
	}
	out := make([]Claimed, 0, len(res)/5)
	for i := 0; i+4 < len(res); i += 5 {
		var c Claimed
		if err := decode([]byte(res[i+4]), &c.Delivery); err != nil {
			// One unreadable delivery must not hold back the rest: it is
			// claimed like them, and given up by the worker.
			c.Err = fmt.Errorf("delivery %s of %s cannot be read: %w", res[i], receiver, err)
		}
		c.ID, c.Receiver = res[i], receiver
		c.Reclaimed = res[i+1] == "1"
		c.Attempts, _ = strconv.Atoi(res[i+2])
		c.Sends, _ = strconv.Atoi(res[i+3])
		out = append(out, c)
	}
	return out, nil
}

// Done marks d delivered (or given up on): it leaves the queue and is not
// queued again for DoneTTL.
func (q *Queue) Done(ctx context.Context, d *Delivery) error {
	return q.Settle(ctx, d.Receiver, []Settlement{{Delivery: d, Outcome: Delivered}})
}

// Retry puts claimed delivery d back, due at at, with one more attempt
// counted.
func (q *Queue) Retry(ctx context.Context, d *Delivery, at time.Time) error {
	return q.Settle(ctx, d.Receiver, []Settlement{{Delivery: d, Outcome: Retried, At: at}})
}

// Next returns when the next delivery of receiver is due, or false when
// none is queued.
func (q *Queue) Next(ctx context.Context, receiver string) (time.Time, bool, error) {
	res, err := q.rdb.ZRangeWithScores(ctx, prefix(receiver)+"due", 0, 0).Result()
	if err != nil || len(res) == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMilli(int64(res[0].Score)), true, nil
}

// Outcomes a worker settles a claimed delivery with.
const (
	// Delivered: it leaves the queue and is remembered as done (also for
	// what was failed over or given up on).
	Delivered = iota + 1
	// Retried: it goes back, due at At, with one more attempt counted.
	Retried
	// Released: it goes back, due at At, as if it had never been claimed
	// (the worker stopped before trying it).
	Released
	// Repeated: it was sent, and goes back due at At to be sent again
	// (a repeating delivery with repeats left): one more send counted,
	// its attempts back to none.
	Repeated
)

// Settlement is what became of one claimed delivery.
type Settlement struct {
	Delivery *Delivery
	Outcome  int
	// At is when a retried or released delivery is due again.
	At time.Time
}

// settleScript settles claimed deliveries of one receiver. KEYS: due,
// leases; ARGV: key prefix, done TTL seconds, then per delivery: outcome,
// id, the part it chases ("" for none), due ms. A delivery cancelled
// meanwhile is not put back.
var settleScript = redis.NewScript(`
local p, ttl = ARGV[1], ARGV[2]
for i = 3, #ARGV, 4 do
  local op, id, part, at = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]
  local d = p .. 'd:' .. id
  redis.call('ZREM', KEYS[2], id)
  if op == '1' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', d)
    redis.call('SET', p .. 'done:' .. id, '1', 'EX', ttl)
    if part ~= '' then
      redis.call('ZREM', p .. 'chase:' .. part, id)
      redis.call('SREM', p .. 'part:' .. part, id)
    end
  elseif redis.call('EXISTS', d) == 1 then
    if op == '2' then
      redis.call('HINCRBY', d, 'a', 1)
    elseif op == '4' then
      redis.call('HINCRBY', d, 's', 1)
      redis.call('HSET', d, 'a', 0)
    end
    redis.call('ZADD', KEYS[1], at, id)
  end
end
return 1
`)

// Settle settles claimed deliveries of receiver in one round trip. A
// delivery cancelled while it was claimed stays cancelled.
func (q *Queue) Settle(ctx context.Context, receiver string, s []Settlement) error {
	if len(s) == 0 {
		return nil
	}
	if !nameRE.MatchString(receiver) {
		return ErrBadName
	}
	p := prefix(receiver)
	args := make([]any, 0, 2+4*len(s))
	args = append(args, p, int64(DoneTTL/time.Second))
	for _, x := range s {
		d := x.Delivery
		if d.Receiver != receiver {
			return fmt.Errorf("settle %s: a delivery of %s among those of %s", d.ID, d.Receiver, receiver)
		}
		part := ""
		if x.Outcome == Delivered && d.StopOnAccept && d.CaseID != "" {
			part = partOf(d.CaseID, d.Department)
		}
		args = append(args, x.Outcome, d.ID, part, x.At.UnixMilli())
	}
	if err := settleScript.Run(ctx, q.rdb, []string{p + "due", p + "leases"}, args...).Err(); err != nil {
		return fmt.Errorf("settle %d deliveries of %s: %w", len(s), receiver, err)
	}
	return nil
}
