// Package yamlfile decodes configuration that people write in YAML —
// notify.yaml, the adapters' mappings and registries — into Go structs,
// and reports every problem at once as file:line:col, the way rule packs
// report theirs.
//
// Decode is strict: a key the struct does not have, a value of the wrong
// shape or type, a key given twice, an alias (an expansion bomb in waiting)
// and a document too large or too deep are errors at their position. A
// struct can learn where it was written: a field of type Pos (tagged
// `yaml:"-"`) receives the position of its mapping, and a field of type
// Positions receives the position of each key's value, so that validation
// after decoding points at the right place too (Errors.At).
package yamlfile

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits on a document, on top of the caller's size limit.
const (
	MaxDepth = 32
	MaxNodes = 100_000
)

// Pos is a position in a file; the zero Pos means the whole file.
type Pos struct{ Line, Column int }

// Positions maps a mapping's keys to the positions of their values.
type Positions map[string]Pos

// Error is one problem, at a position of a file.
type Error struct {
	File string
	Pos  Pos
	Err  error
}

// Error returns "file:line:col: message".
func (e *Error) Error() string {
	if e.Pos.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Pos.Line, e.Pos.Column, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in a file, in position order once Sorted.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// At adds a problem at pos of file.
func (es *Errors) At(file string, pos Pos, format string, args ...any) {
	*es = append(*es, &Error{File: file, Pos: pos, Err: fmt.Errorf(format, args...)})
}

// Err returns es sorted by position, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	})
	return es
}

// Decode decodes the YAML document b, read from file, into v, a non-nil
// pointer to a struct. b must be at most maxBytes long. It returns every
// problem it finds; v holds what could be decoded either way.
func Decode(file string, b []byte, maxBytes int, v any) Errors {
	d := &decoder{file: file}
	if len(b) > maxBytes {
		d.errs.At(file, Pos{}, "larger than %d bytes", maxBytes)
		return d.errs
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		panic("yamlfile: Decode needs a pointer to a struct")
	}
	var doc yaml.Node
	if err := unmarshal(b, &doc); err != nil {
		d.errs.At(file, syntaxPos(err), "%v", err)
		return d.errs
	}
	if doc.Kind == 0 { // an empty file
		d.errs.At(file, Pos{}, "empty")
		return d.errs
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.errs.At(file, Pos{}, "want one YAML document")
		return d.errs
	}
	if !d.bounded(doc.Content[0], 0) {
		return d.errs
	}
	d.value(doc.Content[0], rv.Elem(), "")
	return d.errs
}

type decoder struct {
	file  string
	errs  Errors
	nodes int
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, &Error{File: d.file, Pos: posOf(n), Err: errors.New(msg)})
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

// bounded checks the depth and size of the tree, and refuses aliases: a
// few lines of anchors can expand to gigabytes.
func (d *decoder) bounded(n *yaml.Node, depth int) bool {
	d.nodes++
	switch {
	case d.nodes > MaxNodes:
		d.errorf(n, "", "more than %d values", MaxNodes)
		return false
	case depth > MaxDepth:
		d.errorf(n, "", "nested more than %d deep", MaxDepth)
		return false
	case n.Kind == yaml.AliasNode:
		d.errorf(n, "", "aliases (*name) are not accepted; write the value out")
		return false
	}
	for _, c := range n.Content {
		if !d.bounded(c, depth+1) {
			return false
		}
	}
	return true
}

