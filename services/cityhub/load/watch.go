package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// watcher follows the hub's live websocket and marks markers seen when an
// alert or case delta listing them arrives.
type watcher struct {
	url, origin, token string
	subscribe          []byte
	book               *book
	log                *slog.Logger

	// reconnects counts connections lost and opened again: markers whose
	// deltas came meanwhile are never seen.
	reconnects atomic.Int64
}

// snapshotLimit bounds a frame from the hub: a snapshot holds every open
// alert or case the subscription covers, which grows with the hub's past.
const snapshotLimit = 256 << 20

func newWatcher(o Options, b *book) (*watcher, error) {
	sub := map[string]any{"type": "subscribe", "streams": []string{"alerts", "cases"}}
	if !o.WatchAll {
		sub["filter"] = map[string]any{"districts": []string{o.MarkerDistrict}}
	}
	frame, err := json.Marshal(sub)
	if err != nil {
		return nil, err
	}
	u := strings.TrimRight(o.URL, "/") + "/v1/live"
	u = "ws" + strings.TrimPrefix(u, "http") // http→ws, https→wss
	return &watcher{url: u, origin: o.Origin, token: o.WatchToken, subscribe: frame, book: b, log: o.Logger}, nil
}

// dial opens the websocket, subscribes and reads until both snapshots are
// in: from then on every delta reaches the connection.
func (w *watcher) dial(ctx context.Context) (*websocket.Conn, error) {
	h := http.Header{"Authorization": {"Bearer " + w.token}, "Origin": {w.origin}}
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 64 << 10}
	c, resp, err := d.DialContext(ctx, w.url, h)
	if err != nil {
		if resp != nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return nil, fmt.Errorf("%w the watch token or origin on %s (%s): %s", ErrRefused, w.url, resp.Status, bytes.TrimSpace(msg))
			}
			return nil, fmt.Errorf("open %s: %s: %s", w.url, resp.Status, bytes.TrimSpace(msg))
		}
		return nil, fmt.Errorf("open %s: %w", w.url, err)
	}
	c.SetReadLimit(snapshotLimit)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.WriteMessage(websocket.TextMessage, w.subscribe); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe on %s: %w", w.url, err)
	}
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for snapshots := 0; snapshots < 2; {
		_, msg, err := c.ReadMessage()
		if err != nil {
			c.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("waiting for the snapshots on %s: %w", w.url, err)
		}
		var f struct{ Type, Message string }
		if err := json.Unmarshal(msg, &f); err != nil {
			c.Close()
			return nil, fmt.Errorf("waiting for the snapshots on %s: %w", w.url, err)
		}
		switch f.Type {
		case "snapshot":
			snapshots++
		case "error":
			c.Close()
			return nil, fmt.Errorf("the hub refused the subscription: %s", f.Message)
		}
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}

// run reads deltas from c until ctx ends, opening the socket again when
// the hub drops it (a reset, a restart).
func (w *watcher) run(ctx context.Context, c *websocket.Conn) error {
	for {
		err := w.read(ctx, c)
		if ctx.Err() != nil {
			return nil
		}
		w.reconnects.Add(1)
		w.log.Warn("live websocket lost; its markers' deltas meanwhile are missed", "err", err)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			if c, err = w.dial(ctx); err == nil {
				break
			}
			if errors.Is(err, ErrRefused) {
				return err
			}
			w.log.Warn("live websocket: reconnecting", "err", err)
		}
	}
}

// liveDelta is what the driver reads of a delta: alerts and cases list the
// keys of their events.
type liveDelta struct {
	Type string `json:"type"`
	Data struct {
		EventIDs []string `json:"event_ids"`
	} `json:"data"`
}

// read reads c until it fails or ctx ends, and closes it.
func (w *watcher) read(ctx context.Context, c *websocket.Conn) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	mark := []byte(w.book.prefix)
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		at := time.Now()
		// Most deltas are the mix's: skip them without decoding.
		if !bytes.Contains(msg, mark) {
			continue
		}
		var d liveDelta
		if err := json.Unmarshal(msg, &d); err != nil {
			continue
		}
		switch d.Type {
		case "alert":
			w.book.seen(alertStream, d.Data.EventIDs, at)
		case "case":
			w.book.seen(caseStream, d.Data.EventIDs, at)
		}
	}
}
