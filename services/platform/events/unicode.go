package events

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// suspectUnicode reports whether raw may hold text that encoding/json
// would silently replace with U+FFFD: bytes that are not UTF-8, or a
// \uD800–\uDFFF escape, which is valid only as half of a surrogate pair.
// It is cheap, so that only suspect events pay for unicodeErrors.
func suspectUnicode(raw []byte) bool {
	return !utf8.Valid(raw) || bytes.Contains(raw, []byte(`\ud`)) || bytes.Contains(raw, []byte(`\uD`))
}

// unicodeErrors names every string of the event raw (the top-level
// fields, location.* and attrs.*) that is not valid Unicode, that is,
// whose decoded text has a U+FFFD that the sender did not write.
func unicodeErrors(raw []byte) []FieldError {
	var errs []FieldError
	walkStrings(raw, "", 0, func(field string, leaf []byte) {
		errs = append(errs, FieldError{Field: field, Message: "not valid UTF-8 (or an unpaired surrogate escape)"})
	})
	slices.SortFunc(errs, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	if len(errs) == 0 && !utf8.Valid(raw) {
		// Only a key can be left: keys are decoded like values, so the
		// invalid name never reaches a check.
		errs = append(errs, FieldError{Message: "a field name is not valid UTF-8"})
	}
	return errs
}

// maxUnicodeDepth bounds the objects walkStrings enters: an event nests
// two deep (location, attrs); deeper is refused later as a wrong type.
const maxUnicodeDepth = 2

// walkStrings calls bad for every string in the object raw, and in the
// objects it holds down to maxUnicodeDepth, whose text is not what was
// sent. Anything that is not an object decodes as something else and is
// reported by the decoder that follows.
func walkStrings(raw []byte, prefix string, depth int, bad func(field string, leaf []byte)) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return
	}
	for name, v := range obj {
		field := clip(strings.ToValidUTF8(name, "\uFFFD"))
		if prefix != "" {
			field = prefix + "." + field
		}
		v = bytes.TrimSpace(v)
		switch {
		case len(v) > 0 && v[0] == '{' && depth < maxUnicodeDepth:
			walkStrings(v, field, depth+1, bad)
		case len(v) > 0 && v[0] == '"':
			if replaced(v) {
				bad(field, v)
			}
		}
	}
}

// replaced reports whether decoding the JSON string leaf yields a U+FFFD
// that leaf does not spell, as the character or as \uFFFD.
func replaced(leaf []byte) bool {
	if !utf8.Valid(leaf) {
		return true
	}
	var s string
	if json.Unmarshal(leaf, &s) != nil {
		return false
	}
	got := strings.Count(s, "\uFFFD")
	if got == 0 {
		return false
	}
	sent := bytes.Count(leaf, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(leaf), []byte(`\ufffd`))
	return got > sent
}
