// Package adapters composes the sources' own protocols in front of
// intake — Open311 GeoReport v2, Alertmanager's webhook, CAP 1.2 warnings
// in and the city's CAP feed out — so that the intake service and the
// all-in-one hub serve the same ones. Each adapter with a mapping file
// under rules/adapters runs; Open311 needs none, its services come from
// the catalog.
package adapters

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/alertmanager"
	capxml "github.com/cityhub/cityhub/services/intake/cap"
	"github.com/cityhub/cityhub/services/intake/open311"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// GroupCAP is the consumer group that folds alerts into the CAP feed.
const GroupCAP = "cityhub-cap"

// Options configures the adapters.
type Options struct {
	// Dir holds the adapters' mappings: alertmanager.yaml, cap.yaml.
	Dir      string
	Catalog  *catalog.Catalog
	Intake   *intake.Service
	Verifier *auth.Verifier
	// Redis keeps Open311's requests and the CAP feed; Cases is dispatch's
	// store, which says what became of a report.
	Redis redis.UniversalClient
	Cases *casestore.Store
	// Brokers and Topics are where the CAP feed reads alerts; Writer takes
	// what it cannot read.
	Brokers    []string
	Topics     stream.Topics
	Writer     *stream.Writer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Adapters are the protocols' handlers, and the CAP feed's consumer.
type Adapters struct {
	opts     Options
	handlers []interface{ Routes(*http.ServeMux) }
	capPub   *capxml.Publisher
}

// New loads the mappings under opts.Dir and builds every adapter.
func New(opts Options) (*Adapters, error) {
	if opts.Catalog == nil || opts.Intake == nil || opts.Verifier == nil || opts.Redis == nil || opts.Cases == nil || opts.Writer == nil {
		return nil, errors.New("adapters: the catalog, intake, a verifier, Redis, the case store and a writer are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	a := &Adapters{opts: opts}
	dir, cat, submit, reg := opts.Dir, opts.Catalog, opts.Intake.Submit, opts.Registerer
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	if exists("alertmanager.yaml") {
		cfg, err := alertmanager.Load(filepath.Join(dir, "alertmanager.yaml"), cat)
		if err != nil {
			return nil, err
		}
		h, err := alertmanager.New(alertmanager.Options{Config: cfg, Catalog: cat, Submit: submit, Verifier: opts.Verifier, Logger: opts.Logger, Registerer: reg})
		if err != nil {
			return nil, err
		}
		a.handlers = append(a.handlers, h)
	}
	if exists("cap.yaml") {
		cfg, err := capxml.LoadConfig(filepath.Join(dir, "cap.yaml"), cat)
		if err != nil {
			return nil, err
		}
		h, err := capxml.New(capxml.Options{Config: cfg, Catalog: cat, Submit: submit, Verifier: opts.Verifier, Logger: opts.Logger, Registerer: reg})
		if err != nil {
			return nil, err
		}
		// A rule asks for its alerts to be public warnings with
		// publish: [cap].
		pub, err := capxml.NewPublisher(capxml.PublisherOptions{
			Config: cfg, Catalog: cat, Redis: opts.Redis, Logger: opts.Logger, Registerer: reg,
			Publishes: func(al *cityhubv1.Alert) bool { return slices.Contains(al.GetPublish(), "cap") },
		})
		if err != nil {
			return nil, err
		}
		a.handlers = append(a.handlers, h, pub)
		a.capPub = pub
	}
	o311, err := open311.New(open311.Options{
		Catalog: cat, Submit: submit, Unavailable: intake.ErrUnavailable, Verifier: opts.Verifier,
		Requests: open311.NewRedisStore(opts.Redis, open311.StoreOptions{}),
		Cases:    follower{store: opts.Cases, cat: cat},
		Logger:   opts.Logger, Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	a.handlers = append(a.handlers, o311)
	return a, nil
}

// Routes registers every adapter's routes on mux.
func (a *Adapters) Routes(mux *http.ServeMux) {
	for _, h := range a.handlers {
		h.Routes(mux)
	}
}

// Run folds the alert stream into the CAP feed until ctx ends; without a
// cap.yaml it returns at once.
func (a *Adapters) Run(ctx context.Context) error {
	if a.capPub == nil {
		return nil
	}
	c, err := stream.NewConsumer(stream.ConsumerOptions[*cityhubv1.Alert]{
		Brokers: a.opts.Brokers, Topic: a.opts.Topics.Alerts, Group: GroupCAP,
		Decode: func(m kafka.Message) (*cityhubv1.Alert, error) {
			al := new(cityhubv1.Alert)
			return al, stream.Unmarshal(m, al)
		},
		Apply:      a.capPub.Apply,
		DeadLetter: a.opts.Writer, DeadLetterTopic: a.opts.Topics.EventsDLQ,
		Logger: a.opts.Logger, Registerer: a.opts.Registerer,
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// follower answers Open311 with the case a report became, from dispatch's
// store: the case holding the report's event, or the one it was merged
// into.
type follower struct {
	store *casestore.Store
	cat   *catalog.Catalog
}

// maxMerges bounds the merges followed from a report's case.
const maxMerges = 4

func (f follower) Follow(ctx context.Context, district, source, eventID string) (open311.Status, bool, error) {
	id, err := f.store.CaseOfEvent(ctx, district, source+"/"+eventID)
	if errors.Is(err, casestore.ErrNotFound) {
		return open311.Status{}, false, nil
	}
	if err != nil {
		return open311.Status{}, false, err
	}
	var c *cityhubv1.Case
	for range maxMerges {
		if c, err = f.store.Recent(ctx, id); err != nil {
			if errors.Is(err, casestore.ErrNotFound) {
				return open311.Status{}, false, nil
			}
			return open311.Status{}, false, err
		}
		if c.GetMergedInto() == "" {
			break
		}
		id = c.GetMergedInto()
	}
	st := open311.Status{CaseID: c.GetId(), Open: c.GetStatus().Open(), Updated: c.GetUpdatedAt().AsTime()}
	if d, ok := f.cat.Department(c.GetLead()); ok {
		st.Agency = d.Name
	}
	if t := c.GetHandleDueAt(); t != nil && st.Open {
		st.Expected = t.AsTime()
	}
	for _, p := range c.GetParts() {
		if p.GetLead() {
			st.Notes = p.GetNote()
		}
	}
	return st, true, nil
}
