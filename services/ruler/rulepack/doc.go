// Package rulepack reads rule packs (rules/packs/*.yaml): it parses the YAML
// with the position of every node, validates every field, and compiles each
// rule's conditions and templates once, reporting every problem of a pack at
// once as file:line:column. It does not evaluate rules; package engine does.
//
// # The format
//
// A pack has pack (its name), owner (a department), an optional version,
// and rules, silences and inhibit (at least one of the three). A rule has:
//
//	id             unique within the pack; the rule's name is pack/id
//	description    free text
//	when           an expr condition over `event`; must be bool
//	severity       minor | moderate | severe | extreme: the base severity
//	escalate       [{when: COND, severity: LEVEL}, ...], at most 8: tried in
//	               order on every matching event; the first that holds sets
//	               the alert's severity, and when none does it is the base.
//	               The alert stays the same alert (same id); each change of
//	               severity bumps its version and records previous_severity
//	               and severity_changed_at
//	group_by       labels: district, street, grid, type, source, attrs.NAME
//	count          {at_least: N, within: DURATION, distinct: FIELD}: fire when
//	               N matching events (or, with distinct, N distinct values of
//	               FIELD: source, location.district|street|grid|address,
//	               attrs.NAME, with or without "event." in front) fall in
//	               the window. A redelivered event counts once; an event
//	               whose distinct field is empty does not count
//	for            DURATION: the alert is pending until the condition has
//	               held this long; it fires on a later matching event or on
//	               the ruler's sweep, and never if it is cleared or expires
//	               first. Needs resolve_after or clear_when
//	resolve_after  DURATION: resolved when no event matched when for this
//	               long (events that match neither condition do not count)
//	clear_when     a condition that resolves the alert (with when, it gives
//	               hysteresis: raise at one level, clear at another)
//	title, summary text/templates over .event and .labels
//	dispatch       open a case when the alert fires: {lead, assist, sla:
//	               {accept, handle}, case_class}; `dispatch: default` or
//	               `dispatch: {}` takes the lead (the event type's owner)
//	               and the case class (the event type's class) from the
//	               catalog, and any field given overrides its default
//	shadow         true: evaluate and publish the alert marked shadow; it
//	               is never dispatched and inhibits nothing
//	publish        [cap]: make the rule's alerts public warnings in the city's
//	               CAP feed (Alert, Update on escalation, Cancel on resolve)
//	active         working_hours | off_hours: the rule sees only the events
//	               whose occurred_at is in working time (or outside it) on
//	               the catalog's calendar; to the others it is blind: they
//	               fire, clear and keep alive nothing of it
//
// The event fields conditions, templates, group_by and count.distinct
// name are one table, EventFields.
//
// Conditions are checked against the catalog, with each attribute typed as
// the event types the condition names declare it (every type of the
// catalog when it names none): an event type or attribute it does not
// declare, an attribute those event types declare with different types, an
// attribute compared with a literal of another type, an area in_area does
// not know, and a condition that is not provably bool (a number, or a value
// of unknown type such as get's) are load errors at their position. Besides
// the allow-listed builtins (Builtins), conditions may call Functions:
// in_area(event.location, "NAME"), distance_m(a, b), local_hour() and
// working_time(). The last two, and active, read the catalog's calendar
// (its time zone, work hours, weekdays, holidays and make-up working days),
// built once per load; without a catalog they are refused, as in_area is.
//
// A silence mutes alerts for a time (maintenance windows, roadworks):
//
//	silences:
//	  - name: tianping-roadworks          # unique across packs
//	    matchers: {rule: [traffic/congestion], street: tianping}
//	    starts: 2025-07-01T00:00:00+08:00
//	    ends: 2025-07-15T18:00:00+08:00
//	    reason: 天平路排水管道施工
//	    created_by: road-administration
//
// An inhibit rule mutes target alerts while a source alert fires with the
// same values of the equal labels; source and target must name rules:
//
//	inhibit:
//	  - source: {rule: flood-control/district-flooding}
//	    target: {rule: [flood-control/deep-waterlogging]}
//	    equal: [district]
//
// Matchers map rule, pack, severity or a label to a value or a list of
// values; a label an alert does not group by is read from its location
// (district, street, grid) or event type (type). Muted alerts are kept and
// published with silenced_by / inhibited_by set, and open no case.
//
// # Safety
//
// Rule text is untrusted input. Before an expression reaches the expr
// compiler its size and bracket nesting are capped (MaxExprBytes,
// MaxExprDepth), the compiler's node budget is set (MaxExprNodes), the
// VM's memory budget is MemoryBudget, and only an allow-list of builtins is
// available. Titles and summaries are text/template templates restricted
// to field access, conditionals and comparisons, with bounded output.
package rulepack
