// Package cap speaks the Common Alerting Protocol 1.2 (OASIS) for cityhub,
// in both directions.
//
// In: the meteorological and emergency bureaus post their warnings to
// POST /v1/cap as CAP XML. Parse reads a document with bounded size, depth
// and element count, refuses DOCTYPE and entity declarations, and checks it
// against the rules of the CAP 1.2 standard and its schema, reporting every
// problem at once, each naming the element it is about
// ("alert/info[1]/area[0]/polygon[0]"). Config (rules/adapters/cap.yaml)
// says which catalog event type each info block becomes and how its areas
// (geocodes, polygons, circles) name the city's districts; Config.Events
// turns a document into events, one per info block, area and district,
// with ids derived from the message's sender and identifier, so a
// redelivered document is the same events. The Handler hands them to
// intake's Submit, the one path into the event log.
//
// Out: the Publisher folds the city's own alerts, for the rules that
// publish, into CAP messages — Alert when one fires, Update when it
// escalates, Cancel when it resolves — kept in Redis (the newest few
// hundred) and served anonymously as an Atom feed at GET /v1/cap/feed.atom,
// each message also at GET /v1/cap/messages/{identifier}.xml.
//
// The package is named for the protocol; a file that imports it shadows
// the builtin cap, so importers that need both name the import (capxml).
package cap
