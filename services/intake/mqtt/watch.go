package mqtt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// DefaultWatchInterval is how often WatchRegistry looks at the file.
const DefaultWatchInterval = 5 * time.Second

// WatchRegistry hands apply the registry at path whenever the file's
// content changes, looking every interval (DefaultWatchInterval when zero)
// until ctx ends; the first look is after one interval, since the caller
// loaded the file to start with. A registry that does not load is logged
// with every problem and skipped: apply keeps the last good one. It
// returns nil when ctx ends and calls apply from its own goroutine only.
func WatchRegistry(ctx context.Context, path string, cat *catalog.Catalog, interval time.Duration, log *slog.Logger, apply func(*Registry)) error {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "mqtt-registry", "path", path)
	var last []byte
	if b, err := os.ReadFile(path); err == nil {
		sum := sha256.Sum256(b)
		last = sum[:]
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			log.Warn("device registry unreadable; keeping the last one loaded", "err", err)
			continue
		}
		sum := sha256.Sum256(b)
		if bytes.Equal(sum[:], last) {
			continue
		}
		last = sum[:]
		r, err := ParseRegistry(path, b, cat)
		if err != nil {
			log.Error("device registry refused; keeping the last one loaded", "err", err)
			continue
		}
		log.Info("device registry reloaded", "devices", r.Devices())
		apply(r)
	}
}