var (
	posType       = reflect.TypeFor[Pos]()
	positionsType = reflect.TypeFor[Positions]()
	durationType  = reflect.TypeFor[time.Duration]()
	textType      = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value decodes n into v; path names v for messages ("routes[2].match").
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if v.Kind() == reflect.Pointer {
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
		return
	}
	// A TextUnmarshaler takes a single value; one that is also a struct
	// may be written out as a mapping instead (a secret as {env: NAME}).
	if reflect.PointerTo(v.Type()).Implements(textType) && (n.Kind == yaml.ScalarNode || v.Kind() != reflect.Struct) {
		if s, ok := d.scalar(n, path); ok {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				d.errorf(n, path, "%v", err)
			}
		}
		return
	}
	switch {
	case v.Type() == durationType:
		if s, ok := d.scalar(n, path); ok {
			dur, err := time.ParseDuration(s)
			if err != nil {
				d.errorf(n, path, "%q: want a duration such as 90s, 5m or 2h", clip(s))
				return
			}
			v.SetInt(int64(dur))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind == yaml.ScalarNode && scalarKind(v.Type().Elem()) {
			// A list of single values may be written as one value:
			// department: gas for department: [gas].
			s := reflect.MakeSlice(v.Type(), 1, 1)
			d.value(n, s.Index(0), path+"[0]")
			v.Set(s)
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindOf(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			panic("yamlfile: map keys must be strings: " + v.Type().String())
		}
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping, got %s", kindOf(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		d.pairs(n, path, func(key string, k, val *yaml.Node) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.value(val, e, join(path, key))
			m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), e)
		})
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path); ok {
			b, err := strconv.ParseBool(s)
			if err != nil || n.Tag != "!!bool" {
				d.errorf(n, path, "%q: want true or false", clip(s))
				return
			}
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if s, ok := d.scalar(n, path); ok {
			i, err := strconv.ParseInt(s, 10, v.Type().Bits())
			if err != nil {
				d.errorf(n, path, "%q: want a whole number", clip(s))
				return
			}
			v.SetInt(i)
		}
	case reflect.Float32, reflect.Float64:
		if s, ok := d.scalar(n, path); ok {
			f, err := strconv.ParseFloat(s, v.Type().Bits())
			if err != nil {
				d.errorf(n, path, "%q: want a number", clip(s))
				return
			}
			v.SetFloat(f)
		}
	default:
		panic("yamlfile: cannot decode into " + v.Type().String())
	}
}

// structure decodes the mapping n into the struct v by its yaml tags.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case f.Type == posType:
			v.Field(i).Set(reflect.ValueOf(posOf(n)))
			continue
		case f.Type == positionsType || !f.IsExported():
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			panic("yamlfile: field " + t.String() + "." + f.Name + " has no yaml name")
		}
		fields[name] = i
	}
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", kindOf(n))
		return
	}
	var positions Positions
	for i := range t.NumField() {
		if t.Field(i).Type == positionsType {
			positions = Positions{}
			v.Field(i).Set(reflect.ValueOf(positions))
		}
	}
	d.pairs(n, path, func(key string, k, val *yaml.Node) {
		i, ok := fields[key]
		if !ok {
			d.errorf(k, path, "unknown field %q (want one of %s)", clip(key), strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			return
		}
		if positions != nil {
			positions[key] = posOf(val)
		}
		d.value(val, v.Field(i), join(path, key))
	})
}

// pairs calls f for each key and value of the mapping n, refusing keys
// that are not plain strings and keys given twice.
func (d *decoder) pairs(n *yaml.Node, path string, f func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.errorf(k, path, "keys must be plain names")
			continue
		}
		if seen[k.Value] {
			d.errorf(k, path, "%q given twice", clip(k.Value))
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

// scalar returns the text of the scalar n.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "want a single value, got %s", kindOf(n))
		return "", false
	}
	return n.Value, true
}

// scalarKind reports whether t is decoded from a single value.
func scalarKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return "a single value"
	}
	return "something else"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// clip shortens what a file said before it is echoed in a message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

// unmarshal parses b. The YAML parser is a large body of code fed
// untrusted input; a panic in it becomes an error rather than a crash.
func unmarshal(b []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: the caller tells
		}
		return &syntaxError{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return &syntaxError{fmt.Sprintf("line %d: want one YAML document", more.Line)}
	}
	return nil
}

// syntaxError is a parse error; the parser gives only its line.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string {
	if m := lineRE.FindStringSubmatchIndex(e.msg); m != nil && m[0] == 0 {
		return "malformed YAML: " + strings.TrimPrefix(e.msg[m[1]:], ": ")
	}
	return "malformed YAML: " + e.msg
}

var lineRE = regexp.MustCompile(`^line (\d+)`)

func syntaxPos(err error) Pos {
	var se *syntaxError
	if errors.As(err, &se) {
		if m := lineRE.FindStringSubmatch(se.msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return Pos{Line: n, Column: 1}
		}
	}
	return Pos{}
}
