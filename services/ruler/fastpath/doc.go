// Package fastpath evaluates the conditions of compiled rules (package
// rulepack) without allocating, with the verdicts expr gives.
//
// Conditions are compiled by package rulepack against rulepack.Env, whose
// attributes are a map[string]any. Filling that map boxes every number and
// string of an event into an interface (one allocation each), and every
// field the VM reads through reflection is boxed again. For a stream where
// most events match no rule, that boxing is most of the cost.
//
// So Compile compiles each condition a second time, from the same text with
// the same options (rulepack.Rule.ConditionOptions), and a patch that
// replaces every comparison of event data with a literal (or with other
// event data) by a call __cityhub_test(k). Test k reads its operands
// straight from the protobuf event, through rulepack's event field table,
// into a small typed value and compares them in Go; the VM only sees the
// int constant k going in and a bool coming out, neither of which
// allocates. A condition left with nothing but tests joined by &&, || and !
// runs as Go, without the VM. What the patch does not cover (time fields,
// arithmetic, builtins, in_area, local_hour, `matches`, ...) still reads
// the event through rulepack.Env, which the caller then fills for that
// event (Program.NeedsEnv); a program that reads nothing else never needs
// it.
//
// The verdicts are expr's exactly: where the typed comparison cannot decide
// in the common way (a missing attribute compared for order, a list,
// mismatched kinds), it boxes its operands and defers to expr's own runtime
// functions, which panic as the VM would; Run returns the panic as the
// condition's evaluation error. Tests compare the two on hard cases here
// and on generated packs in package engine.
package fastpath
