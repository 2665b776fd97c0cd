package open311_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// The documents of GeoReport v2 as a client reads them, written here from
// the specification apart from the package's own types, so that a field
// named or nested wrongly there fails to parse here. testdata/spec holds an
// example of each, in XML and JSON, with the elements in the order the
// specification gives them; TestExamples holds these types to them.

type specDiscovery struct {
	XMLName    xml.Name       `xml:"discovery" json:"-"`
	Changeset  string         `xml:"changeset" json:"changeset"`
	Contact    string         `xml:"contact" json:"contact"`
	KeyService string         `xml:"key_service" json:"key_service"`
	Endpoints  []specEndpoint `xml:"endpoints>endpoint" json:"endpoints"`
}

type specEndpoint struct {
	Specification string   `xml:"specification" json:"specification"`
	URL           string   `xml:"url" json:"url"`
	Changeset     string   `xml:"changeset" json:"changeset"`
	Type          string   `xml:"type" json:"type"`
	Formats       []string `xml:"formats>format" json:"formats"`
}

type specServices struct {
	XMLName  xml.Name      `xml:"services" json:"-"`
	Services []specService `xml:"service"`
}

type specService struct {
	ServiceCode string `xml:"service_code" json:"service_code"`
	ServiceName string `xml:"service_name" json:"service_name"`
	Description string `xml:"description" json:"description"`
	Metadata    bool   `xml:"metadata" json:"metadata"`
	Type        string `xml:"type" json:"type"`
	Keywords    string `xml:"keywords" json:"keywords"`
	Group       string `xml:"group" json:"group"`
}

type specDefinition struct {
	XMLName     xml.Name        `xml:"service_definition" json:"-"`
	ServiceCode string          `xml:"service_code" json:"service_code"`
	Attributes  []specAttribute `xml:"attributes>attribute" json:"attributes"`
}

type specAttribute struct {
	Variable            bool        `xml:"variable" json:"variable"`
	Code                string      `xml:"code" json:"code"`
	Datatype            string      `xml:"datatype" json:"datatype"`
	Required            bool        `xml:"required" json:"required"`
	DatatypeDescription string      `xml:"datatype_description" json:"datatype_description"`
	Order               int         `xml:"order" json:"order"`
	Description         string      `xml:"description" json:"description"`
	Values              []specValue `xml:"values>value" json:"values"`
}

type specValue struct {
	Key  string `xml:"key" json:"key"`
	Name string `xml:"name" json:"name"`
}

// specRequests is the service_requests document: the answer to a POST
// (id, notice, account) and to GET requests (the rest).
type specRequests struct {
	XMLName  xml.Name      `xml:"service_requests" json:"-"`
	Requests []specRequest `xml:"request"`
}

type specRequest struct {
	ServiceRequestID  string   `xml:"service_request_id" json:"service_request_id"`
	Status            string   `xml:"status" json:"status"`
	StatusNotes       string   `xml:"status_notes" json:"status_notes"`
	ServiceName       string   `xml:"service_name" json:"service_name"`
	ServiceCode       string   `xml:"service_code" json:"service_code"`
	Description       string   `xml:"description" json:"description"`
	AgencyResponsible string   `xml:"agency_responsible" json:"agency_responsible"`
	ServiceNotice     string   `xml:"service_notice" json:"service_notice"`
	AccountID         string   `xml:"account_id" json:"account_id"`
	RequestedDatetime string   `xml:"requested_datetime" json:"requested_datetime"`
	UpdatedDatetime   string   `xml:"updated_datetime" json:"updated_datetime"`
	ExpectedDatetime  string   `xml:"expected_datetime" json:"expected_datetime"`
	Address           string   `xml:"address" json:"address"`
	AddressID         string   `xml:"address_id" json:"address_id"`
	Zipcode           string   `xml:"zipcode" json:"zipcode"`
	Lat               *float64 `xml:"lat" json:"lat"`
	Long              *float64 `xml:"long" json:"long"`
	MediaURL          string   `xml:"media_url" json:"media_url"`
}

type specErrors struct {
	XMLName xml.Name    `xml:"errors" json:"-"`
	Errors  []specError `xml:"error"`
}

type specError struct {
	Code        int    `xml:"code" json:"code"`
	Description string `xml:"description" json:"description"`
}

// parseDoc parses an answer in format f: XML into doc, JSON into doc too,
// or — for documents whose JSON form is an array — into the slice items
// points to. JSON fields the specification does not name are an error.
func parseDoc(t *testing.T, f string, body []byte, doc, items any) {
	t.Helper()
	if f == "xml" {
		if !bytes.HasPrefix(body, []byte(`<?xml version="1.0" encoding="utf-8"?>`)) {
			t.Fatalf("the XML answer does not start with its declaration:\n%s", body)
		}
		if err := xml.Unmarshal(body, doc); err != nil {
			t.Fatalf("parsing the XML answer: %v\n%s", err, body)
		}
		return
	}
	into := doc
	if items != nil {
		into = items
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("parsing the JSON answer: %v\n%s", err, body)
	}
}

