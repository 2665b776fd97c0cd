package open311

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of a POST requests body.
const (
	// MaxBodyBytes bounds the form; a larger body is refused with 413.
	MaxBodyBytes = 64 << 10
	// MaxDescriptionRunes is the specification's limit on description.
	MaxDescriptionRunes = 4000
	// maxFields bounds the distinct fields of a form, maxValues the values
	// of one field (the choices of a multivaluelist).
	maxFields = 128
	maxValues = 64
	// maxCodeBytes bounds an attribute code in attribute[CODE].
	maxCodeBytes = 64
)

// problem is one thing wrong with a request, named by the protocol's field.
type problem struct {
	field, message string
}

func (p problem) String() string {
	if p.field == "" {
		return p.message
	}
	return p.field + ": " + p.message
}

func problemf(field, format string, args ...any) problem {
	return problem{field: field, message: fmt.Sprintf(format, args...)}
}

// report is the form of a POST requests, read but not yet checked against
// a service.
type report struct {
	APIKey       string
	Jurisdiction string
	ServiceCode  string
	// Lat and Long are both set or both nil.
	Lat, Long   *float64
	Address     string
	AddressID   string
	Description string
	MediaURL    string
	// Personal names the personal fields that were given (email, phone …),
	// never their values.
	Personal []string
	// Attributes are the attribute[CODE] answers, by code, empty answers
	// left out.
	Attributes map[string][]string
}

// personalFields are the reporter's own details: never kept.
var personalFields = []string{"account_id", "device_id", "email", "first_name", "last_name", "phone"}

// singleFields are the form's fields of one value each.
var singleFields = append([]string{
	"address_id", "address_string", "api_key", "description", "jurisdiction_id",
	"lat", "lon", "long", "media_url", "service_code",
}, personalFields...)

// decodeRequest reads the body of a POST requests and checks what the
// protocol itself says of its fields: a service_code, a location (lat and
// long together, or address_string), numbers that are numbers, a
// description of at most MaxDescriptionRunes, a media_url that is an
// http(s) URL, and attribute[CODE] fields of a sane form. It returns every
// problem at once. Fields the protocol does not define are ignored; an
// empty field counts as one not sent, as the protocol's optional arguments
// do.
func decodeRequest(body []byte) (*report, []problem) {
	if !utf8.Valid(body) {
		// Percent-escapes are checked below, field by field.
		return nil, []problem{{message: "the body is not UTF-8 text"}}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, []problem{problemf("", "the body is not a form (application/x-www-form-urlencoded): %v", err)}
	}
	if len(form) > maxFields {
		return nil, []problem{problemf("", "%d fields, at most %d", len(form), maxFields)}
	}
	var probs []problem
	rep := &report{Attributes: map[string][]string{}}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	single := map[string]string{}
	for _, k := range keys {
		vs := form[k]
		name := clip(strings.ToValidUTF8(k, "\uFFFD"))
		if !utf8.ValidString(k) {
			probs = append(probs, problemf(name, "the field name is not UTF-8"))
			continue
		}
		if len(vs) > maxValues {
			probs = append(probs, problemf(name, "%d values, at most %d", len(vs), maxValues))
			continue
		}
		vs = slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
		bad := false
		for _, v := range vs {
			if !utf8.ValidString(v) {
				probs = append(probs, problemf(name, "the value is not UTF-8"))
				bad = true
				break
			}
		}
		if bad || len(vs) == 0 {
			continue
		}
		code, isAttr := attributeCode(k)
		if !isAttr && !slices.Contains(singleFields, k) {
			continue
		}
		if slices.ContainsFunc(vs, func(v string) bool { return !xmlText(v) }) {
			probs = append(probs, problemf(name, "control characters other than tab and line breaks cannot be kept"))
			continue
		}
		if isAttr {
			if code == "" || len(code) > maxCodeBytes || strings.ContainsAny(code, "[]") || !xmlText(code) {
				probs = append(probs, problemf(name, "want attribute[CODE] with the code of one of the service's attributes"))
				continue
			}
			if n := len(rep.Attributes[code]) + len(vs); n > maxValues {
				probs = append(probs, problemf("attribute["+code+"]", "%d values, at most %d", n, maxValues))
				continue
			}
			rep.Attributes[code] = append(rep.Attributes[code], vs...)
			continue
		}
		if len(vs) > 1 {
			probs = append(probs, problemf(k, "given %d times; send it once", len(vs)))
			continue
		}
		single[k] = vs[0]
	}

	rep.APIKey = single["api_key"]
	rep.Jurisdiction = single["jurisdiction_id"]
	rep.ServiceCode = strings.TrimSpace(single["service_code"])
	rep.Address = strings.TrimSpace(single["address_string"])
	rep.AddressID = strings.TrimSpace(single["address_id"])
	rep.Description = single["description"]
	rep.MediaURL = strings.TrimSpace(single["media_url"])
	for _, k := range personalFields {
		if single[k] != "" {
			rep.Personal = append(rep.Personal, k)
		}
	}

	if rep.ServiceCode == "" {
		probs = append(probs, problem{"service_code", "required: one of the codes of GET services"})
	}
	long, longName := single["long"], "long"
	if lon := single["lon"]; lon != "" {
		if long != "" && long != lon {
			probs = append(probs, problem{"lon", "differs from long; send one of them"})
		}
		long, longName = lon, "lon"
	}
	lat, latOK := coordinate(&probs, "lat", single["lat"], 90)
	lng, lngOK := coordinate(&probs, longName, long, 180)
	switch {
	case latOK && lngOK:
		rep.Lat, rep.Long = &lat, &lng
	case (single["lat"] == "") != (long == ""):
		probs = append(probs, problem{"lat", "send lat and long together"})
	}
	if single["lat"] == "" && long == "" && rep.Address == "" {
		if rep.AddressID != "" {
			probs = append(probs, problem{"address_id", "addresses are not known here by id: send lat and long, or address_string"})
		} else {
			probs = append(probs, problem{"lat", "a location is required: lat and long, or address_string"})
		}
	}
	if n := utf8.RuneCountInString(rep.Description); n > MaxDescriptionRunes {
		probs = append(probs, problemf("description", "%d characters, at most %d", n, MaxDescriptionRunes))
	}
	if rep.MediaURL != "" {
		if u, err := url.Parse(rep.MediaURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			probs = append(probs, problem{"media_url", "want an http or https URL"})
		}
	}
	return rep, probs
}

// xmlText reports whether s can be written in an XML 1.0 document as it
// is: no control characters but tab and line breaks, no U+FFFE or U+FFFF.
// What a report says is shown again in XML, so it is refused otherwise.
func xmlText(s string) bool {
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r < 0x20 || r == 0x7f || r == 0xfffe || r == 0xffff:
			return false
		}
	}
	return true
}

// attributeCode returns CODE of a field named attribute[CODE] or
// attribute[CODE][] (the form of a multivaluelist's choices).
func attributeCode(k string) (string, bool) {
	rest, ok := strings.CutPrefix(k, "attribute[")
	if !ok {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "[]")
	code, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return "", true
	}
	return code, true
}

// coordinate parses a latitude or longitude of at most limit degrees
// either way; an empty one is absent.
func coordinate(probs *[]problem, field, s string, limit float64) (float64, bool) {
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		*probs = append(*probs, problemf(field, "%q is not a number of degrees (WGS84)", clip(s)))
		return 0, false
	}
	if v < -limit || v > limit {
		*probs = append(*probs, problemf(field, "%v is outside -%v..%v", v, limit, limit))
		return 0, false
	}
	return v, true
}

// clip shortens what a client sent before it is echoed in an error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
