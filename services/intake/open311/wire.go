package open311

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// The documents of GeoReport v2, in the order and with the names the
// specification gives their elements. JSON follows the specification's
// mapping of the XML: a list element becomes an array, an empty element
// null.

// format is the representation a resource is asked for in.
type format string

const (
	formatXML  format = "xml"
	formatJSON format = "json"
)

var formats = []format{formatXML, formatJSON}

func (f format) contentType() string {
	if f == formatJSON {
		return "application/json; charset=utf-8"
	}
	return "text/xml; charset=utf-8"
}

// formatOf returns the format named by the extension of the last segment of
// path, and false when it names none that is served (the answer is then
// XML, the format every GeoReport server speaks).
func formatOf(path string) (name string, f format, ok bool) {
	seg := path[strings.LastIndexByte(path, '/')+1:]
	i := strings.LastIndexByte(seg, '.')
	if i < 0 {
		return seg, formatXML, false
	}
	switch format(seg[i+1:]) {
	case formatXML:
		return seg[:i], formatXML, true
	case formatJSON:
		return seg[:i], formatJSON, true
	}
	return seg[:i], formatXML, false
}

// text is an optional string: an empty element in XML, null in JSON.
type text string

// MarshalJSON writes null for the empty string.
func (t text) MarshalJSON() ([]byte, error) {
	if t == "" {
		return []byte("null"), nil
	}
	return marshalJSON(string(t))
}

// jsonForm is implemented by documents whose JSON form is not the
// document itself: lists are bare arrays.
type jsonForm interface{ jsonDoc() any }

type discoveryDoc struct {
	XMLName    xml.Name      `xml:"discovery" json:"-"`
	Changeset  string        `xml:"changeset" json:"changeset"`
	Contact    string        `xml:"contact" json:"contact"`
	KeyService string        `xml:"key_service" json:"key_service"`
	Endpoints  []endpointDoc `xml:"endpoints>endpoint" json:"endpoints"`
}

type endpointDoc struct {
	Specification string   `xml:"specification" json:"specification"`
	URL           string   `xml:"url" json:"url"`
	Changeset     string   `xml:"changeset" json:"changeset"`
	Type          string   `xml:"type" json:"type"`
	Formats       []string `xml:"formats>format" json:"formats"`
}

type serviceList struct {
	XMLName  xml.Name     `xml:"services"`
	Services []serviceDoc `xml:"service"`
}

func (l serviceList) jsonDoc() any { return nonNil(l.Services) }

type serviceDoc struct {
	Code        string `xml:"service_code" json:"service_code"`
	Name        string `xml:"service_name" json:"service_name"`
	Description text   `xml:"description" json:"description"`
	Metadata    bool   `xml:"metadata" json:"metadata"`
	Type        string `xml:"type" json:"type"`
	Keywords    text   `xml:"keywords" json:"keywords"`
	Group       text   `xml:"group" json:"group"`
}

type definitionDoc struct {
	XMLName    xml.Name       `xml:"service_definition" json:"-"`
	Code       string         `xml:"service_code" json:"service_code"`
	Attributes []attributeDoc `xml:"attributes>attribute" json:"attributes"`
}

type attributeDoc struct {
	Variable            bool       `xml:"variable" json:"variable"`
	Code                string     `xml:"code" json:"code"`
	Datatype            string     `xml:"datatype" json:"datatype"`
	Required            bool       `xml:"required" json:"required"`
	DatatypeDescription text       `xml:"datatype_description" json:"datatype_description"`
	Order               int        `xml:"order" json:"order"`
	Description         string     `xml:"description" json:"description"`
	Values              []valueDoc `xml:"values>value" json:"values,omitempty"`
}

type valueDoc struct {
	Key  string `xml:"key" json:"key"`
	Name string `xml:"name" json:"name"`
}

// createdList answers a POST: one request, with its id.
type createdList struct {
	XMLName  xml.Name     `xml:"service_requests"`
	Requests []createdDoc `xml:"request"`
}

func (l createdList) jsonDoc() any { return nonNil(l.Requests) }

type createdDoc struct {
	ID            string `xml:"service_request_id" json:"service_request_id"`
	ServiceNotice text   `xml:"service_notice" json:"service_notice"`
	AccountID     text   `xml:"account_id" json:"account_id"`
}

type requestList struct {
	XMLName  xml.Name     `xml:"service_requests"`
	Requests []requestDoc `xml:"request"`
}

func (l requestList) jsonDoc() any { return nonNil(l.Requests) }

type requestDoc struct {
	ID                string `xml:"service_request_id" json:"service_request_id"`
	Status            string `xml:"status" json:"status"`
	StatusNotes       text   `xml:"status_notes" json:"status_notes"`
	ServiceName       text   `xml:"service_name" json:"service_name"`
	ServiceCode       string `xml:"service_code" json:"service_code"`
	Description       text   `xml:"description" json:"description"`
	AgencyResponsible text   `xml:"agency_responsible" json:"agency_responsible"`
	ServiceNotice     text   `xml:"service_notice" json:"service_notice"`
	Requested         string `xml:"requested_datetime" json:"requested_datetime"`
	Updated           text   `xml:"updated_datetime" json:"updated_datetime"`
	Expected          text   `xml:"expected_datetime" json:"expected_datetime"`
	Address           text   `xml:"address" json:"address"`
	AddressID         text   `xml:"address_id" json:"address_id"`
	Zipcode           text   `xml:"zipcode" json:"zipcode"`
	// A report sent with an address only has no coordinates: XML leaves
	// the elements out, JSON says null.
	Lat      *float64 `xml:"lat" json:"lat"`
	Long     *float64 `xml:"long" json:"long"`
	MediaURL text     `xml:"media_url" json:"media_url"`
}

type errorList struct {
	XMLName xml.Name   `xml:"errors"`
	Errors  []errorDoc `xml:"error"`
}

func (l errorList) jsonDoc() any { return nonNil(l.Errors) }

type errorDoc struct {
	Code        int    `xml:"code" json:"code"`
	Description string `xml:"description" json:"description"`
}

// nonNil makes an empty list an empty JSON array rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// encode renders doc in f: XML with its declaration, as the specification
// asks, or JSON.
func encode(f format, doc any) ([]byte, error) {
	if f == formatJSON {
		if j, ok := doc.(jsonForm); ok {
			doc = j.jsonDoc()
		}
		b, err := marshalJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("encoding json: %w", err)
		}
		return append(b, '\n'), nil
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding xml: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// write sends doc with status in f.
func write(w http.ResponseWriter, f format, status int, doc any) int {
	b, err := encode(f, doc)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = encode(f, errorList{Errors: []errorDoc{{Code: status, Description: "the answer could not be encoded"}}})
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType())
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client may have gone; nothing to do about it
	return status
}
