package load

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Options configures Run. The zero value of every field but URL, Token,
// WatchToken and Rates means its default.
type Options struct {
	// URL is the hub's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Token is a source token that speaks for the mix's sources and the
	// markers' (Sources says which), or a commander token.
	Token string
	// WatchToken is a commander (or viewer) token: the driver follows the
	// live websocket and reads /metrics with it.
	WatchToken string
	// Origin is sent on the websocket handshake; the hub's own URL, which
	// every hub allows, when empty.
	Origin string

	// CatalogPath is the hub's rules/catalog.yaml: the mixes draw their
	// event types, attributes and districts from it.
	CatalogPath string
	// Mix is the stream of events: MixCity when empty.
	Mix Mix
	// Seed seeds the mix; zero seeds it from the clock.
	Seed int64

	// Rates are the steps' target rates in events a second, in order.
	Rates []float64
	// Step is how long each rate is held; 20 s when zero.
	Step time.Duration
	// Conns bounds the keep-alive connections posting events, each with
	// one request in flight; 8 when zero.
	Conns int
	// BatchSize is the most events in one POST; 1,000 (intake's limit)
	// when zero.
	BatchSize int
	// Linger is the longest events wait for their batch to fill before it
	// is sent anyway; 100 ms when zero.
	Linger time.Duration
	// RequestTimeout bounds one POST; 30 s when zero.
	RequestTimeout time.Duration

	// MarkerRate is how many marker events a second are sent, each in a
	// request of its own on a connection of its own; 10 when zero.
	MarkerRate float64
	// MarkerDistrict is where the markers happen; the catalog's first
	// district when empty.
	MarkerDistrict string
	// MarkerWait bounds how long the driver waits, after the last step,
	// for the alerts and cases of markers still on their way; 30 s when
	// zero. A step's markers are otherwise given until the end of the
	// next step.
	MarkerWait time.Duration
	// WatchAll subscribes to every alert and case, as a wall screen does,
	// instead of to the markers' district only. The gateway drops a
	// subscriber that falls behind, so under a storm the narrower
	// subscription is the one that measures the hub rather than the
	// driver's reading.
	WatchAll bool

	// ServerPIDs are processes on this machine whose CPU is counted
	// beside the hub's (a redis-server the hub uses); Linux only.
	ServerPIDs []int

	// OnStep, when set, is called with each step once its markers are
	// settled, in order, from Run's goroutine.
	OnStep func(Step)
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Mix == "" {
		o.Mix = MixCity
	}
	if o.Step == 0 {
		o.Step = 20 * time.Second
	}
	if o.Conns == 0 {
		o.Conns = 8
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.Linger == 0 {
		o.Linger = 100 * time.Millisecond
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MarkerRate == 0 {
		o.MarkerRate = 10
	}
	if o.MarkerWait == 0 {
		o.MarkerWait = 30 * time.Second
	}
	if o.Origin == "" {
		if u, err := url.Parse(o.URL); err == nil {
			o.Origin = u.Scheme + "://" + u.Host
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// maxBatch is intake's limit on events in one request.
const maxBatch = 1000

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q: want http://host:port or https://host:port", o.URL))
	}
	if o.Token == "" {
		errs = append(errs, errors.New("no source token"))
	}
	if o.WatchToken == "" {
		errs = append(errs, errors.New("no watch token (a commander or viewer token for the websocket and /metrics)"))
	}
	if o.CatalogPath == "" {
		errs = append(errs, errors.New("no catalog path"))
	}
	if _, err := ParseMix(string(o.Mix)); err != nil {
		errs = append(errs, err)
	}
	if len(o.Rates) == 0 {
		errs = append(errs, errors.New("no rates"))
	}
	for _, r := range o.Rates {
		if !(r > 0) || r > 1e7 {
			errs = append(errs, fmt.Errorf("rate %v: want more than 0 and at most 10,000,000 events a second", r))
		}
	}
	if o.Step < time.Second {
		errs = append(errs, fmt.Errorf("step %v: want at least 1s", o.Step))
	}
	if o.Conns < 1 || o.Conns > 256 {
		errs = append(errs, fmt.Errorf("conns %d: want 1 to 256", o.Conns))
	}
	if o.BatchSize < 1 || o.BatchSize > maxBatch {
		errs = append(errs, fmt.Errorf("batch size %d: want 1 to %d", o.BatchSize, maxBatch))
	}
	if o.Linger <= 0 || o.RequestTimeout <= 0 || o.MarkerWait <= 0 {
		errs = append(errs, errors.New("linger, request timeout and marker wait must be positive"))
	}
	if !(o.MarkerRate > 0) || o.MarkerRate > 1000 {
		errs = append(errs, fmt.Errorf("marker rate %v: want more than 0 and at most 1,000 a second", o.MarkerRate))
	}
	if strings.TrimSpace(o.Origin) == "" {
		errs = append(errs, errors.New("no origin for the websocket handshake"))
	}
	return errors.Join(errs...)
}
