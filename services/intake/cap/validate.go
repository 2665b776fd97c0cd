package cap

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Problem is one thing wrong with a CAP document, at the element Path
// names: "alert/sent", "alert/info[1]/area[0]/polygon[0]" (repeating
// elements are numbered from 0 in document order), or DocumentPath.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// String returns "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Message }

// Error is a CAP document that is not valid CAP 1.2: every problem found,
// in the order found.
type Error struct {
	Problems []Problem
}

// Error names the first problem and counts the others.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return "cap: invalid document"
	}
	msg := "cap: " + e.Problems[0].String()
	if n := len(e.Problems); n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	return msg
}

// Validate checks a against the rules of CAP 1.2: required elements, the
// vocabularies, identifiers, the references Update, Cancel, Ack and Error
// messages need, the restriction and addresses of Restricted and Private
// messages, and the geometry of areas. The error is an *Error listing
// every problem.
func (a *Alert) Validate() error {
	if probs := validate(a); len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// Message types that are about earlier messages, named in references.
var referring = []string{"Update", "Cancel", "Ack", "Error"}

// languageRE is the schema's xs:language.
var languageRE = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

type checker struct {
	probs []Problem
}

func (c *checker) add(path, format string, args ...any) {
	c.probs = append(c.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func validate(a *Alert) []Problem {
	c := &checker{}
	c.name("alert/identifier", a.Identifier)
	c.name("alert/sender", a.Sender)
	if a.Sent.IsZero() {
		c.add("alert/sent", "required")
	}
	c.enum("alert/status", "status", a.Status, true)
	c.enum("alert/msgType", "msgType", a.MsgType, true)
	c.enum("alert/scope", "scope", a.Scope, true)
	if a.Scope == "Restricted" && a.Restriction == "" {
		c.add("alert/restriction", "required when scope is Restricted: say who may see the message")
	}
	if a.Scope == "Private" && strings.TrimSpace(a.Addresses) == "" {
		c.add("alert/addresses", "required when scope is Private: name the recipients")
	}
	if slices.Contains(referring, a.MsgType) && len(a.References) == 0 {
		c.add("alert/references", "required for a%s %s message: name the earlier messages as sender,identifier,sent", an(a.MsgType), a.MsgType)
	}
	for i, r := range a.References {
		switch {
		case !plainName(r.Sender) || !plainName(r.Identifier):
			c.add("alert/references", "reference %d: sender and identifier must be non-empty, without spaces, commas, < or &", i+1)
		case r.Sent.IsZero():
			c.add("alert/references", "reference %d: no sent time", i+1)
		}
	}
	for i := range a.Infos {
		c.info(fmt.Sprintf("alert/info[%d]", i), &a.Infos[i])
	}
	return c.probs
}

func an(word string) string {
	if word != "" && strings.ContainsRune("AEIOU", rune(word[0])) {
		return "n"
	}
	return ""
}

// plainName reports whether s can be a CAP sender or identifier: not
// empty, no whitespace, no commas (references use them), no < or &.
func plainName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r == ',' || r == '<' || r == '&'
	})
}

func (c *checker) name(path, s string) {
	switch {
	case s == "":
		c.add(path, "required")
	case !plainName(s):
		c.add(path, "%q: no spaces, commas, < or & allowed", clip(s))
	}
}

func (c *checker) enum(path, element, v string, required bool) {
	switch {
	case v == "":
		if required {
			c.add(path, "required: one of %s", vocabularyList(element))
		}
	case !inVocabulary(element, v):
		c.add(path, "%q: want one of %s", clip(v), vocabularyList(element))
	}
}

func (c *checker) info(path string, in *Info) {
	if in.Language != "" && !languageRE.MatchString(in.Language) {
		c.add(path+"/language", "%q: want a language tag such as zh-CN", clip(in.Language))
	}
	if len(in.Categories) == 0 {
		c.add(path+"/category", "required: at least one of %s", vocabularyList("category"))
	}
	for i, v := range in.Categories {
		c.enum(fmt.Sprintf("%s/category[%d]", path, i), "category", v, true)
	}
	if in.Event == "" {
		c.add(path+"/event", "required")
	}
	for i, v := range in.ResponseTypes {
		c.enum(fmt.Sprintf("%s/responseType[%d]", path, i), "responseType", v, true)
	}
	c.enum(path+"/urgency", "urgency", in.Urgency, true)
	c.enum(path+"/severity", "severity", in.Severity, true)
	c.enum(path+"/certainty", "certainty", in.Certainty, true)
	c.pairs(path+"/eventCode", in.EventCodes)
	c.pairs(path+"/parameter", in.Parameters)
	for i, r := range in.Resources {
		p := fmt.Sprintf("%s/resource[%d]", path, i)
		if r.Desc == "" {
			c.add(p+"/resourceDesc", "required")
		}
		if r.MIMEType == "" {
			c.add(p+"/mimeType", "required")
		}
		if r.Size != nil && *r.Size < 0 {
			c.add(p+"/size", "%d: a size is not negative", *r.Size)
		}
	}
	for i := range in.Areas {
		c.area(fmt.Sprintf("%s/area[%d]", path, i), &in.Areas[i])
	}
}

func (c *checker) pairs(path string, vs []Value) {
	for i, v := range vs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if v.Name == "" {
			c.add(p+"/valueName", "required")
		}
		if v.Value == "" {
			c.add(p+"/value", "required")
		}
	}
}

func (c *checker) area(path string, a *Area) {
	if a.Desc == "" {
		c.add(path+"/areaDesc", "required")
	}
	for i, p := range a.Polygons {
		if err := p.check(); err != nil {
			c.add(fmt.Sprintf("%s/polygon[%d]", path, i), "%v", err)
		}
	}
	for i, ci := range a.Circles {
		p := fmt.Sprintf("%s/circle[%d]", path, i)
		if err := ci.Centre.check(); err != nil {
			c.add(p, "centre %v", err)
		}
		if !(ci.RadiusKM >= 0) || math.IsInf(ci.RadiusKM, 1) {
			c.add(p, "radius %v: want a distance in km, zero or more", ci.RadiusKM)
		}
	}
	c.pairs(path+"/geocode", a.Geocodes)
	if a.Ceiling != nil && a.Altitude == nil {
		c.add(path+"/ceiling", "given without altitude: a ceiling tops the range that starts at the altitude")
	}
	if a.Altitude != nil && a.Ceiling != nil && *a.Ceiling < *a.Altitude {
		c.add(path+"/ceiling", "%v is below the altitude %v", *a.Ceiling, *a.Altitude)
	}
}

func (p Point) check() error {
	if !(p.Lat >= -90 && p.Lat <= 90) {
		return fmt.Errorf("latitude %v is outside -90..90", p.Lat)
	}
	if !(p.Lon >= -180 && p.Lon <= 180) {
		return fmt.Errorf("longitude %v is outside -180..180", p.Lon)
	}
	return nil
}

func (p Polygon) check() error {
	if len(p) < 4 {
		return fmt.Errorf("%d points: a polygon needs at least 4 lat,lon pairs, the first repeated as the last", len(p))
	}
	for i, pt := range p {
		if err := pt.check(); err != nil {
			return fmt.Errorf("point %d: %w", i+1, err)
		}
	}
	if p[0] != p[len(p)-1] {
		return fmt.Errorf("not closed: the last point must repeat the first")
	}
	return nil
}
