package catalog

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Report marks an event type that citizens may report through the
// Open311 adapter (a "service" in GeoReport v2 terms) and says how it is
// asked: the name and description a reporting app shows, and the questions
// (attributes) it puts to the person reporting. Every question fills one
// attribute the event type declares.
type Report struct {
	// ServiceName is the name apps show; the event type's name when empty.
	ServiceName string `yaml:"service_name" json:"service_name,omitempty"`
	Description string `yaml:"description" json:"description,omitempty"`
	// Group gathers services under one heading in an app (市容, 道路 …).
	Group    string   `yaml:"group" json:"group,omitempty"`
	Keywords []string `yaml:"keywords" json:"keywords,omitempty"`
	// Notice is what the person reporting is told once the report is
	// taken (the service_notice); the adapter has a default.
	Notice     string            `yaml:"notice" json:"notice,omitempty"`
	Attributes []ReportAttribute `yaml:"attributes" json:"attributes,omitempty"`
}

// Datatype is how a question is asked and answered, in GeoReport v2 terms.
type Datatype string

// The datatypes of GeoReport v2, and the attribute types each may fill.
const (
	// DatatypeString is one line of text; fills a string attribute.
	DatatypeString Datatype = "string"
	// DatatypeNumber is a number; fills a number attribute.
	DatatypeNumber Datatype = "number"
	// DatatypeDatetime is an ISO 8601 time with its offset; fills a string
	// attribute with the time in RFC 3339.
	DatatypeDatetime Datatype = "datetime"
	// DatatypeText is text that may span lines; fills a string attribute.
	DatatypeText Datatype = "text"
	// DatatypeSingleValueList is one choice among values; fills a string
	// attribute with the key chosen, or a bool attribute when the keys are
	// "true" and "false".
	DatatypeSingleValueList Datatype = "singlevaluelist"
	// DatatypeMultiValueList is any number of choices among values; fills
	// a string attribute with the keys chosen, comma-separated, in the
	// order of the values.
	DatatypeMultiValueList Datatype = "multivaluelist"
)

// Datatypes lists every datatype.
var Datatypes = []Datatype{DatatypeString, DatatypeNumber, DatatypeDatetime, DatatypeText, DatatypeSingleValueList, DatatypeMultiValueList}

// IsList reports whether d is answered by choosing among values.
func (d Datatype) IsList() bool {
	return d == DatatypeSingleValueList || d == DatatypeMultiValueList
}

// ReportAttribute is one question of a reportable event type.
type ReportAttribute struct {
	// Code is the attribute of the event type the answer fills.
	Code     string   `yaml:"code" json:"code"`
	Datatype Datatype `yaml:"datatype" json:"datatype"`
	Required bool     `yaml:"required" json:"required,omitempty"`
	// DatatypeDescription helps people give the answer in the right form.
	DatatypeDescription string `yaml:"datatype_description" json:"datatype_description,omitempty"`
	// Order is where the question comes (1 first); its position in the
	// list when zero. Orders are unique within a type.
	Order int `yaml:"order" json:"order,omitempty"`
	// Description is the question itself.
	Description string `yaml:"description" json:"description"`
	// Values are the choices of a list datatype, and only of one.
	Values []ReportValue `yaml:"values" json:"values,omitempty"`
}

// ReportValue is one choice of a list question.
type ReportValue struct {
	Key  string `yaml:"key" json:"key"`
	Name string `yaml:"name" json:"name"`
}

// Limits on the report block of an event type.
const (
	MaxReportAttributes = 32
	MaxReportValues     = 100
	maxReportNameRunes  = 128
	maxReportTextRunes  = 1000
)

// ReservedReportCode is the question the Open311 adapter asks itself of
// every reportable type (which district, when the location does not say);
// no type may ask it as one of its own.
const ReservedReportCode = "district"

// Reportable returns the event types citizens may report, in catalog
// order.
func (c *Catalog) Reportable() []*EventType {
	var out []*EventType
	for i := range c.EventTypes {
		if c.EventTypes[i].Report != nil {
			out = append(out, &c.EventTypes[i])
		}
	}
	return out
}

// Attribute returns the question with the given code.
func (r *Report) Attribute(code string) (*ReportAttribute, bool) {
	for i := range r.Attributes {
		if r.Attributes[i].Code == code {
			return &r.Attributes[i], true
		}
	}
	return nil, false
}

// Value returns the choice with the given key.
func (a *ReportAttribute) Value(key string) (ReportValue, bool) {
	for _, v := range a.Values {
		if v.Key == key {
			return v, true
		}
	}
	return ReportValue{}, false
}

// indexReports checks the report blocks, fills their defaults (the service
// name, the questions' orders) and sorts each type's questions by order.
func (c *Catalog) indexReports() []error {
	var errs []error
	for i := range c.EventTypes {
		t := &c.EventTypes[i]
		if t.Report == nil {
			continue
		}
		errs = append(errs, t.Report.check(t)...)
	}
	return errs
}

