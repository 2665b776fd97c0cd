package alertmanager

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MatchType is how a Matcher compares a label's value.
type MatchType string

// The match types, spelled as Alertmanager's matchers spell them.
const (
	MatchEqual     MatchType = "="
	MatchNotEqual  MatchType = "!="
	MatchRegexp    MatchType = "=~"
	MatchNotRegexp MatchType = "!~"
)

// MaxMatcherBytes bounds the text of one matcher.
const MaxMatcherBytes = 1 << 10

var (
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// matcherRE splits `name op value`; the operators with two characters
	// come first so that "=~" is not read as "=" and a value "~…".
	matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$`)
)

// Matcher tests one label of an alert, as a matcher of Alertmanager's
// routes does: a label the alert does not carry has the value "", so
// `site=""` matches alerts without a site and `site!=""` those with one.
// A regular expression must match the whole value. The zero Matcher is
// invalid; build one with ParseMatcher (or write it in the mapping file).
type Matcher struct {
	name  string
	typ   MatchType
	value string
	re    *regexp.Regexp
}

// ParseMatcher parses `name="value"`, `name!="value"`, `name=~"regexp"`
// or `name!~"regexp"`. The value may be left unquoted when it has no
// leading or trailing spaces.
func ParseMatcher(s string) (Matcher, error) {
	if len(s) > MaxMatcherBytes {
		return Matcher{}, fmt.Errorf("matcher longer than %d bytes", MaxMatcherBytes)
	}
	m := matcherRE.FindStringSubmatch(s)
	if m == nil {
		return Matcher{}, fmt.Errorf("matcher %q: want name=\"value\", name!=\"value\", name=~\"regexp\" or name!~\"regexp\"", clip(s))
	}
	value := m[3]
	if strings.HasPrefix(value, `"`) {
		v, err := strconv.Unquote(value)
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: the value is not a well-formed quoted string", clip(s))
		}
		value = v
	} else if strings.ContainsAny(value, "\"'`=!~{},\\") {
		return Matcher{}, fmt.Errorf("matcher %q: quote a value that holds quotes, =, !, ~, braces, commas or backslashes", clip(s))
	}
	mt := Matcher{name: m[1], typ: MatchType(m[2]), value: value}
	if mt.typ == MatchRegexp || mt.typ == MatchNotRegexp {
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: %v", clip(s), err)
		}
		mt.re = re
	}
	return mt, nil
}

// UnmarshalText parses a matcher from the mapping file.
func (m *Matcher) UnmarshalText(b []byte) error {
	mt, err := ParseMatcher(string(b))
	if err != nil {
		return err
	}
	*m = mt
	return nil
}

// String returns the matcher as ParseMatcher reads it.
func (m Matcher) String() string {
	return m.name + string(m.typ) + strconv.Quote(m.value)
}

// valid reports whether m was parsed rather than left zero.
func (m Matcher) valid() bool { return labelNameRE.MatchString(m.name) && m.typ != "" }

// Matches reports whether the labels pass m.
func (m Matcher) Matches(labels map[string]string) bool {
	v := labels[m.name]
	switch m.typ {
	case MatchEqual:
		return v == m.value
	case MatchNotEqual:
		return v != m.value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	return false
}
