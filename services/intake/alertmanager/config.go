package alertmanager

import (
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Limits on what the mapping file may hold.
const (
	MaxFileBytes   = 1 << 20
	MaxMappings    = 256
	MaxMatchers    = 16
	MaxMapEntries  = 1024
	MaxTextSources = 8
)

// Attributes the receiver sets on every event it makes, beside those a
// mapping names. A mapping may not name them, and an event type of the
// catalog that declares one must declare it with this type.
const (
	// AttrResolved is true on the clear of a resolved alert, false on a
	// firing one.
	AttrResolved = "resolved"
	// AttrStatus is the alert's status as Alertmanager spelled it:
	// firing or resolved.
	AttrStatus = "am_status"
	// AttrFingerprint is Alertmanager's fingerprint of the alert's labels,
	// which leads from an event back to the alert.
	AttrFingerprint = "am_fingerprint"
)

var reservedAttrs = map[string]catalog.AttrType{
	AttrResolved:    catalog.AttrBool,
	AttrStatus:      catalog.AttrString,
	AttrFingerprint: catalog.AttrString,
}

// defaultText is the annotations an event's text is made of when a
// mapping names none.
var defaultText = []string{"summary", "description"}

var (
	sourceRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
	attrRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Config is the content of the mapping file (rules/adapters/alertmanager.yaml):
// which alerts become which events. An alert takes the first mapping whose
// matchers it passes; an alert that passes none becomes no event and is
// counted as unmatched.
type Config struct {
	// Source is the event source of the mappings that name none.
	Source   string    `yaml:"source"`
	Mappings []Mapping `yaml:"mappings"`

	At yamlfile.Positions `yaml:"-"`
	// file is the name Parse read the mapping by, for New's messages.
	file string
}

// Mapping turns the alerts its matchers pick into events of one type.
type Mapping struct {
	// Matchers must all pass for the mapping to take an alert; a mapping
	// without matchers takes every alert that reaches it.
	Matchers []Matcher `yaml:"matchers"`
	// Type is the catalog event type of a firing alert's event.
	Type string `yaml:"type"`
	// ClearType, when set, is the catalog event type of a resolved
	// alert's event (waterlogging_cleared for waterlogging); otherwise a
	// resolved alert's event has Type too. Either way it carries
	// resolved: true.
	ClearType string `yaml:"clear_type"`
	// Source is the event source; the file's Source when empty.
	Source   string   `yaml:"source"`
	Location Location `yaml:"location"`
	// Severity is the event's severity hint (minor, moderate, severe,
	// extreme), usually from Alertmanager's severity label through a map.
	// Clears carry none.
	Severity *Value `yaml:"severity"`
	// Text names the annotations the event's text is made of, one line
	// each, in order; summary and description when absent.
	Text []string `yaml:"text"`
	// Attrs are the event's attributes, each of a type the catalog
	// declares for Type and converted to it. A clear carries those that
	// come from labels or fixed values and that its own type declares;
	// annotations describe the last evaluation that fired, and a
	// measurement on a clear would set the rules off again, so a clear
	// leaves out what comes from them.
	Attrs map[string]*Value `yaml:"attrs"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// Location says where an alert's event happened. District is required;
// Lon and Lat go together, and an alert that gives only one of them is
// placed by its district alone.
type Location struct {
	District *Value `yaml:"district"`
	Street   *Value `yaml:"street"`
	Grid     *Value `yaml:"grid"`
	Address  *Value `yaml:"address"`
	Lon      *Value `yaml:"lon"`
	Lat      *Value `yaml:"lat"`
}

// Value says where one field of an event comes from: a label of the
// alert, an annotation, or a fixed value. Map translates what the label
// or annotation says (a station's code to its district); a value it does
// not list, or an absent label, gives Default, and no value at all when
// Default is empty.
type Value struct {
	Label      string            `yaml:"label"`
	Annotation string            `yaml:"annotation"`
	Value      string            `yaml:"value"`
	Map        map[string]string `yaml:"map"`
	Default    string            `yaml:"default"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// lookup returns what v gives for the alert of labels and annotations.
func (v *Value) lookup(labels, annotations map[string]string) (string, bool) {
	if v == nil {
		return "", false
	}
	if v.Value != "" {
		return v.Value, true
	}
	var raw string
	if v.Label != "" {
		raw = labels[v.Label]
	} else {
		raw = annotations[v.Annotation]
	}
	if len(v.Map) > 0 {
		if out, ok := v.Map[raw]; ok {
			return out, true
		}
	} else if raw != "" {
		return raw, true
	}
	return v.Default, v.Default != ""
}

// fromLabel reports whether v comes from a label or is fixed, rather
// than from an annotation.
func (v *Value) fromLabel() bool { return v.Annotation == "" }

// outputs returns the values v can give without looking at an alert:
// the fixed value, the map's values and the default, with their positions.
func (v *Value) outputs() []output {
	var out []output
	if v.Value != "" {
		out = append(out, output{v.Value, v.Where["value"]})
	}
	for _, k := range slices.Sorted(maps.Keys(v.Map)) {
		out = append(out, output{v.Map[k], v.Where["map"]})
	}
	if v.Default != "" {
		out = append(out, output{v.Default, v.Where["default"]})
	}
	return out
}

type output struct {
	s  string
	at yamlfile.Pos
}

// Load reads the mapping file at path and checks it against cat.
func Load(path string, cat *catalog.Catalog) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("alertmanager mapping: %w", err)
	}
	return Parse(path, b, cat)
}

// Parse decodes the mapping file from b, read from file, and checks every
// mapping against cat: event types, districts, severities and attributes
// must be the catalog's, and fixed and mapped values must convert to the
// type of the field they fill. The error, when there is one, is a
// yamlfile.Errors listing every problem at file:line:col.
func Parse(file string, b []byte, cat *catalog.Catalog) (*Config, error) {
	var c Config
	if errs := yamlfile.Decode(file, b, MaxFileBytes, &c); len(errs) > 0 {
		return nil, errs.Err()
	}
	if err := check(file, &c, cat); err != nil {
		return nil, err
	}
	c.file = file
	return &c, nil
}

// check validates c against cat, reporting problems as positions of file.
func check(file string, c *Config, cat *catalog.Catalog) error {
	v := &validator{file: file, cat: cat}
	v.config(c)
	return v.errs.Err()
}

type validator struct {
	file string
	cat  *catalog.Catalog
	errs yamlfile.Errors
}

func (v *validator) errorf(at yamlfile.Pos, format string, args ...any) {
	v.errs.At(v.file, at, format, args...)
}

func (v *validator) config(c *Config) {
	if c.Source != "" && !sourceRE.MatchString(c.Source) {
		v.errorf(c.At["source"], "source %q: want lower-case letters, digits and _", clip(c.Source))
	}
	switch {
	case len(c.Mappings) == 0:
		v.errorf(c.At["mappings"], "mappings: give at least one")
	case len(c.Mappings) > MaxMappings:
		v.errorf(c.At["mappings"], "mappings: %d, at most %d", len(c.Mappings), MaxMappings)
	}
	catchAll := -1
	for i := range c.Mappings {
		m := &c.Mappings[i]
		path := fmt.Sprintf("mappings[%d]", i)
		if catchAll >= 0 {
			v.errorf(m.At, "%s: can never match: mappings[%d] before it has no matchers and takes every alert", path, catchAll)
		}
		if len(m.Matchers) == 0 && catchAll < 0 {
			catchAll = i
		}
		v.mapping(c, m, path)
	}
}

func (v *validator) mapping(c *Config, m *Mapping, path string) {
	if len(m.Matchers) > MaxMatchers {
		v.errorf(m.Where["matchers"], "%s.matchers: %d, at most %d", path, len(m.Matchers), MaxMatchers)
	}
	for j, mt := range m.Matchers {
		if !mt.valid() {
			v.errorf(m.Where["matchers"], "%s.matchers[%d]: write a matcher as name=\"value\"", path, j)
		}
	}
	switch {
	case m.Source == "" && c.Source == "":
		v.errorf(m.At, "%s: no source: give one here or at the top of the file", path)
	case m.Source != "" && !sourceRE.MatchString(m.Source):
		v.errorf(m.Where["source"], "%s.source %q: want lower-case letters, digits and _", path, clip(m.Source))
	}
	et := v.eventType(m.Type, m.Where["type"], path+".type", m.At)
	var clear *catalog.EventType
	if m.ClearType != "" {
		clear = v.eventType(m.ClearType, m.Where["clear_type"], path+".clear_type", m.At)
	}
	for _, t := range []*catalog.EventType{et, clear} {
		if t == nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(reservedAttrs)) {
			if got, ok := t.Attrs[name]; ok && got != reservedAttrs[name] {
				v.errorf(m.At, "%s: the catalog declares %s as %s for %s events; the receiver sets it as a %s", path, name, got, t.Code, reservedAttrs[name])
			}
		}
	}
	v.location(&m.Location, m.Where["location"], path+".location", m.At)
	if m.Severity != nil {
		p := path + ".severity"
		if v.value(m.Severity, p) {
			for _, o := range m.Severity.outputs() {
				if _, err := cityhubv1.ParseSeverity(o.s); err != nil {
					v.errorf(o.at, "%s: %q is not a severity (minor, moderate, severe, extreme)", p, clip(o.s))
				}
			}
		}
	}
	switch {
	case len(m.Text) > MaxTextSources:
		v.errorf(m.Where["text"], "%s.text: %d annotations, at most %d", path, len(m.Text), MaxTextSources)
	default:
		for j, a := range m.Text {
			if !labelNameRE.MatchString(a) {
				v.errorf(m.Where["text"], "%s.text[%d]: %q is not an annotation name", path, j, clip(a))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Attrs)) {
		val := m.Attrs[name]
		p := path + ".attrs." + clip(name)
		at := m.Where["attrs"]
		if val != nil {
			at = val.At
		}
		switch _, reserved := reservedAttrs[name]; {
		case !attrRE.MatchString(name):
			v.errorf(at, "%s: attribute names are lower-case letters, digits and _, starting with a letter", p)
			continue
		case reserved:
			v.errorf(at, "%s: the receiver sets %s itself", p, name)
			continue
		case val == nil:
			v.errorf(at, "%s: say where the value comes from", p)
			continue
		}
		if !v.value(val, p) || et == nil {
			continue
		}
		typ, declared := et.Attrs[name]
		if !declared {
			v.errorf(at, "%s: the catalog declares no attribute %s for %s events", p, name, et.Code)
			continue
		}
		for _, o := range val.outputs() {
			if _, err := convert(o.s, typ); err != nil {
				v.errorf(o.at, "%s: %q: %v", p, clip(o.s), err)
			}
		}
	}
}

func (v *validator) eventType(code string, at yamlfile.Pos, path string, mappingAt yamlfile.Pos) *catalog.EventType {
	if code == "" {
		v.errorf(mappingAt, "%s: required", path)
		return nil
	}
	t, ok := v.cat.EventType(code)
	if !ok {
		v.errorf(at, "%s: %q is not an event type of the catalog", path, clip(code))
		return nil
	}
	return t
}

func (v *validator) location(l *Location, at yamlfile.Pos, path string, mappingAt yamlfile.Pos) {
	if l.District == nil {
		if at == (yamlfile.Pos{}) {
			at = mappingAt
		}
		v.errorf(at, "%s.district: required", path)
	} else if v.value(l.District, path+".district") {
		for _, o := range l.District.outputs() {
			if !v.cat.HasDistrict(o.s) {
				v.errorf(o.at, "%s.district: %q is not a district of the catalog", path, clip(o.s))
			}
		}
	}
	for _, f := range []struct {
		name string
		val  *Value
	}{{"street", l.Street}, {"grid", l.Grid}, {"address", l.Address}} {
		if f.val != nil {
			v.value(f.val, path+"."+f.name)
		}
	}
	if (l.Lon == nil) != (l.Lat == nil) {
		v.errorf(at, "%s: give lon and lat together, or neither", path)
	}
	for _, f := range []struct {
		name  string
		val   *Value
		limit float64
	}{{"lon", l.Lon, 180}, {"lat", l.Lat, 90}} {
		if f.val == nil || !v.value(f.val, path+"."+f.name) {
			continue
		}
		for _, o := range f.val.outputs() {
			if _, err := coordinate(o.s, f.limit); err != nil {
				v.errorf(o.at, "%s.%s: %q: %v", path, f.name, clip(o.s), err)
			}
		}
	}
}

// value checks the form of val and reports whether its outputs are worth
// checking further.
func (v *validator) value(val *Value, path string) bool {
	n := 0
	for _, s := range []string{val.Label, val.Annotation, val.Value} {
		if s != "" {
			n++
		}
	}
	switch {
	case n != 1:
		v.errorf(val.At, "%s: give exactly one of label, annotation or value", path)
		return false
	case val.Label != "" && !labelNameRE.MatchString(val.Label):
		v.errorf(val.Where["label"], "%s.label: %q is not a label name", path, clip(val.Label))
		return false
	case val.Annotation != "" && !labelNameRE.MatchString(val.Annotation):
		v.errorf(val.Where["annotation"], "%s.annotation: %q is not an annotation name", path, clip(val.Annotation))
		return false
	case val.Value != "" && (len(val.Map) > 0 || val.Default != ""):
		v.errorf(val.At, "%s: a fixed value takes no map or default", path)
		return false
	case len(val.Map) > MaxMapEntries:
		v.errorf(val.Where["map"], "%s.map: %d entries, at most %d", path, len(val.Map), MaxMapEntries)
		return false
	}
	return true
}

// convert turns the text of a label or annotation into a value of an
// attribute of type typ.
func convert(s string, typ catalog.AttrType) (any, error) {
	switch typ {
	case catalog.AttrNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("want a finite number")
		}
		return f, nil
	case catalog.AttrBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("want true or false")
		}
		return b, nil
	}
	return s, nil
}

// coordinate parses a longitude (limit 180) or latitude (limit 90).
func coordinate(s string, limit float64) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a number")
	}
	if f < -limit || f > limit {
		return 0, fmt.Errorf("outside -%v..%v", limit, limit)
	}
	return f, nil
}
