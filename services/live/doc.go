// Package live is cityhub's websocket gateway: it follows the alert and case
// topics and pushes what changes, filtered per subscriber, to the wall
// screens and dispatcher consoles, and it serves the pages that draw them.
//
// # Protocol
//
// A client opens GET /v1/live and sends a subscribe frame:
//
//	{"type": "subscribe", "streams": ["alerts", "cases"],
//	 "filter": {"districts": [], "departments": [], "min_severity": "minor",
//	            "states": ["firing", "new", "dispatched", "accepted"]}}
//
// Every filter field is optional; an empty list means any. The states name
// alert states (firing, pending, resolved) and case statuses (new,
// dispatched, accepted, handled, closed, cancelled); those of one stream
// narrow that stream only.
//
// The gateway answers with one snapshot frame per stream, holding what is
// open now within the caller's scope and filter, then with deltas:
//
//	{"type": "snapshot", "stream": "alerts", "items": [...]}
//	{"type": "alert", "version": 7, "data": {...}}
//	{"type": "case", "version": 3, "data": {...}}
//	{"type": "removed", "stream": "cases", "id": "...", "version": 4}
//
// The subscription is attached to the delta feed before the snapshot is
// taken, and the deltas that arrive meanwhile are held back and sent after
// it, so nothing falls between the two. A client keeps the highest version
// it has seen per id; a delta may repeat what the snapshot already said.
//
// A removed frame says that a change (at that version) took an item the
// subscriber was shown out of its scope or filter: a case dispatched to
// another department, a case closed under a filter of open states, an alert
// resolved under a filter of firing ones. It comes once, and only to
// subscribers that wanted the item before the change; the client drops the
// item unless it holds a newer version. Without a states filter a resolved
// alert or a closed or cancelled case arrives as an ordinary delta, which
// also tells the client to drop it. The gateway knows what an item was
// before a change from the deltas it has read and the snapshots it has
// taken, so this holds for items a subscriber knows from its snapshot too.
//
// Another subscribe frame replaces the subscription and brings a fresh
// snapshot; {"type": "unsubscribe"} stops the deltas. A frame the gateway
// cannot understand is answered with {"type": "error", "message": "..."}
// and the connection stays up; a frame over 16 KiB closes it with 1009.
//
// Each connection has one writer goroutine and a bounded queue. A client
// whose queue overflows is sent {"type": "reset"} and closed with 1013
// (try again later); a write blocked on a client that stopped reading is
// given a moment, then the socket is dropped. The others are never held
// up: fan-out only ever queues without blocking. The client reconnects and
// subscribes again. The socket is closed with 4001 when the caller's token
// expires and with 1001 when the gateway shuts down. The gateway pings
// every 54 s and drops a client that has not answered within 60 s.
//
// Each replica follows the alert and case topics on its own, from their
// end, without a consumer group; a watchdog replaces a partition reader
// that delivers nothing while messages wait (see stream.Follower).
//
// # Authentication and origins
//
// The token travels as "Authorization: Bearer", as the subprotocol
// "bearer.<token>" next to "cityhub.v1" (the gateway then selects
// "cityhub.v1"; it never echoes the token), or as the access_token query
// parameter. A request with an Origin header must name one of the allowed
// origins exactly (scheme, host and port; letter case aside). Browsers always
// send Origin on a websocket handshake, so a request without one comes from
// a program (a test, a CLI), and a program can set headers: such a request
// is accepted only with its token in the Authorization header. The
// subprotocol and query forms exist for browsers, and the query form in
// particular leaks into logs and histories; refusing them without an Origin
// keeps a leaked token of that kind usable only from an allowed page.
//
// Scope follows the caller's role: a commander sees everything; a
// dispatcher or viewer sees its districts (all when it has none); a
// department sees the cases in which it has a part and the alerts whose
// dispatch names it; a source sees nothing and is refused.
package live
