package cap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on a document Parse reads. CAP nests five deep (alert, info, area,
// geocode, value) and a signature a few more; a warning with its areas
// fits in a few thousand elements.
const (
	MaxBytes    = 1 << 20
	MaxDepth    = 16
	MaxElements = 20_000
)

// DocumentPath is the Path of a problem with the document as a whole: its
// size, its syntax before the first element, a DOCTYPE.
const DocumentPath = "(document)"

// shape says which children each CAP element that holds elements may hold,
// and whether each may repeat; every other CAP element holds text. The
// tree reader refuses what the table does not list, and numbers repeating
// elements in paths (info[0]).
var shape = map[string]map[string]bool{
	"alert": {
		"identifier": false, "sender": false, "sent": false, "status": false, "msgType": false,
		"source": false, "scope": false, "restriction": false, "addresses": false, "code": true,
		"note": false, "references": false, "incidents": false, "info": true,
	},
	"info": {
		"language": false, "category": true, "event": false, "responseType": true, "urgency": false,
		"severity": false, "certainty": false, "audience": false, "eventCode": true, "effective": false,
		"onset": false, "expires": false, "senderName": false, "headline": false, "description": false,
		"instruction": false, "web": false, "contact": false, "parameter": true, "resource": true, "area": true,
	},
	"eventCode": {"valueName": false, "value": false},
	"parameter": {"valueName": false, "value": false},
	"geocode":   {"valueName": false, "value": false},
	"resource": {
		"resourceDesc": false, "mimeType": false, "size": false, "uri": false, "derefUri": false, "digest": false,
	},
	"area": {
		"areaDesc": false, "polygon": true, "circle": true, "geocode": true, "altitude": false, "ceiling": false,
	},
}

// node is an element of the document as read: CAP elements only.
type node struct {
	name string
	path string
	text []byte
	kids []*node
}

// children returns the children called name, in document order.
func (n *node) children(name string) []*node {
	var out []*node
	for _, k := range n.kids {
		if k.name == name {
			out = append(out, k)
		}
	}
	return out
}

// Parse reads a CAP 1.2 document and checks it against the standard. The
// error, when there is one, is an *Error listing every problem found.
func Parse(data []byte) (*Alert, error) {
	if len(data) > MaxBytes {
		return nil, &Error{Problems: []Problem{{Path: DocumentPath, Message: fmt.Sprintf("%d bytes, at most %d", len(data), MaxBytes)}}}
	}
	root, probs, unreadable := readTree(data)
	if root == nil {
		return nil, &Error{Problems: probs}
	}
	c := &converter{probs: probs, unreadable: unreadable}
	a := c.alert(root)
	// A value that could not be read is reported once, where it was read;
	// what validation says of the same element (its empty stand-in) is
	// left out.
	for _, p := range validate(a) {
		if !c.unreadable[p.Path] {
			c.probs = append(c.probs, p)
		}
	}
	if len(c.probs) > 0 {
		return nil, &Error{Problems: c.probs}
	}
	return a, nil
}

// frame is an open element while reading; skip marks elements read past
// (a signature, an unknown element) whose content is not kept.
type frame struct {
	n    *node
	skip bool
	// count numbers the repeating children seen so far, by name.
	count map[string]int
}

// reader builds the tree of CAP elements of one document.
type reader struct {
	probs []Problem
	// unreadable are the paths of text elements that held elements.
	unreadable map[string]bool
	stack      []*frame
	root       *node
	elements   int
}

func (r *reader) add(path, format string, args ...any) {
	r.probs = append(r.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// where is the path of the innermost element being read.
func (r *reader) where() string {
	for i := len(r.stack) - 1; i >= 0; i-- {
		if r.stack[i].n != nil {
			return r.stack[i].n.path
		}
	}
	return DocumentPath
}

// readTree reads data into a tree of CAP elements, within the limits, and
// returns the structural problems, and the paths of text elements that
// held elements instead. It returns a nil root when the document cannot be
// read at all.
func readTree(data []byte) (*node, []Problem, map[string]bool) {
	r := &reader{unreadable: map[string]bool{}}
	if !r.read(data) {
		return nil, r.probs, nil
	}
	if r.root == nil {
		r.add(DocumentPath, "no alert element: the document is empty")
		return nil, r.probs, nil
	}
	return r.root, r.probs, r.unreadable
}

// read reads the document's tokens; false stops at a problem that leaves
// nothing more to read.
func (r *reader) read(data []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		// encoding/xml reads UTF-8 itself and asks only for the others;
		// ASCII is UTF-8 too.
		if strings.EqualFold(charset, "us-ascii") || strings.EqualFold(charset, "ascii") {
			return in, nil
		}
		return nil, errors.New("only UTF-8 documents are read")
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			r.add(r.where(), "not well-formed XML: %s", strings.TrimPrefix(err.Error(), "xml: "))
			return false
		}
		switch t := tok.(type) {
		case xml.Directive:
			// A DOCTYPE is where entities are declared: internal ones can
			// expand exponentially, external ones reach outside.
			r.add(DocumentPath, "DOCTYPE and entity declarations are not accepted in CAP documents")
			return false
		case xml.StartElement:
			r.elements++
			if r.elements > MaxElements {
				r.add(r.where(), "more than %d elements", MaxElements)
				return false
			}
			if len(r.stack) >= MaxDepth {
				r.add(r.where(), "elements nested more than %d deep", MaxDepth)
				return false
			}
			f := r.open(t)
			if f == nil {
				return false
			}
			r.stack = append(r.stack, f)
		case xml.EndElement:
			f := r.stack[len(r.stack)-1] // the decoder matches end tags to start tags
			r.stack = r.stack[:len(r.stack)-1]
			if f.n != nil && shape[f.n.name] != nil && len(bytes.Trim(f.n.text, " \t\r\n")) > 0 {
				r.add(f.n.path, "holds elements, not text")
			}
		case xml.CharData:
			if len(r.stack) == 0 {
				if len(bytes.Trim(t, " \t\r\n")) > 0 {
					r.add(DocumentPath, "text outside the alert element")
				}
				continue
			}
			if f := r.stack[len(r.stack)-1]; f.n != nil {
				f.n.text = append(f.n.text, t...)
			}
		}
	}
}

// open checks a start tag against its parent and returns its frame; nil
// stops reading (the document is not CAP at all).
func (r *reader) open(t xml.StartElement) *frame {
	if len(r.stack) == 0 {
		if r.root != nil {
			r.add(DocumentPath, "a second root element <%s> after the alert", clip(t.Name.Local))
			return nil
		}
		if t.Name.Local != "alert" || t.Name.Space != Namespace {
			r.add(clip(t.Name.Local), "not a CAP 1.2 document: the root element is %s; want alert in namespace %s", describe(t.Name), Namespace)
			return nil
		}
		r.root = &node{name: "alert", path: "alert"}
		r.attributes(t, r.root.path)
		return &frame{n: r.root, count: map[string]int{}}
	}
	parent := r.stack[len(r.stack)-1]
	if parent.skip {
		return &frame{skip: true}
	}
	p := parent.n
	kids, holds := shape[p.name]
	if !holds {
		if !r.unreadable[p.path] {
			r.add(p.path, "holds text, not elements (found <%s>)", clip(t.Name.Local))
			r.unreadable[p.path] = true
		}
		return &frame{skip: true}
	}
	if t.Name.Space != Namespace {
		if p.name == "alert" && t.Name.Space == dsigNamespace {
			return &frame{skip: true} // a signature: not ours to read
		}
		r.add(p.path+"/"+clip(t.Name.Local), "%s is not a CAP 1.2 element", describe(t.Name))
		return &frame{skip: true}
	}
	many, known := kids[t.Name.Local]
	if !known {
		r.add(p.path+"/"+clip(t.Name.Local), "not an element of %s in CAP 1.2", p.name)
		return &frame{skip: true}
	}
	path := p.path + "/" + t.Name.Local
	if many {
		path = fmt.Sprintf("%s[%d]", path, parent.count[t.Name.Local])
	} else if parent.count[t.Name.Local] > 0 {
		r.add(path, "given more than once")
		return &frame{skip: true}
	}
	parent.count[t.Name.Local]++
	n := &node{name: t.Name.Local, path: path}
	p.kids = append(p.kids, n)
	r.attributes(t, path)
	return &frame{n: n, count: map[string]int{}}
}

// attributes reports attributes CAP does not define; namespace
// declarations and the schema-instance attributes are not the document's
// content.
func (r *reader) attributes(t xml.StartElement, path string) {
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns", a.Name.Space == "" && a.Name.Local == "xmlns":
		case a.Name.Space == "http://www.w3.org/2001/XMLSchema-instance":
		default:
			r.add(path, "attribute %s is not part of CAP", describe(a.Name))
		}
	}
}

