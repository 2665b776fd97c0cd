// Package cases is what can be done with a case, for any caller: open one,
// act on one (every step of the workflow, merge included), read one with
// its history, list them, read the refusals kept on one, and compute the
// evaluation figures. It knows nothing of HTTP: the dispatcher API decodes a
// request, calls a Service method and maps its error to an answer, and a
// notification's acknowledgement link or an Open311 adapter calls the same
// methods.
//
// Every method takes the caller as an *auth.Principal. Who sees which case
// is package scope's to say, what the caller may do to it lifecycle's; a
// case outside the caller's scope is ErrNotFound, exactly as one that does
// not exist. Refusals are typed (errors.go): ErrNotFound, ErrForbidden
// (*ForbiddenError), ErrConflict (*ConflictError, with the case as it is
// now), ErrInvalid (*InvalidError naming the field) and ErrTransition.
//
// A request that changes a case carries a request id: repeated, it gets
// the first answer and changes nothing. Every change is stored by one
// version-checked script (casestore.Store.Update, one round trip when the
// store holds the case) and published before the method returns.
package cases
