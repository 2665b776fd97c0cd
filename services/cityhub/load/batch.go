package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// poolSize is how many events of the mix are drawn up front. The driver
// cycles through them with fresh ids and times: drawing and encoding each
// event anew would cost the driver a sizeable share of the two cores it
// shares with the hub at the rates it drives.
const poolSize = 16384

// template is one drawn event encoded as JSON without its id and with an
// empty occurred_at, cut where the time goes.
type template struct {
	head, tail []byte
}

// occurredAt is what an empty occurred_at encodes to. A string value
// cannot contain it unescaped, so its first occurrence is the field.
var occurredAt = []byte(`"occurred_at":""`)

// pool holds the drawn events.
type pool struct {
	templates []template
}

func newPool(g generator, n int, now time.Time) (*pool, error) {
	p := &pool{templates: make([]template, n)}
	for i := range p.templates {
		in := g.Next(now)
		in.ID, in.OccurredAt = "", ""
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode a drawn event: %w", err)
		}
		at := bytes.Index(b, occurredAt)
		if at < 1 || b[0] != '{' {
			return nil, fmt.Errorf("encode a drawn event: no occurred_at in %s", b)
		}
		// head keeps the fields before occurred_at with their comma, tail
		// the rest with the closing brace.
		p.templates[i] = template{head: b[1:at], tail: b[at+len(occurredAt):]}
	}
	return p, nil
}

// encoder writes batches of events with ids of its own. Each posting
// connection owns one; it is not safe for concurrent use.
type encoder struct {
	pool   *pool
	prefix string // id prefix, unique to the run and the encoder
	next   int    // the next template
	seq    int64
	size   int // the last batch's length, to size the next
}

func newEncoder(p *pool, prefix string, start int) *encoder {
	return &encoder{pool: p, prefix: prefix, next: start % len(p.templates)}
}

// batch encodes n events that occurred at now as a JSON array. Each batch
// gets a buffer of its own: the HTTP transport may still read a request's
// body after the response arrived.
func (e *encoder) batch(n int, now time.Time) []byte {
	ts := now.UTC().AppendFormat(nil, time.RFC3339Nano)
	b := append(make([]byte, 0, e.size+e.size/8), '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		t := &e.pool.templates[e.next]
		if e.next++; e.next == len(e.pool.templates) {
			e.next = 0
		}
		e.seq++
		b = append(b, `{"id":"`...)
		b = append(b, e.prefix...)
		b = strconv.AppendInt(b, e.seq, 36)
		b = append(b, `",`...)
		b = append(b, t.head...)
		b = append(b, `"occurred_at":"`...)
		b = append(b, ts...)
		b = append(b, '"')
		b = append(b, t.tail...)
	}
	b = append(b, ']')
	e.size = len(b)
	return b
}
