package cases

import (
	"errors"
	"fmt"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/casestore"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
)

// The kinds of refusal. Every error the Service returns for a request it
// refuses matches one of these with errors.Is; a typed error beside each
// carries what the caller needs to answer it. An error that matches none is
// a failure of Redis, Kafka or the stored data (see OpError): the request
// may succeed when repeated with the same request id.
var (
	// ErrNotFound means there is no such case, or the caller may not see
	// it: the two are told apart to no one, so that asking does not tell
	// whether a case exists outside one's scope.
	ErrNotFound = errors.New("no such case")
	// ErrForbidden means the caller may see what it asked about but may not
	// do what it asked: its role, its department or its districts do not
	// allow it. See ForbiddenError.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict means the case is not at the version the request
	// expected: someone changed it first. See ConflictError.
	ErrConflict = errors.New("case version conflict")
	// ErrInvalid means the request itself is wrong and will be refused
	// again as it is. See InvalidError and TooManyError.
	ErrInvalid = errors.New("invalid request")
	// ErrTransition means the state machine does not allow the action
	// from where the case, or the part acted on, is now.
	ErrTransition = errors.New("transition not allowed")
)

// ForbiddenError refuses a request for who the caller is. It matches
// ErrForbidden.
type ForbiddenError struct {
	// Reason says why, for people.
	Reason string
	err    error
}

// Error returns the reason.
func (e *ForbiddenError) Error() string { return e.Reason }

// Unwrap returns the state machine's refusal, if it was one.
func (e *ForbiddenError) Unwrap() error { return e.err }

// Is reports whether target is ErrForbidden.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// ConflictError refuses a change made on a stale version of a case. It
// matches ErrConflict.
type ConflictError struct {
	// Current is the case as it is now, a copy the caller may keep, to
	// decide again on; nil when it could not be read, and for a case being
	// created.
	Current *cityhubv1.Case
	err     error
}

// Error says which version the case is at and which one was expected.
func (e *ConflictError) Error() string { return e.err.Error() }

// Unwrap returns the store's conflict.
func (e *ConflictError) Unwrap() error { return e.err }

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// InvalidError refuses a malformed request. It matches ErrInvalid.
type InvalidError struct {
	// Field names the field to blame as the request's JSON spells it
	// ("expected_version", "sla.accept"); empty when the request as a whole
	// is wrong, e.g. an action the case's state machine cannot take that
	// way.
	Field string
	// Reason says what is wrong, for people.
	Reason string
	err    error
}

// Error returns "field: reason", or the reason alone.
func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap returns the refusal of the state machine or the store, if it was
// one.
func (e *InvalidError) Unwrap() error { return e.err }

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// invalid returns an *InvalidError blaming field.
func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// TooManyError refuses statistics over more cases than one request may
// read. It matches ErrInvalid: a narrower range or one district is the
// remedy, not a retry.
type TooManyError struct {
	// Cases were opened in the range asked for; Max is the bound.
	Cases, Max int64
}

// Error says how many cases there were and what to ask instead.
func (e *TooManyError) Error() string {
	return fmt.Sprintf("%d cases were opened in the range, more than the %d one request may read: narrow from/to or name a district", e.Cases, e.Max)
}

// Is reports whether target is ErrInvalid.
func (e *TooManyError) Is(target error) bool { return target == ErrInvalid }

// OpError is a failure of the Service's own: Redis or Kafka could not be
// reached, or what they hold could not be read. It matches none of the
// refusals.
type OpError struct {
	// Op says what failed ("read case", "publish the change").
	Op  string
	Err error
}

// Error returns "op: err".
func (e *OpError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *OpError) Unwrap() error { return e.Err }

// transitionError keeps the state machine's words for ErrTransition.
type transitionError struct{ err error }

func (e *transitionError) Error() string        { return e.err.Error() }
func (e *transitionError) Unwrap() error        { return e.err }
func (e *transitionError) Is(target error) bool { return target == ErrTransition }

// Reasons a change is refused before lifecycle or casestore see it.
var (
	// errOutOfScope refuses an action on a case the caller may not see.
	errOutOfScope = errors.New("case outside the caller's scope")
	// errNoTarget refuses a merge into a case that does not exist or that
	// the caller may not see; the two are told apart to no one, so that a
	// merge cannot probe for cases outside the caller's scope.
	errNoTarget = errors.New("no such case to merge into")
)

// refusal turns what lifecycle, casestore and the checks here refuse a
// change with into this package's errors; anything else failed as op.
func refusal(op string, err error) error {
	var conflict *ConflictError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errOutOfScope):
		return ErrNotFound
	case errors.Is(err, errNoTarget):
		return &InvalidError{Field: "into", Reason: "no such case", err: err}
	case errors.Is(err, casestore.ErrNotFound):
		return ErrNotFound
	case errors.As(err, &conflict):
		return err
	case errors.Is(err, casestore.ErrConflict):
		return &ConflictError{err: err}
	case errors.Is(err, lifecycle.ErrForbiddenTransition):
		return &transitionError{err}
	case errors.Is(err, lifecycle.ErrForbidden):
		return &ForbiddenError{Reason: err.Error(), err: err}
	case errors.Is(err, lifecycle.ErrInvalid), errors.Is(err, casestore.ErrInvalid):
		return &InvalidError{Reason: err.Error(), err: err}
	}
	return &OpError{Op: op, Err: err}
}
