package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cityhub/cityhub/services/platform/auth"
)

// closeTokenExpired is the close code sent when the caller's token expires.
const closeTokenExpired = 4001

// conn is one websocket client. The handler goroutine that upgraded it
// reads; one writer goroutine, started and waited for by that handler, is
// the only one that writes data frames.
type conn struct {
	g         *Gateway
	ws        *websocket.Conn
	principal *auth.Principal

	send     chan *message
	slow     chan struct{} // closed when the client fell behind
	slowOnce sync.Once
	quit     chan struct{} // closed when the writer has stopped
	readDone chan struct{} // closed when the reader has stopped
	// stop is closed when the gateway ends the connection, with stopCode
	// and stopReason set before (under Gateway.mu).
	stop       chan struct{}
	stopCode   int
	stopReason string
	// dead is set once the client fell behind or the writer stopped: the
	// fan-out looks at it before anything else.
	dead atomic.Bool
	// subscribes bounds how often the client may subscribe; only the
	// reading goroutine uses it.
	subscribes bucket
}

// bucket is a token bucket: up to burst tokens, one more every interval.
// The zero bucket is full on first use.
type bucket struct {
	tokens float64
	last   time.Time
}

// take reports whether a token was left at now, and takes it.
func (b *bucket) take(now time.Time, burst int, every time.Duration) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+float64(now.Sub(b.last))/float64(every))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// enqueue puts a frame on the send queue without blocking. When the queue
// is full the client is marked as fallen behind and enqueue reports false.
func (c *conn) enqueue(m *message) bool {
	if c.dead.Load() {
		return false
	}
	select {
	case c.send <- m:
		return true
	default:
		c.fellBehind()
		return false
	}
}

// fellBehind marks the client as fallen behind. A write that is blocked on
// the client's full socket gets a short deadline, so that the writer is
// free soon to send the reset (if the client reads it) and close.
func (c *conn) fellBehind() {
	c.slowOnce.Do(func() {
		c.dead.Store(true)
		c.g.metrics.resets.Inc()
		close(c.slow)
		_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(closeGrace))
	})
}

// serve runs the connection until either side ends it: it starts the
// writer, reads in the calling goroutine, and returns once both stopped.
func (c *conn) serve(ctx context.Context) {
	// The request's context is no guide once the connection is hijacked.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	var expired <-chan time.Time
	if !c.principal.ExpiresAt.IsZero() {
		t := time.NewTimer(time.Until(c.principal.ExpiresAt))
		defer t.Stop()
		expired = t.C
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel() // ends a snapshot the reader may be waiting for
		c.writeLoop(expired)
	})
	c.readLoop(ctx)
	close(c.readDone)
	wg.Wait()
	if c.g.hub.detach(c, nil) {
		c.g.metrics.subscriptions.Dec()
	}
}

// writeLoop sends queued frames and pings until the connection ends, and
// closes the socket on its way out.
func (c *conn) writeLoop(expired <-chan time.Time) {
	defer close(c.quit)
	defer c.dead.Store(true)
	defer c.ws.Close()
	ping := time.NewTicker(c.g.pingPeriod)
	defer ping.Stop()
	for {
		// A client marked slow is reset before anything else is written.
		select {
		case <-c.slow:
			c.reset()
			return
		default:
		}
		select {
		case m := <-c.send:
			if h := c.g.beforeWrite; h != nil {
				h(c.principal)
			}
			if err := c.write(websocket.TextMessage, m.b); err != nil {
				c.writeFailed()
				return
			}
			m.sent.Inc()
			if !m.updated.IsZero() {
				c.g.metrics.deliveryLag.Observe(time.Since(m.updated).Seconds())
			}
		case <-ping.C:
			if err := c.write(websocket.PingMessage, nil); err != nil {
				c.writeFailed()
				return
			}
		case <-c.slow:
			c.reset()
			return
		case <-expired:
			c.closeWith(closeTokenExpired, "token expired")
			c.g.metrics.closes.WithLabelValues("token_expired").Inc()
			return
		case <-c.stop:
			c.closeWith(c.stopCode, c.stopReason)
			c.g.metrics.closes.WithLabelValues("gateway").Inc()
			return
		case <-c.readDone:
			c.g.metrics.closes.WithLabelValues("client").Inc()
			return
		}
	}
}

