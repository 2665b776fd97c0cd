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
//	cityhub:notify:{R}:d:ID           a delivery: field d (JSON), field a (attempts)
//	cityhub:notify:{R}:done:ID        a delivery that is done, for DoneTTL
//	cityhub:notify:{R}:part:CASE:DEPT the deliveries chasing one part of a case
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"

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
	// Template names the template to render with; the receiver's when empty.
	Template string `json:"template,omitempty"`
	// Route is the notify.yaml route that decided it, for the record.
	Route string `json:"route,omitempty"`
	// FallbackFrom names the receiver that failed it over to this one.
	FallbackFrom string `json:"fallback_from,omitempty"`
}

// Claimed is a delivery a worker holds.
type Claimed struct {
	Delivery
	// Attempts is how many times it was tried before.
	Attempts int
	// Reclaimed says the delivery came from a lease that ran out: a worker
	// died holding it, and may or may not have delivered it.
	Reclaimed bool
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

func partKey(receiver, caseID, dept string) string {
	return prefix(receiver) + "part:" + caseID + ":" + dept
}

// ErrBadName is returned for a receiver name that cannot be a key.
var ErrBadName = errors.New("queue: bad receiver name")

// enqueueScript adds a delivery unless it is queued or done already.
// KEYS: due, delivery, done, and the part when it chases one; ARGV: id,
// due ms, JSON.
var enqueueScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], 'd', ARGV[3], 'a', 0)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if KEYS[4] then
  redis.call('SADD', KEYS[4], ARGV[1])
end
return 1
`)

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
	if err := b.Cancel(receiver, caseID, dept); err != nil {
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

type op struct {
	script *redis.Script
	keys   []string
	args   []any
	what   string
	cancel bool
}

// Append adds o's operations to b, after b's own.
func (b *Batch) Append(o *Batch) { b.ops = append(b.ops, o.ops...) }

// Len returns how many operations b holds.
func (b *Batch) Len() int { return len(b.ops) }

// Enqueue adds d to b: queued at d.Due unless it is queued or done.
func (b *Batch) Enqueue(d *Delivery) error {
	if !nameRE.MatchString(d.Receiver) {
		return ErrBadName
	}
	js, err := json.Marshal(d)
	if err != nil {
		return err
	}
	p := prefix(d.Receiver)
	keys := []string{p + "due", p + "d:" + d.ID, p + "done:" + d.ID}
	if d.StopOnAccept && d.CaseID != "" {
		keys = append(keys, partKey(d.Receiver, d.CaseID, d.Department))
	}
	b.ops = append(b.ops, op{script: enqueueScript, keys: keys, args: []any{d.ID, d.Due.UnixMilli(), js}, what: "enqueue " + d.ID + " for " + d.Receiver})
	return nil
}

// Cancel adds to b the cancel of what receiver has queued to chase the
// part of dept in caseID.
func (b *Batch) Cancel(receiver, caseID, dept string) error {
	if !nameRE.MatchString(receiver) {
		return ErrBadName
	}
	p := prefix(receiver)
	b.ops = append(b.ops, op{script: cancelScript, keys: []string{p + "due", p + "leases", partKey(receiver, caseID, dept)},
		args: []any{p, int64(DoneTTL / time.Second)}, what: "cancel deliveries of " + caseID + " " + dept + " for " + receiver, cancel: true})
	return nil
}

// Applied counts what a batch did.
type Applied struct {
	// Queued counts deliveries added; the others were queued or done
	// already.
	Queued int
	// Cancelled counts deliveries dropped.
	Cancelled int
}

// Apply applies b in one pipelined round trip. Applying a batch again
// changes nothing more: it may be retried whole after an error.
func (q *Queue) Apply(ctx context.Context, b *Batch) (Applied, error) {
	var n Applied
	if len(b.ops) == 0 {
		return n, nil
	}
	run := func(load bool) ([]*redis.Cmd, error) {
		pipe := q.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(b.ops))
		for i, o := range b.ops {
			if load {
				cmds[i] = o.script.Eval(ctx, pipe, o.keys, o.args...)
			} else {
				cmds[i] = o.script.EvalSha(ctx, pipe, o.keys, o.args...)
			}
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run(false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The scripts are not loaded (a new or restarted server): send
		// them whole this once; later batches find them cached.
		cmds, err = run(true)
	}
	for i, c := range cmds {
		v, cerr := c.Int()
		if cerr != nil {
			return n, fmt.Errorf("%s: %w", b.ops[i].what, cerr)
		}
		if b.ops[i].cancel {
			n.Cancelled += v
		} else {
			n.Queued += v
		}
	}
	if err != nil {
		return n, fmt.Errorf("queue: %w", err)
	}
	return n, nil
}

// claimScript leases up to ARGV[3] deliveries — expired leases first, then
// due ones — until ARGV[2], and answers id, reclaimed, attempts, JSON for
// each. KEYS: due, leases; ARGV: now ms, lease end ms, limit, key prefix.
var claimScript = redis.NewScript(`
local out = {}
local limit = tonumber(ARGV[3])
local function take(id, reclaimed)
  local d = redis.call('HMGET', ARGV[4] .. 'd:' .. id, 'd', 'a')
  redis.call('ZREM', KEYS[1], id)
  if not d[1] then
    redis.call('ZREM', KEYS[2], id)
    return
  end
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  table.insert(out, id); table.insert(out, reclaimed); table.insert(out, d[2]); table.insert(out, d[1])
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)) do
  take(id, '1')
end
local left = limit - #out / 4
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
	out := make([]Claimed, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		var c Claimed
		if err := json.Unmarshal([]byte(res[i+3]), &c.Delivery); err != nil {
			return nil, fmt.Errorf("delivery %s of %s: %w", res[i], receiver, err)
		}
		c.Reclaimed = res[i+1] == "1"
		fmt.Sscan(res[i+2], &c.Attempts)
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

// cancelScript drops every delivery chasing one part (KEYS[4], a set of
// ids) and remembers each as done. KEYS: due, leases, part; ARGV: key
// prefix, done TTL seconds. It answers how many it dropped.
var cancelScript = redis.NewScript(`
local ids = redis.call('SMEMBERS', KEYS[3])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', ARGV[1] .. 'd:' .. id)
  redis.call('SET', ARGV[1] .. 'done:' .. id, '1', 'EX', ARGV[2])
end
redis.call('DEL', KEYS[3])
return #ids
`)

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
// id, part key ("" for none), due ms.
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
      redis.call('SREM', part, id)
    end
  elseif redis.call('EXISTS', d) == 1 then
    if op == '2' then
      redis.call('HINCRBY', d, 'a', 1)
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
			part = partKey(d.Receiver, d.CaseID, d.Department)
		}
		args = append(args, x.Outcome, d.ID, part, x.At.UnixMilli())
	}
	if err := settleScript.Run(ctx, q.rdb, []string{p + "due", p + "leases"}, args...).Err(); err != nil {
		return fmt.Errorf("settle %d deliveries of %s: %w", len(s), receiver, err)
	}
	return nil
}
