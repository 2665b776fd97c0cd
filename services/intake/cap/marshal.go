package cap

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// xmlHeader starts every document Marshal writes.
const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// Marshal writes a as a CAP 1.2 document, its elements in the schema's
// order. It refuses an alert that Validate refuses, so what it writes is
// what Parse accepts.
func Marshal(a *Alert) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	w := &writer{}
	w.buf.WriteString(xmlHeader)
	w.element(a)
	return w.buf.Bytes(), nil
}

// marshalElement writes a without the XML declaration, for a document
// that holds it (an Atom entry).
func marshalElement(a *Alert) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	w := &writer{}
	w.element(a)
	return bytes.TrimSuffix(w.buf.Bytes(), []byte("\n")), nil
}

type writer struct {
	buf   bytes.Buffer
	depth int
}

func (w *writer) indent() {
	for range w.depth {
		w.buf.WriteString("  ")
	}
}

func (w *writer) open(name string) {
	w.indent()
	w.buf.WriteString("<" + name + ">\n")
	w.depth++
}

func (w *writer) close(name string) {
	w.depth--
	w.indent()
	w.buf.WriteString("</" + name + ">\n")
}

// leaf writes <name>v</name>, or nothing when v is empty.
func (w *writer) leaf(name, v string) {
	if v == "" {
		return
	}
	w.indent()
	w.buf.WriteString("<" + name + ">")
	_ = xml.EscapeText(&w.buf, []byte(v)) // a bytes.Buffer does not fail
	w.buf.WriteString("</" + name + ">\n")
}

func (w *writer) pair(name string, v Value) {
	w.open(name)
	w.leaf("valueName", v.Name)
	w.leaf("value", v.Value)
	w.close(name)
}

func (w *writer) element(a *Alert) {
	w.buf.WriteString(`<alert xmlns="` + Namespace + `">` + "\n")
	w.depth++
	w.leaf("identifier", a.Identifier)
	w.leaf("sender", a.Sender)
	w.leaf("sent", FormatTime(a.Sent))
	w.leaf("status", a.Status)
	w.leaf("msgType", a.MsgType)
	w.leaf("source", a.Source)
	w.leaf("scope", a.Scope)
	w.leaf("restriction", a.Restriction)
	w.leaf("addresses", a.Addresses)
	for _, c := range a.Codes {
		w.leaf("code", c)
	}
	w.leaf("note", a.Note)
	if len(a.References) > 0 {
		refs := make([]string, len(a.References))
		for i, r := range a.References {
			refs[i] = r.String()
		}
		w.leaf("references", strings.Join(refs, " "))
	}
	w.leaf("incidents", a.Incidents)
	for i := range a.Infos {
		w.info(&a.Infos[i])
	}
	w.depth--
	w.buf.WriteString("</alert>\n")
}

func (w *writer) info(in *Info) {
	w.open("info")
	w.leaf("language", in.Language)
	for _, c := range in.Categories {
		w.leaf("category", c)
	}
	w.leaf("event", in.Event)
	for _, r := range in.ResponseTypes {
		w.leaf("responseType", r)
	}
	w.leaf("urgency", in.Urgency)
	w.leaf("severity", in.Severity)
	w.leaf("certainty", in.Certainty)
	w.leaf("audience", in.Audience)
	for _, v := range in.EventCodes {
		w.pair("eventCode", v)
	}
	for _, t := range []struct {
		name string
		v    time.Time
	}{{"effective", in.Effective}, {"onset", in.Onset}, {"expires", in.Expires}} {
		if !t.v.IsZero() {
			w.leaf(t.name, FormatTime(t.v))
		}
	}
	w.leaf("senderName", in.SenderName)
	w.leaf("headline", in.Headline)
	w.leaf("description", in.Description)
	w.leaf("instruction", in.Instruction)
	w.leaf("web", in.Web)
	w.leaf("contact", in.Contact)
	for _, v := range in.Parameters {
		w.pair("parameter", v)
	}
	for _, r := range in.Resources {
		w.open("resource")
		w.leaf("resourceDesc", r.Desc)
		w.leaf("mimeType", r.MIMEType)
		if r.Size != nil {
			w.leaf("size", strconv.FormatInt(*r.Size, 10))
		}
		w.leaf("uri", r.URI)
		w.leaf("derefUri", r.DerefURI)
		w.leaf("digest", r.Digest)
		w.close("resource")
	}
	for i := range in.Areas {
		w.area(&in.Areas[i])
	}
	w.close("info")
}

func (w *writer) area(a *Area) {
	w.open("area")
	w.leaf("areaDesc", a.Desc)
	for _, p := range a.Polygons {
		w.leaf("polygon", p.String())
	}
	for _, c := range a.Circles {
		w.leaf("circle", c.String())
	}
	for _, g := range a.Geocodes {
		w.pair("geocode", g)
	}
	if a.Altitude != nil {
		w.leaf("altitude", decimal(*a.Altitude))
	}
	if a.Ceiling != nil {
		w.leaf("ceiling", decimal(*a.Ceiling))
	}
	w.close("area")
}

// decimal writes v as an xs:decimal: no exponent.
func decimal(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// String returns the point as CAP writes it: "lat,lon".
func (p Point) String() string { return decimal(p.Lat) + "," + decimal(p.Lon) }

// String returns the polygon as CAP writes it: "lat,lon lat,lon …".
func (p Polygon) String() string {
	s := make([]string, len(p))
	for i, pt := range p {
		s[i] = pt.String()
	}
	return strings.Join(s, " ")
}

// String returns the circle as CAP writes it: "lat,lon radius".
func (c Circle) String() string { return fmt.Sprintf("%s %s", c.Centre, decimal(c.RadiusKM)) }
