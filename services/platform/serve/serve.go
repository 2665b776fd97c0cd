// Package serve runs an HTTP server until its context ends, then drains it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options configures Run.
type Options struct {
	// Drain bounds how long in-flight requests get after ctx ends; 10s when zero.
	Drain  time.Duration
	Logger *slog.Logger
	// OnShutdown is called when draining starts, to close long-lived
	// connections (websockets) that http.Server.Shutdown does not track.
	OnShutdown func()
}

// Run serves h on ln until ctx ends, then shuts down gracefully. It returns
// nil after a clean shutdown.
func Run(ctx context.Context, ln net.Listener, h http.Handler, opts Options) error {
	if opts.Drain <= 0 {
		opts.Drain = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	if opts.OnShutdown != nil {
		srv.RegisterOnShutdown(opts.OnShutdown)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.Drain)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("drain %s: %w", ln.Addr(), err)
	}
	return nil
}

// ListenAndRun listens on addr and calls Run.
func ListenAndRun(ctx context.Context, addr string, h http.Handler, opts Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return Run(ctx, ln, h, opts)
}
