package live

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cityhub/cityhub/services/platform/auth"
)

// closeTokenExpired is the close code sent when the caller's token expires.
const closeTokenExpired = 4001

// outbound is a frame waiting in a connection's queue.
type outbound struct {
	kind string // the frame type, for metrics
	b    []byte
}

// conn is one websocket client. The handler goroutine that upgraded it
// reads; one writer goroutine, started and waited for by that handler, is
// the only one that writes data frames.
type conn struct {
	g         *Gateway
	ws        *websocket.Conn
	principal *auth.Principal
	log       *slog.Logger

	send     chan outbound
	slow     chan struct{} // closed when the client fell behind
	slowOnce sync.Once
	quit     chan struct{} // closed when the writer has stopped
	readDone chan struct{} // closed when the reader has stopped
}

// enqueue puts a frame on the send queue without blocking. When the queue
// is full the client is marked as fallen behind and enqueue reports false.
func (c *conn) enqueue(kind string, b []byte) bool {
	select {
	case <-c.quit:
		return false
	case <-c.slow:
		return false
	default:
	}
	select {
	case c.send <- outbound{kind, b}:
		return true
	default:
		c.fellBehind()
		return false
	}
}

func (c *conn) fellBehind() { c.slowOnce.Do(func() { close(c.slow) }) }

// serve runs the connection until either side ends it: it starts the
// writer, reads in the calling goroutine, and returns once both stopped.
func (c *conn) serve(ctx context.Context, e *epoch) {
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
		c.writeLoop(e, expired)
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
func (c *conn) writeLoop(e *epoch, expired <-chan time.Time) {
	defer close(c.quit)
	defer c.ws.Close()
	ping := time.NewTicker(c.g.pingPeriod)
	defer ping.Stop()
	for {
		select {
		case m := <-c.send:
			if h := c.g.beforeWrite; h != nil {
				h(c.principal)
			}
			if err := c.write(websocket.TextMessage, m.b); err != nil {
				return
			}
			c.g.metrics.sent.WithLabelValues(m.kind).Inc()
		case <-ping.C:
			if err := c.write(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.slow:
			c.g.metrics.resets.Inc()
			if c.write(websocket.TextMessage, resetFrame) == nil {
				c.g.metrics.sent.WithLabelValues(frameReset).Inc()
			}
			c.closeWith(websocket.CloseTryAgainLater, "too slow; subscribe again")
			c.g.metrics.closes.WithLabelValues("reset").Inc()
			return
		case <-expired:
			c.closeWith(closeTokenExpired, "token expired")
			c.g.metrics.closes.WithLabelValues("token_expired").Inc()
			return
		case <-e.done:
			c.closeWith(e.code, e.reason)
			c.g.metrics.closes.WithLabelValues("gateway").Inc()
			return
		case <-c.readDone:
			c.g.metrics.closes.WithLabelValues("client").Inc()
			return
		}
	}
}

func (c *conn) write(mt int, b []byte) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.g.writeWait)); err != nil {
		return err
	}
	return c.ws.WriteMessage(mt, b)
}

// closeWith sends a close frame and gives the client a moment to answer it
// before the socket is closed, so that the frame is not lost to a reset.
func (c *conn) closeWith(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.g.writeWait)); err != nil {
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
			c.enqueue(frameError, errorFrame("binary frames are not accepted; send JSON text"))
			continue
		}
		req, err := decodeFrame(b)
		if err == nil && !req.unsubscribe {
			err = c.g.checkNames(req.filter)
		}
		if err != nil {
			c.g.metrics.badFrames.Inc()
			c.enqueue(frameError, errorFrame(err.Error()))
			continue
		}
		if req.unsubscribe {
			if c.g.hub.detach(c, nil) {
				c.g.metrics.subscriptions.Dec()
			}
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
			c.log.Warn("snapshot failed", "err", err)
			c.enqueue(frameError, errorFrame("snapshot unavailable; subscribe again"))
		}
		return
	}
	s.activate(frames, seen)
}

// encodeDelta builds the frame of a delta whose data is v.
func encodeDelta(kind string, version int64, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(deltaFrame{Type: kind, Version: version, Data: data})
}
