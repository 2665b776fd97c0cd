// Package rulepack reads rule packs (rules/packs/*.yaml): it parses the YAML
// with the position of every node, validates every field, and compiles each
// rule's condition and title once, reporting every problem of a pack at once
// as file:line:column. It does not evaluate rules; package engine does.
//
// Rule text is untrusted input. Before an expression reaches the expr
// compiler its size and bracket nesting are capped, the compiler's node
// budget is set, and only an allow-list of builtins is available. Titles are
// text/template templates restricted to field access, conditionals and
// comparisons, so they cannot loop or format without bound.
package rulepack
