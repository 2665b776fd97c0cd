package cap

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Namespace is the XML namespace of CAP 1.2 documents.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// dsigNamespace is XML Signature's: the schema lets a signature follow the
// message's own elements.
const dsigNamespace = "http://www.w3.org/2000/09/xmldsig#"

// Alert is a CAP 1.2 message. Times are zero when absent; Parse keeps the
// offset each was written with.
type Alert struct {
	Identifier  string
	Sender      string
	Sent        time.Time
	Status      string
	MsgType     string
	Source      string
	Scope       string
	Restriction string
	// Addresses is the space-separated list of the recipients of a
	// Private message, as written.
	Addresses  string
	Codes      []string
	Note       string
	References []Reference
	// Incidents is the space-separated list of incident ids, as written.
	Incidents string
	Infos     []Info
}

// Reference names an earlier message: what Update, Cancel, Ack and Error
// messages are about.
type Reference struct {
	Sender     string
	Identifier string
	Sent       time.Time
}

// String returns the reference as CAP writes it: sender,identifier,sent.
func (r Reference) String() string {
	return r.Sender + "," + r.Identifier + "," + FormatTime(r.Sent)
}

// Info is one info block: the event, its urgency, severity and certainty,
// the texts for people, and the areas it concerns.
type Info struct {
	// Language is an RFC 3066 tag; en-US when empty.
	Language      string
	Categories    []string
	Event         string
	ResponseTypes []string
	Urgency       string
	Severity      string
	Certainty     string
	Audience      string
	EventCodes    []Value
	Effective     time.Time
	Onset         time.Time
	Expires       time.Time
	SenderName    string
	Headline      string
	Description   string
	Instruction   string
	Web           string
	Contact       string
	Parameters    []Value
	Resources     []Resource
	Areas         []Area
}

// Value is a valueName/value pair: an eventCode, a parameter or a geocode.
type Value struct {
	Name  string
	Value string
}

// Resource is a file that goes with an info block.
type Resource struct {
	Desc     string
	MIMEType string
	// Size is in bytes; nil when absent.
	Size *int64
	URI  string
	// DerefURI is the resource itself, base64-encoded.
	DerefURI string
	Digest   string
}

// Area is where an info block applies: a description and any number of
// polygons, circles and geocodes.
type Area struct {
	Desc     string
	Polygons []Polygon
	Circles  []Circle
	Geocodes []Value
	// Altitude and Ceiling are in feet above mean sea level; nil when
	// absent. Ceiling is only given with Altitude.
	Altitude *float64
	Ceiling  *float64
}

// Point is a WGS 84 coordinate.
type Point struct {
	Lat, Lon float64
}

// Polygon is a closed ring of at least four points, the first repeated as
// the last.
type Polygon []Point

// Circle is a centre and a radius in kilometres.
type Circle struct {
	Centre   Point
	RadiusKM float64
}

// The vocabularies of CAP 1.2: the values each enumerated element may take.
// Validation, the configuration's checks and Marshal all read this table.
var vocabulary = map[string][]string{
	"status":       {"Actual", "Exercise", "System", "Test", "Draft"},
	"msgType":      {"Alert", "Update", "Cancel", "Ack", "Error"},
	"scope":        {"Public", "Restricted", "Private"},
	"category":     {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"},
	"responseType": {"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"},
	"urgency":      {"Immediate", "Expected", "Future", "Past", "Unknown"},
	"severity":     {"Extreme", "Severe", "Moderate", "Minor", "Unknown"},
	"certainty":    {"Observed", "Likely", "Possible", "Unlikely", "Unknown"},
}

// inVocabulary reports whether v is one of the values of element.
func inVocabulary(element, v string) bool { return slices.Contains(vocabulary[element], v) }

func vocabularyList(element string) string { return strings.Join(vocabulary[element], ", ") }

// timeLayout is CAP's dateTime: seconds, and an offset that is never "Z".
const timeLayout = "2006-01-02T15:04:05-07:00"

// FormatTime writes t as CAP does: to the second, with its offset, UTC as
// -00:00.
func FormatTime(t time.Time) string {
	s := t.Format(timeLayout)
	if _, off := t.Zone(); off == 0 {
		s = s[:len(s)-6] + "-00:00"
	}
	return s
}

// ParseTime reads a CAP dateTime: YYYY-MM-DDThh:mm:ss followed by an
// explicit offset (+hh:mm or -hh:mm; -00:00 is UTC). "Z", fractions of a
// second and missing offsets are refused, as the schema's pattern does.
func ParseTime(s string) (time.Time, error) {
	if !timeRE.MatchString(s) {
		return time.Time{}, fmt.Errorf("%q: want a time such as 2026-07-01T08:30:00+08:00 (seconds and an explicit offset; not Z)", clip(s))
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: not a real time", clip(s))
	}
	return t, nil
}