// elementOrder returns the names of the child elements of the first
// element named parent in an XML document.
func elementOrder(t *testing.T, doc []byte, parent string) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var names []string
	depth, inside := 0, -1
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case inside < 0 && el.Name.Local == parent:
				inside = depth
			case inside >= 0 && depth == inside+1:
				names = append(names, el.Name.Local)
			}
		case xml.EndElement:
			if depth == inside {
				return names
			}
			depth--
		}
	}
	t.Fatalf("no element %s in\n%s", parent, doc)
	return nil
}

// jsonKeys returns the keys of the first object in a JSON document: the
// document itself, or the first item of an array.
func jsonKeys(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	if a, ok := v.([]any); ok && len(a) > 0 {
		v = a[0]
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("no object in %s", doc)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "spec", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// shape is one kind of document: its files in testdata/spec, its root and
// repeated element, and how to parse it.
type shape struct {
	file, parent string
	parse        func(t *testing.T, f string, b []byte) any
}

var shapes = []shape{
	{"discovery", "endpoint", func(t *testing.T, f string, b []byte) any {
		var d specDiscovery
		parseDoc(t, f, b, &d, nil)
		d.XMLName = xml.Name{}
		return d
	}},
	{"services", "service", func(t *testing.T, f string, b []byte) any {
		var d specServices
		parseDoc(t, f, b, &d, &d.Services)
		return d.Services
	}},
	{"service_definition", "attribute", func(t *testing.T, f string, b []byte) any {
		var d specDefinition
		parseDoc(t, f, b, &d, nil)
		d.XMLName = xml.Name{}
		return d
	}},
	{"post_response", "request", func(t *testing.T, f string, b []byte) any {
		var d specRequests
		parseDoc(t, f, b, &d, &d.Requests)
		return d.Requests
	}},
	{"requests", "request", func(t *testing.T, f string, b []byte) any {
		var d specRequests
		parseDoc(t, f, b, &d, &d.Requests)
		return d.Requests
	}},
	{"errors", "error", func(t *testing.T, f string, b []byte) any {
		var d specErrors
		parseDoc(t, f, b, &d, &d.Errors)
		return d.Errors
	}},
}

func shapeOf(t *testing.T, file string) shape {
	for _, s := range shapes {
		if s.file == file {
			return s
		}
	}
	t.Fatalf("no shape %s", file)
	return shape{}
}

// TestExamples holds the client's types to the examples: each example
// parses, and its XML and JSON say the same.
func TestExamples(t *testing.T) {
	for _, s := range shapes {
		t.Run(s.file, func(t *testing.T) {
			x := s.parse(t, "xml", example(t, s.file+".xml"))
			j := s.parse(t, "json", example(t, s.file+".json"))
			if !reflect.DeepEqual(x, j) {
				t.Errorf("XML and JSON examples differ:\nxml  %+v\njson %+v", x, j)
			}
			if reflect.ValueOf(x).IsZero() {
				t.Error("the example parsed to nothing")
			}
		})
	}
}

// conforms checks an answer against the example of its shape: it parses,
// the elements of its first repeated element are the example's, in the
// example's order (those the answer may leave out — values of a question
// that is not a list, lat and long of a report without them — aside), and
// its JSON has the example's keys. It returns the parsed answer.
func conforms(t *testing.T, file, f string, body []byte) any {
	t.Helper()
	s := shapeOf(t, file)
	got := s.parse(t, f, body)
	if f == "xml" {
		if bytes.Contains(body, []byte("<"+s.parent+">")) {
			order := elementOrder(t, body, s.parent)
			var want []string
			for _, name := range elementOrder(t, example(t, file+".xml"), s.parent) {
				if slices.Contains(order, name) || !optional[name] {
					want = append(want, name)
				}
			}
			if !slices.Equal(order, want) {
				t.Errorf("%s elements in the order\n%v\nwant\n%v", s.parent, order, want)
			}
		}
	} else if bytes.Contains(body, []byte("{")) {
		if want, keys := jsonKeys(t, example(t, file+".json")), jsonKeys(t, body); !slices.Equal(keys, want) {
			t.Errorf("JSON keys\n%v\nwant\n%v", keys, want)
		}
	}
	return got
}

// optional are the elements an answer may leave out.
var optional = map[string]bool{"values": true, "lat": true, "long": true}
