// Package open311 is the Open311 GeoReport v2 adapter: citizens' reporting
// apps and the 12345 hotline system report city problems to cityhub, and
// follow them to their end, in the protocol they already speak.
//
// Under /open311/v2/ it serves, in XML and JSON alike (the extension of the
// resource picks the format):
//
//	GET  discovery.{xml,json}          the endpoint, its formats, how to get a key
//	GET  services.{xml,json}           the event types of the catalog that carry a report: block
//	GET  services/CODE.{xml,json}      a type's questions (attributes) and their choices
//	POST requests.{xml,json}           a report: becomes one event, through intake
//	GET  requests.{xml,json}           reports by id, service_code, time window and status (a token, as Authorization: Bearer)
//	GET  requests/ID.{xml,json}        one report and the status of the case it became (its id is the key)
//
// Every failure is answered with the protocol's error document
// (<errors><error><code/><description/></error></errors>, or its JSON
// array), one entry per problem, with the HTTP status in code: 400 for a
// request that cannot be served as sent, 403 for a missing or refused
// api_key, 404 for an unknown service_code, service_request_id or
// jurisdiction_id, 405, 413 and 415 for the wrong method, size or media
// type, 409 for an Idempotency-Key sent again with another report, and 503
// (with Retry-After) while the event log, the store or the cases are out of
// reach.
//
// # Reports become events
//
// A POST is form-encoded (application/x-www-form-urlencoded, UTF-8, at
// most MaxBodyBytes); every field is read from the body only, so that an
// api_key never sits in a URL or an access log. Unknown fields are ignored,
// as the protocol's optional arguments are. The api_key is a cityhub token
// of the source or commander role. The event's source is the token's only
// source; a token naming several must name "open311" among them, which is
// then used; a commander's token posts as "open311".
//
// The event is built from the form and handed to intake's Submit, the one
// path into the event log; intake validates it as it validates every event,
// and its refusals come back as error documents naming the form's fields.
// The event has the service_code as its type, the hub's time of the POST as
// occurred_at, lat and long (or lon) as its coordinates, address_string as
// its address, description as its text, and the typed answers to the
// service's questions as attrs, plus media_url when given. The reporter's
// email, phone, names, device_id and account_id are personal data and stay
// out of the event and the store: when an email or a phone was given, the
// event says only contact_given=true (the reporting system can reach the
// reporter; the hub cannot). Text XML cannot carry (control characters) is
// refused, so that every answer says what the report said.
//
// The district comes from, in this order: attribute[district] (a question
// every service definition carries, listing the catalog's districts); the
// district whose centre is nearest to lat/long, within Options.MaxDistance;
// the one district named in address_string (by its name, 徐汇区 or 徐汇, or
// its code). A report none of these places in exactly one district is
// refused, asking for attribute[district].
//
// # Ids and retries
//
// The service_request_id is the event's id: a fresh lower-case ULID per
// POST. GeoReport v2 has no idempotency of its own, so a client may send an
// Idempotency-Key header: the id is then derived from the key and the
// source, a retry of the same report gets the same id (and is not posted
// again once it was recorded), and the key reused for a different report is
// refused with 409. Without the header, a retry after a 503 may post the
// report twice.
//
// # Following a report
//
// Each accepted report is recorded in a Store (RedisStore) after intake
// accepted its event, without personal data. GET requests lists the records
// of a window (90 days by default and at most; at most MaxResults, newest
// first) and asks Cases for the status of the case each report became:
// open or closed, the case's handling note as status_notes, the lead
// department's name as agency_responsible, and when the case last changed as
// updated_datetime. A report no case holds yet is open, with no agency.
package open311
