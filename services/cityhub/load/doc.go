// Package load drives a running hub end to end and measures it: events of
// a mix (the simulator's city, or a storm) posted to intake in batches at
// stepped rates over a bounded set of keep-alive connections, while a
// commander websocket follows the alerts and cases they raise.
//
// For every step it reports what intake accepted, what the ruler evaluated
// (its events counter on the hub's /metrics), how far the ruler is behind,
// the hub's CPU per 1,000 events (process_cpu_seconds_total; in embedded
// mode the hub, its Kafka and its Redis are one process), and the latency
// from intake to alert and to case of marker events: a few events a
// second, each built to raise an alert and open a case of its own, timed
// from the moment their POST is sent to the moment the alert delta and the
// case delta carrying them arrive on the websocket.
//
// Stepping stops at the first step the hub cannot keep up with: intake
// accepting clearly less than the target rate, the ruler's backlog
// growing, or the markers' alerts or cases arriving seconds late.
//
// Three mixes: the simulator's city (a rainstorm), and the ruler
// benchmark's storm (mix=uniform) and ordinary day (its mix=city).
package load
