// Package alertmanager receives the notifications of Prometheus
// Alertmanager's webhook (payload version 4) and turns their alerts into
// city events, so that the monitoring of the city's own systems —
// pumping stations, tunnels, gauges — raises events that rules judge like
// any other.
//
// # Mapping
//
// A YAML file (rules/adapters/alertmanager.yaml, read by Load) lists
// mappings. An alert takes the first mapping whose matchers its labels
// pass (Alertmanager's matcher syntax: =, !=, =~, !~) and becomes an event
// of the mapping's catalog type, with its district, street, grid, address,
// lon and lat, severity and attributes taken from labels, annotations or
// fixed values, and its text from annotations. The file is checked
// against the catalog with every problem at file:line:col.
//
// # Events
//
// The event of an alert has the id EventID(fingerprint, status, startsAt),
// so an alert Alertmanager sends again is the same event. A firing alert
// occurs at its startsAt. A resolved alert becomes a clear: an event of
// the mapping's clear_type (the catalog's waterlogging_cleared, say), or
// of its type when it names none, occurring at endsAt, without a
// severity, with only the attributes that come from labels or fixed
// values (annotations hold the last firing measurement, which would set
// threshold rules off again), and with its text marked resolved. Every event carries resolved (bool), am_status
// and am_fingerprint.
//
// # Answers
//
// Alertmanager sends a notification again only after a 5xx answer; every
// other failure is final. So:
//
//   - 200 once intake has taken the events of every alert that became
//     one; the body lists their ids and the alerts that became none.
//     Alerts that match no mapping, or whose event intake refuses, are
//     counted (cityhub_alertmanager_alerts_total) and listed, but do not
//     hold back the rest of their group.
//   - 422 when no alert of the notification became an event: nothing is
//     lost by not sending it again, and Alertmanager records the failed
//     notification where its operators look.
//   - 400 for a body that is not a version 4 notification, 413 for one
//     over MaxBodyBytes or MaxAlerts alerts (set max_alerts), 415 for
//     another content type; 401 and 403 for a missing or wrong token.
//   - 503 when the event log did not take the events; Alertmanager
//     retries, and the retried alerts are the same events.
package alertmanager