func (r *Report) check(t *EventType) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("event type %q: report: "+format, append([]any{t.Code}, args...)...))
	}
	if r.ServiceName == "" {
		r.ServiceName = t.Name
	}
	if r.ServiceName == "" {
		bad("no service_name, and the type has no name to take it from")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"service_name", r.ServiceName, maxReportNameRunes},
		{"group", r.Group, maxReportNameRunes},
		{"description", r.Description, maxReportTextRunes},
		{"notice", r.Notice, maxReportTextRunes},
	} {
		if n := utf8.RuneCountInString(f.v); n > f.max {
			bad("%s: %d characters, at most %d", f.name, n, f.max)
		}
	}
	for _, k := range r.Keywords {
		// Open311 sends keywords as one comma-separated string.
		if strings.TrimSpace(k) == "" || strings.Contains(k, ",") {
			bad("keyword %q: want a word or phrase without commas", k)
		}
	}
	if len(r.Attributes) > MaxReportAttributes {
		bad("%d attributes, at most %d", len(r.Attributes), MaxReportAttributes)
		return errs
	}
	codes := map[string]bool{}
	orders := map[int]string{}
	for i := range r.Attributes {
		a := &r.Attributes[i]
		if a.Order == 0 {
			a.Order = i + 1
		}
		errs = append(errs, a.check(t, i)...)
		if codes[a.Code] {
			bad("attribute %q listed twice", a.Code)
		}
		codes[a.Code] = true
		if other, dup := orders[a.Order]; dup {
			bad("attribute %q: order %d is also the order of %q", a.Code, a.Order, other)
		}
		orders[a.Order] = a.Code
	}
	slices.SortStableFunc(r.Attributes, func(a, b ReportAttribute) int { return a.Order - b.Order })
	return errs
}

func (a *ReportAttribute) check(t *EventType, i int) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("event type %q: report: attribute %d (%s): "+format, append([]any{t.Code, i + 1, a.Code}, args...)...))
	}
	want, declared := t.Attrs[a.Code]
	switch {
	case a.Code == "":
		bad("no code")
	case a.Code == ReservedReportCode:
		bad("%q is asked of every reportable type by the Open311 adapter itself", ReservedReportCode)
	case !declared:
		bad("not an attribute the event type declares")
	}
	if !slices.Contains(Datatypes, a.Datatype) {
		bad("datatype %q: want one of string, number, datetime, text, singlevaluelist, multivaluelist", a.Datatype)
	} else if declared && !fits(a.Datatype, want, a.Values) {
		bad("datatype %s cannot fill a %s attribute%s", a.Datatype, want, fitHint(a.Datatype, want))
	}
	if a.Order < 0 {
		bad("order %d: want a positive number", a.Order)
	}
	if a.Description == "" {
		bad("no description: it is the question people are asked")
	}
	for _, f := range []struct {
		name, v string
	}{{"description", a.Description}, {"datatype_description", a.DatatypeDescription}} {
		if n := utf8.RuneCountInString(f.v); n > maxReportTextRunes {
			bad("%s: %d characters, at most %d", f.name, n, maxReportTextRunes)
		}
	}
	switch {
	case a.Datatype.IsList() && len(a.Values) == 0:
		bad("a %s needs values to choose from", a.Datatype)
	case !a.Datatype.IsList() && len(a.Values) > 0:
		bad("only singlevaluelist and multivaluelist have values")
	case len(a.Values) > MaxReportValues:
		bad("%d values, at most %d", len(a.Values), MaxReportValues)
	}
	keys := map[string]bool{}
	for _, v := range a.Values {
		switch {
		case v.Key == "" || strings.TrimSpace(v.Key) != v.Key:
			bad("value key %q: want a key without surrounding spaces", v.Key)
		case a.Datatype == DatatypeMultiValueList && strings.Contains(v.Key, ","):
			bad("value key %q: the keys chosen are joined with commas, so a key has none", v.Key)
		case keys[v.Key]:
			bad("value key %q listed twice", v.Key)
		}
		keys[v.Key] = true
		if v.Name == "" {
			bad("value %q: no name", v.Key)
		}
	}
	return errs
}

// fits reports whether answers of datatype d can fill an attribute of type
// want: the event carries scalars only, so a list of choices becomes one
// string, and a yes/no choice may fill a bool.
func fits(d Datatype, want AttrType, values []ReportValue) bool {
	switch d {
	case DatatypeNumber:
		return want == AttrNumber
	case DatatypeString, DatatypeText, DatatypeDatetime, DatatypeMultiValueList:
		return want == AttrString
	case DatatypeSingleValueList:
		if want == AttrBool {
			for _, v := range values {
				if v.Key != "true" && v.Key != "false" {
					return false
				}
			}
			return true
		}
		return want == AttrString
	}
	return false
}

func fitHint(d Datatype, want AttrType) string {
	if d == DatatypeSingleValueList && want == AttrBool {
		return " unless its value keys are true and false"
	}
	return ""
}
