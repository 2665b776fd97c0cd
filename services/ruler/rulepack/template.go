package rulepack

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"text/template"
	"text/template/parse"
)

// MaxTitleBytes bounds a rendered title.
const MaxTitleBytes = 512

// Title is a parsed title or summary template.
type Title struct {
	t   *template.Template
	max int // bytes; MaxTitleBytes when zero
}

// allowedFuncs are the template functions a title may call: comparisons and
// lookups, nothing that formats or repeats without bound.
var allowedFuncs = map[string]bool{
	"and": true, "or": true, "not": true, "eq": true, "ne": true,
	"lt": true, "le": true, "gt": true, "ge": true, "index": true, "len": true,
}

// ParseTitle parses a title template, refusing what could loop, recurse or
// produce unbounded output: range, template, define and block actions and
// functions other than comparisons, index and len.
func ParseTitle(name, text string) (*Title, error) {
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, err
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("titles may not define templates")
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return &Title{t: t}, nil
	}
	if err := checkTemplate(t.Tree.Root); err != nil {
		return nil, err
	}
	return &Title{t: t}, nil
}

func checkTemplate(n parse.Node) error {
	switch n := n.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkTemplate(c); err != nil {
				return err
			}
		}
	case *parse.TextNode, *parse.CommentNode:
	case *parse.ActionNode:
		return checkPipe(n.Pipe)
	case *parse.IfNode:
		if err := checkPipe(n.Pipe); err != nil {
			return err
		}
		if err := checkTemplate(n.List); err != nil {
			return err
		}
		if n.ElseList != nil {
			return checkTemplate(n.ElseList)
		}
	case *parse.WithNode:
		if err := checkPipe(n.Pipe); err != nil {
			return err
		}
		if err := checkTemplate(n.List); err != nil {
			return err
		}
		if n.ElseList != nil {
			return checkTemplate(n.ElseList)
		}
	case *parse.RangeNode:
		return errors.New("titles may not use range")
	case *parse.TemplateNode:
		return errors.New("titles may not call templates")
	default:
		return fmt.Errorf("titles may not use %s", n)
	}
	return nil
}

func checkPipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			switch a := a.(type) {
			case *parse.IdentifierNode:
				if !allowedFuncs[a.Ident] {
					return fmt.Errorf("titles may not call %s", a.Ident)
				}
			case *parse.PipeNode:
				if err := checkPipe(a); err != nil {
					return err
				}
			case *parse.ChainNode:
				if p, ok := a.Node.(*parse.PipeNode); ok {
					if err := checkPipe(p); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// errTooLong stops a template whose output exceeds its bound.
var errTooLong = errors.New("title too long")

type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

// Execute renders the template for data, at most MaxTitleBytes long for a
// title and half of MaxSummaryBytes for a summary.
func (t *Title) Execute(data any) (string, error) {
	b := boundedBuffer{max: t.max}
	if b.max == 0 {
		b.max = MaxTitleBytes
	}
	if err := t.t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// formatNumber prints an attribute number as people write it: 35, not 35.000000.
func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}