func describe(n xml.Name) string {
	if n.Space == "" {
		return clip(n.Local)
	}
	return clip(n.Local) + " (namespace " + clip(n.Space) + ")"
}

// converter turns the tree into an Alert, collecting the problems of
// values that cannot be read.
type converter struct {
	probs []Problem
	// unreadable are the paths of values that could not be read.
	unreadable map[string]bool
}

// unreadableValue reports the value at path as one that cannot be read.
func (c *converter) unreadableValue(path, format string, args ...any) {
	c.probs = append(c.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	c.unreadable[path] = true
}

// value returns the text of the only child called name, without the
// whitespace around it, and its path ("" when absent).
func value(n *node, name string) (string, string) {
	for _, k := range n.kids {
		if k.name == name {
			return text(k), k.path
		}
	}
	return "", ""
}

func text(n *node) string { return string(bytes.Trim(n.text, " \t\r\n")) }

func texts(n *node, name string) []string {
	var out []string
	for _, k := range n.children(name) {
		out = append(out, text(k))
	}
	return out
}

func (c *converter) alert(n *node) *Alert {
	a := &Alert{}
	a.Identifier, _ = value(n, "identifier")
	a.Sender, _ = value(n, "sender")
	a.Sent = c.time(n, "sent")
	a.Status, _ = value(n, "status")
	a.MsgType, _ = value(n, "msgType")
	a.Source, _ = value(n, "source")
	a.Scope, _ = value(n, "scope")
	a.Restriction, _ = value(n, "restriction")
	a.Addresses, _ = value(n, "addresses")
	a.Codes = texts(n, "code")
	a.Note, _ = value(n, "note")
	if s, path := value(n, "references"); path != "" {
		a.References = c.references(s, path)
	}
	a.Incidents, _ = value(n, "incidents")
	for _, k := range n.children("info") {
		a.Infos = append(a.Infos, c.info(k))
	}
	return a
}

// time reads the time of the child called name; the zero time when it is
// absent or unreadable.
func (c *converter) time(n *node, name string) time.Time {
	s, path := value(n, name)
	if path == "" {
		return time.Time{}
	}
	t, err := ParseTime(s)
	if err != nil {
		c.unreadableValue(path, "%v", err)
		return time.Time{}
	}
	return t
}

// references reads the references element into c's problems.
func (c *converter) references(s, path string) []Reference {
	refs, errs := ParseReferences(s)
	for _, err := range errs {
		c.unreadableValue(path, "%v", err)
	}
	return refs
}

// ParseReferences reads "sender,identifier,sent" triples separated by
// whitespace, returning those it could read and an error for each it
// could not.
func ParseReferences(s string) ([]Reference, []error) {
	var (
		out  []Reference
		errs []error
	)
	for i, f := range strings.Fields(s) {
		parts := strings.Split(f, ",")
		if len(parts) != 3 {
			errs = append(errs, fmt.Errorf("reference %d %q: want sender,identifier,sent", i+1, clip(f)))
			continue
		}
		t, err := ParseTime(parts[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("reference %d: sent %w", i+1, err))
			continue
		}
		out = append(out, Reference{Sender: parts[0], Identifier: parts[1], Sent: t})
	}
	return out, errs
}

func (c *converter) info(n *node) Info {
	var in Info
	in.Language, _ = value(n, "language")
	in.Categories = texts(n, "category")
	in.Event, _ = value(n, "event")
	in.ResponseTypes = texts(n, "responseType")
	in.Urgency, _ = value(n, "urgency")
	in.Severity, _ = value(n, "severity")
	in.Certainty, _ = value(n, "certainty")
	in.Audience, _ = value(n, "audience")
	in.EventCodes = pairs(n, "eventCode")
	in.Effective = c.time(n, "effective")
	in.Onset = c.time(n, "onset")
	in.Expires = c.time(n, "expires")
	in.SenderName, _ = value(n, "senderName")
	in.Headline, _ = value(n, "headline")
	in.Description, _ = value(n, "description")
	in.Instruction, _ = value(n, "instruction")
	in.Web, _ = value(n, "web")
	in.Contact, _ = value(n, "contact")
	in.Parameters = pairs(n, "parameter")
	for _, k := range n.children("resource") {
		in.Resources = append(in.Resources, c.resource(k))
	}
	for _, k := range n.children("area") {
		in.Areas = append(in.Areas, c.area(k))
	}
	return in
}

func pairs(n *node, name string) []Value {
	var out []Value
	for _, k := range n.children(name) {
		var v Value
		v.Name, _ = value(k, "valueName")
		v.Value, _ = value(k, "value")
		out = append(out, v)
	}
	return out
}

var (
	integerRE = regexp.MustCompile(`^[+-]?[0-9]+$`)
	decimalRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
	// timeRE is the schema's pattern for CAP times.
	timeRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$`)
)

func (c *converter) resource(n *node) Resource {
	var r Resource
	r.Desc, _ = value(n, "resourceDesc")
	r.MIMEType, _ = value(n, "mimeType")
	if s, path := value(n, "size"); path != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if !integerRE.MatchString(s) || err != nil {
			c.unreadableValue(path, "%q: want a whole number of bytes", clip(s))
		} else {
			r.Size = &v
		}
	}
	r.URI, _ = value(n, "uri")
	r.DerefURI, _ = value(n, "derefUri")
	r.Digest, _ = value(n, "digest")
	return r
}

func (c *converter) area(n *node) Area {
	var a Area
	a.Desc, _ = value(n, "areaDesc")
	for _, k := range n.children("polygon") {
		p, err := ParsePolygon(text(k))
		if err != nil {
			c.unreadableValue(k.path, "%v", err)
		}
		a.Polygons = append(a.Polygons, p) // nil when unreadable: indexes stay the document's
	}
	for _, k := range n.children("circle") {
		ci, err := ParseCircle(text(k))
		if err != nil {
			c.unreadableValue(k.path, "%v", err)
		}
		a.Circles = append(a.Circles, ci)
	}
	a.Geocodes = pairs(n, "geocode")
	a.Altitude = c.decimal(n, "altitude")
	a.Ceiling = c.decimal(n, "ceiling")
	return a
}

func (c *converter) decimal(n *node, name string) *float64 {
	s, path := value(n, name)
	if path == "" {
		return nil
	}
	v, err := parseDecimal(s)
	if err != nil {
		c.unreadableValue(path, "%v", err)
		return nil
	}
	return &v
}

// parseDecimal reads an xs:decimal: digits with an optional sign and
// point, never an exponent, NaN or infinity.
func parseDecimal(s string) (float64, error) {
	if !decimalRE.MatchString(s) {
		return 0, fmt.Errorf("%q: want a decimal number", clip(s))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a decimal number", clip(s))
	}
	return v, nil
}

// ParsePolygon reads a CAP polygon: whitespace-separated "lat,lon" pairs.
// It checks the form only; Validate checks the ring.
func ParsePolygon(s string) (Polygon, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("empty: want at least 4 lat,lon pairs, the first repeated as the last")
	}
	p := make(Polygon, 0, len(fields))
	for i, f := range fields {
		pt, err := parsePoint(f)
		if err != nil {
			return nil, fmt.Errorf("point %d: %w", i+1, err)
		}
		p = append(p, pt)
	}
	return p, nil
}

// ParseCircle reads a CAP circle: "lat,lon radius", the radius in
// kilometres.
func ParseCircle(s string) (Circle, error) {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return Circle{}, fmt.Errorf("%q: want a centre and a radius in km, such as \"31.2,121.4 5\"", clip(s))
	}
	pt, err := parsePoint(fields[0])
	if err != nil {
		return Circle{}, fmt.Errorf("centre: %w", err)
	}
	r, err := parseDecimal(fields[1])
	if err != nil {
		return Circle{}, fmt.Errorf("radius: %w", err)
	}
	return Circle{Centre: pt, RadiusKM: r}, nil
}

func parsePoint(s string) (Point, error) {
	lat, lon, ok := strings.Cut(s, ",")
	if !ok {
		return Point{}, fmt.Errorf("%q: want lat,lon", clip(s))
	}
	la, err := parseDecimal(lat)
	if err != nil {
		return Point{}, fmt.Errorf("latitude %w", err)
	}
	lo, err := parseDecimal(lon)
	if err != nil {
		return Point{}, fmt.Errorf("longitude %w", err)
	}
	return Point{Lat: la, Lon: lo}, nil
}

// clip shortens what a sender wrote before it is echoed in a message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	for i := 64; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return strings.ToValidUTF8(s[:i], "") + "…"
		}
	}
	return ""
}
