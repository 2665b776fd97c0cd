package cases

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/workcal"
)

// Publisher puts a stored change on city.cases.v1. It returns once the
// change is acknowledged; a change it fails to publish is published again
// when its request is repeated, which answers with the same change.
type Publisher interface {
	Publish(ctx context.Context, change *cityhubv1.CaseChange) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, change *cityhubv1.CaseChange) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, change *cityhubv1.CaseChange) error {
	return f(ctx, change)
}

// Options configures a Service.
type Options struct {
	// Store keeps the cases.
	Store *casestore.Store
	// Publisher publishes every change the Service stores.
	Publisher Publisher
	// Catalog names the districts, departments, event types and case
	// classes a request may name.
	Catalog *catalog.Catalog
	// Calendar is the working calendar deadlines run on: the catalog's.
	Calendar *workcal.Calendar
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate reports every missing option.
func (o *Options) Validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("no case store"))
	}
	if o.Publisher == nil {
		errs = append(errs, errors.New("no publisher"))
	}
	if o.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if o.Calendar == nil {
		errs = append(errs, errors.New("no working calendar"))
	}
	return errors.Join(errs...)
}

// Service does what can be done with cases. Its methods are safe for
// concurrent use.
type Service struct {
	store *casestore.Store
	pub   Publisher
	cat   *catalog.Catalog
	cal   *workcal.Calendar
	now   func() time.Time
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: opts.Store, pub: opts.Publisher, cat: opts.Catalog, cal: opts.Calendar, now: opts.Now}, nil
}

// Case is a case as one caller is answered it.
type Case struct {
	// Case is the case, a copy the caller may keep.
	Case *cityhubv1.Case
	// History is the case's audit entries, oldest first; Get fills it in.
	History []*cityhubv1.AuditEntry
	// Allowed is what the caller may do with the case now, as the state
	// machine's table says (lifecycle.Allowed): a console offers exactly
	// these.
	Allowed []lifecycle.Option
}

// answer is c as p is answered it. c may be shared with the store's cache,
// so the answer holds a copy.
func answer(c *cityhubv1.Case, p *auth.Principal) Case {
	return Case{Case: proto.CloneOf(c), Allowed: lifecycle.Allowed(c, actor(p))}
}

// actor is who p acts as in the state machine and the audit history.
func actor(p *auth.Principal) lifecycle.Actor {
	return lifecycle.Actor{Subject: p.Subject, Role: p.Role, Dept: p.Dept}
}

// viaRE is the form of a channel name (Via of a request).
var viaRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:/-]{0,63}$`)

// checkVia refuses a channel name that viaRE does not accept; an empty
// one is the dispatcher API's, recorded as it always was.
func checkVia(via string) error {
	if via != "" && !viaRE.MatchString(via) {
		return invalid("via", "want 1 to 64 of a-z 0-9 . _ : / -, starting with a letter or digit")
	}
	return nil
}

// recordVia records on entry the channel a request came through.
func recordVia(entry *cityhubv1.AuditEntry, via string) {
	if via != "" && entry != nil {
		entry.Via = via
	}
}

// publish publishes change; a failure is the Service's own (OpError).
func (s *Service) publish(ctx context.Context, change *cityhubv1.CaseChange) error {
	if err := s.pub.Publish(ctx, change); err != nil {
		return &OpError{Op: "publish the change", Err: err}
	}
	return nil
}
