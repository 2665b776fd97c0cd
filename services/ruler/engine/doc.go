// Package engine evaluates events against compiled rules (package
// rulepack): for each event it finds the rules whose condition holds, and
// the rules whose clear condition holds, with the alert fingerprint, labels,
// title and explanation of each. A rule with active sees only the events of
// its part of the working calendar; the others match none of its
// conditions. It keeps no state between events; alert state lives in
// package alertstate.
//
// An Engine is shared; each goroutine evaluates through its own Worker,
// which reuses one expr VM and one environment. Conditions run as package
// fastpath compiled them, which fills the environment only for the few
// that need it.
package engine