// reset tells a client that fell behind to subscribe again, and closes it.
// Both are given only a moment: a client that stopped reading gets neither.
func (c *conn) reset() {
	c.g.metrics.closes.WithLabelValues("reset").Inc()
	if c.writeWithin(websocket.TextMessage, resetFrame, closeGrace) != nil {
		return
	}
	c.g.metrics.sentReset.Inc()
	c.closeWith(websocket.CloseTryAgainLater, "too slow; subscribe again")
}

// writeFailed counts a connection whose write failed: most often one whose
// client stopped reading, whether or not its queue had overflowed yet.
func (c *conn) writeFailed() {
	select {
	case <-c.slow:
		c.g.metrics.closes.WithLabelValues("reset").Inc()
	default:
		c.g.metrics.closes.WithLabelValues("write_failed").Inc()
	}
}

func (c *conn) write(mt int, b []byte) error { return c.writeWithin(mt, b, c.g.writeWait) }

func (c *conn) writeWithin(mt int, b []byte, d time.Duration) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	return c.ws.WriteMessage(mt, b)
}

// closeWith sends a close frame and gives the client a moment to answer it
// before the socket is closed, so that the frame is not lost to a reset.
func (c *conn) closeWith(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace)); err != nil {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.readDone:
	case <-t.C:
	}
}

// readLoop reads client frames until the connection fails or closes.
func (c *conn) readLoop(ctx context.Context) {
	c.ws.SetReadLimit(maxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.g.pongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.g.pongWait))
	})
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				// gorilla has sent 1009; read what the client still sends
				// until it answers, so that closing does not reset the
				// connection before the close frame arrives.
				nc := c.ws.NetConn()
				_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
				_, _ = io.Copy(io.Discard, nc)
				c.g.metrics.closes.WithLabelValues("oversize").Inc()
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.g.pongWait))
		if mt != websocket.TextMessage {
			c.enqueue(c.g.errorMessage("binary frames are not accepted; send JSON text"))
			continue
		}
		req, err := decodeFrame(b)
		if err == nil && !req.unsubscribe {
			err = c.g.checkNames(req.filter)
		}
		if err != nil {
			c.g.metrics.badFrames.Inc()
			c.enqueue(c.g.errorMessage(err.Error()))
			continue
		}
		if req.unsubscribe {
			if c.g.hub.detach(c, nil) {
				c.g.metrics.subscriptions.Dec()
			}
			continue
		}
		if !c.subscribes.take(time.Now(), c.g.opts.SubscribeBurst, c.g.opts.SubscribeEvery) {
			c.g.metrics.subscribesRefused.Inc()
			c.enqueue(c.g.errorMessage(fmt.Sprintf("too many subscribes: at most %d at once, then one every %s; this one changed nothing", c.g.opts.SubscribeBurst, c.g.opts.SubscribeEvery)))
			continue
		}
		c.subscribe(ctx, req.filter)
	}
}

// subscribe attaches a new subscription to the delta feed, then takes the
// snapshot, then queues the snapshot and the deltas held back meanwhile.
func (c *conn) subscribe(ctx context.Context, f filter) {
	s := &subscription{c: c, filter: f}
	if !c.g.hub.attach(c, s) {
		c.g.metrics.subscriptions.Inc()
	}
	frames, seen, err := c.g.snapshot(ctx, c.principal, f)
	if err != nil {
		if c.g.hub.detach(c, s) {
			c.g.metrics.subscriptions.Dec()
		}
		if ctx.Err() == nil {
			c.g.metrics.snapshotErrors.Inc()
			c.g.log.Warn("snapshot failed", "subject", c.principal.Subject, "err", err)
			c.enqueue(c.g.errorMessage("snapshot unavailable; subscribe again"))
		}
		return
	}
	if n := s.activate(frames, seen, c.g.metrics.sentRemoved); n > 0 {
		c.g.metrics.dropped.Add(float64(n))
	}
}

// encodeDelta builds the frame of a delta whose data is v.
func encodeDelta(kind string, version int64, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(deltaFrame{Type: kind, Version: version, Data: data})
}
