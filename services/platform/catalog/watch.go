package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// DefaultWatchInterval is how often Watch looks at the catalog file.
const DefaultWatchInterval = 5 * time.Second

// Watch hands apply the catalog at path now and again whenever the file's
// content changes, looking every interval (DefaultWatchInterval when
// zero), until ctx ends. A catalog that does not load is logged and
// skipped: apply keeps the last one that did. Watch returns nil when ctx
// ends; it calls apply from its own goroutine only.
//
// Services watch the catalog for what must follow it at once — the
// departments and districts that tokens may name — while the rest of a
// service keeps the catalog it started with until it restarts.
func Watch(ctx context.Context, path string, interval time.Duration, log *slog.Logger, apply func(*Catalog)) error {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var last []byte // digest of the content last looked at, loaded or not
	look := func() {
		b, err := readLimited(path)
		if err != nil {
			if last != nil {
				log.Warn("catalog unreadable; keeping the last one loaded", "path", path, "err", err)
			}
			return
		}
		sum := sha256.Sum256(b)
		if bytes.Equal(sum[:], last) {
			return
		}
		last = sum[:]
		c, err := Parse(b)
		if err != nil {
			log.Error("catalog refused; keeping the last one loaded", "path", path, "err", err)
			return
		}
		apply(c)
	}
	look()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			look()
		}
	}
}

// readLimited reads the file at path, refusing one over MaxBytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("%s: %w", path, errTooLarge)
	}
	return b, nil
}
