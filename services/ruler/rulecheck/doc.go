// Package rulecheck is the rule author's toolkit behind the rulecheck
// command, in the manner of Prometheus' promtool: Check validates and lints
// rule packs, reporting every problem at once as file:line:col; RunTests
// runs rule tests and reports them for people and as JUnit XML; Backtest
// replays recorded events through packs on the events' own clock and diffs
// the alerts against a baseline of packs. Run is the command line itself,
// so that cmd/rulecheck stays a few lines and tests call it in-process.
//
// Packs are parsed and compiled by package rulepack and evaluated by the
// same alerting processor as the ruler, so what rulecheck says about a
// pack is what the ruler will do with it.
package rulecheck
