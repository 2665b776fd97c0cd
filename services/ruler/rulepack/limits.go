package rulepack

import "fmt"

// Limits on one expression, checked before it reaches the compiler: expr
// parses recursively and overflows the stack on deeply nested brackets.
const (
	MaxExprBytes = 4 << 10
	MaxExprDepth = 64
	MaxExprNodes = 1000
	// MemoryBudget bounds what one evaluation may allocate, in expr's units.
	MemoryBudget = 100000
)

// CheckExpr reports an expression that is too long or nests brackets too
// deeply to be handed to the compiler. Brackets inside string literals do
// not count.
func CheckExpr(src string) error {
	if len(src) > MaxExprBytes {
		return fmt.Errorf("expression of %d bytes exceeds %d", len(src), MaxExprBytes)
	}
	depth := 0
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		if quote != 0 {
			switch {
			case c == '\\' && quote != '`':
				i++
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'', '`':
			quote = c
		case '(', '[', '{':
			depth++
			if depth > MaxExprDepth {
				return fmt.Errorf("brackets nest deeper than %d", MaxExprDepth)
			}
		case ')', ']', '}':
			depth--
		}
	}
	return nil
}
