// Package alertstate keeps the state of alerts: whether each is pending,
// firing or resolved, its version, severity, the events behind it, what
// mutes it, and the windows of count rules.
//
// Store keeps it in Redis. The changes a batch makes to one alert are one
// Lua script (apply.lua) over keys that share the alert's hash tag, so it
// runs unchanged on Redis Cluster; the script applies them in order exactly
// as it would one at a time, and reports the alert as it ends up, with the
// version it was in before each change of state. Every change is
// idempotent: an event the alert already holds, or a second resolution,
// changes nothing. That makes Kafka's redelivery harmless. The indexes of
// firing alerts and of resolution deadlines are sorted sets outside the
// alert's slot, kept by separate commands.
//
// Memory is the same state machine in Go, for rule tests and backtests,
// which run on a clock of their own. It is the reference the scripts are
// held to: a differential test (and a fuzz target) applies the same random
// updates and sweeps to both, on a real redis-server, and requires the same
// results and the same state.
//
// A pending alert (a rule with `for`) has matched but not yet for long
// enough; it fires on a later matching event or on a sweep (Promote) once
// its time has come, and resolves without firing when it is cleared or
// expires first.
package alertstate
