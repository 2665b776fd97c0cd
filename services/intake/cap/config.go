package cap

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Limits on what cap.yaml may hold.
const (
	MaxConfigBytes = 1 << 20
	MaxTypeRules   = 256
	// MaxParameters bounds the parameters one rule copies: with the
	// adapter's own cap_* attributes they stay within an event's 64.
	MaxParameters = 32
	MaxFeedSize   = 10_000
)

// Defaults of Config.
const (
	DefaultMaxDistanceKM = 50
	DefaultFeedSize      = 200
	DefaultRadiusKM      = 1
	DefaultLanguage      = "zh-CN"
	DefaultFeedID        = "urn:cityhub:cap"
)

// Config is the content of rules/adapters/cap.yaml: how warnings the
// bureaus send become events, and how the city's own warnings are
// published.
type Config struct {
	// Source is the source of the events warnings become; a CAP sender
	// listed in Senders gets its own.
	Source  string            `yaml:"source"`
	Senders map[string]string `yaml:"senders"`
	// Statuses are the CAP statuses that become events; Actual when empty.
	// Messages of other statuses (Exercise, Test, …) are answered and
	// counted, never turned into events.
	Statuses []string `yaml:"statuses"`
	// Types decide the event type of each info block: the first rule that
	// matches wins; DefaultType (when set) takes the rest. An info block no
	// rule takes is skipped, and the answer says so.
	Types       []TypeRule `yaml:"types"`
	DefaultType string     `yaml:"default_type"`
	// Geocodes name the districts that geocodes stand for.
	Geocodes []GeocodeMap `yaml:"geocodes"`
	// MaxDistanceKM is how far from the nearest district centre a polygon
	// or circle that covers no district centre may lie and still count as
	// that district's; 50 when zero.
	MaxDistanceKM float64 `yaml:"max_distance_km"`
	// DefaultDistricts receive the events of info blocks that have no area
	// at all; such blocks are skipped when it is empty.
	DefaultDistricts []string `yaml:"default_districts"`
	Feed             Feed     `yaml:"feed"`

	At yamlfile.Positions `yaml:"-"`
}

// TypeRule maps the info blocks it matches to an event type. Every
// condition given must hold; at least one is given.
type TypeRule struct {
	Type string `yaml:"type"`
	// EventCode matches an eventCode of the block.
	EventCode *CodeMatch `yaml:"event_code"`
	// Event matches when the block's event text contains one of these,
	// letter case aside.
	Event []string `yaml:"event"`
	// Category matches when the block has one of these categories.
	Category []string `yaml:"category"`
	// Parameters copy CAP parameters into event attributes: valueName →
	// attribute name. A number or bool attribute of the catalog gets the
	// parameter's value converted.
	Parameters map[string]string `yaml:"parameters"`

	Pos yamlfile.Pos       `yaml:"-"`
	At  yamlfile.Positions `yaml:"-"`
}

// CodeMatch matches an eventCode with ValueName and one of Values.
type CodeMatch struct {
	ValueName string   `yaml:"value_name"`
	Values    []string `yaml:"values"`

	At yamlfile.Positions `yaml:"-"`
}

// GeocodeMap says which districts each value of a geocode stands for: a
// code for the whole city may stand for all of them.
type GeocodeMap struct {
	ValueName string              `yaml:"value_name"`
	Values    map[string][]string `yaml:"values"`

	Pos yamlfile.Pos       `yaml:"-"`
	At  yamlfile.Positions `yaml:"-"`
}

// Feed is how the city's own warnings are published.
type Feed struct {
	// Sender is the CAP sender of the city's messages, required to
	// publish: no spaces, commas, < or &.
	Sender     string `yaml:"sender"`
	SenderName string `yaml:"sender_name"`
	Title      string `yaml:"title"`
	// ID is the Atom feed's id, an IRI; entries add the message
	// identifier to it.
	ID string `yaml:"id"`
	// BaseURL, when set, makes the feed's links absolute
	// (https://ops.city.example); otherwise they are paths.
	BaseURL string `yaml:"base_url"`
	// Language of the messages; zh-CN when empty.
	Language string `yaml:"language"`
	// Size is how many messages the feed keeps, newest first; 200 when
	// zero.
	Size int `yaml:"size"`
	// Categories give the CAP category of each event type's alerts; Other
	// for a type not listed.
	Categories map[string]string `yaml:"categories"`
	// RadiusKM is the radius of the circle drawn around an alert's
	// location; 1 when zero.
	RadiusKM float64 `yaml:"radius_km"`
	Web      string  `yaml:"web"`
	Contact  string  `yaml:"contact"`

	At yamlfile.Positions `yaml:"-"`
}

var (
	sourceRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
	attrRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// LoadConfig reads the cap.yaml at path and checks it against cat.
func LoadConfig(path string, cat *catalog.Catalog) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cap config: %w", err)
	}
	return ParseConfig(path, b, cat)
}

// ParseConfig decodes cap.yaml from b, read from file, fills the defaults
// and checks it against cat. The error is a yamlfile.Errors listing every
// problem at file:line:col.
func ParseConfig(file string, b []byte, cat *catalog.Catalog) (*Config, error) {
	var c Config
	if errs := yamlfile.Decode(file, b, MaxConfigBytes, &c); len(errs) > 0 {
		return nil, errs.Err()
	}
	v := &configChecker{file: file, cat: cat}
	v.check(&c)
	if err := v.errs.Err(); err != nil {
		return nil, err
	}
	return &c, nil
}

type configChecker struct {
	file string
	cat  *catalog.Catalog
	errs yamlfile.Errors
}

func (v *configChecker) errorf(at yamlfile.Pos, format string, args ...any) {
	v.errs.At(v.file, at, format, args...)
}

func (v *configChecker) check(c *Config) {
	if !sourceRE.MatchString(c.Source) {
		v.errorf(c.At["source"], "source: %q: want lower-case letters, digits and _ (the events' source)", clip(c.Source))
	}
	for _, sender := range sortedKeys(c.Senders) {
		source := c.Senders[sender]
		if !plainName(sender) {
			v.errorf(c.At["senders"], "senders: %q is not a CAP sender (no spaces, commas, < or &)", clip(sender))
		}
		if !sourceRE.MatchString(source) {
			v.errorf(c.At["senders"], "senders.%s: %q: want lower-case letters, digits and _", clip(sender), clip(source))
		}
	}
	if len(c.Statuses) == 0 {
		c.Statuses = []string{"Actual"}
	}
	for _, s := range c.Statuses {
		if !inVocabulary("status", s) {
			v.errorf(c.At["statuses"], "statuses: %q: want one of %s", clip(s), vocabularyList("status"))
		}
	}
	if len(c.Types) > MaxTypeRules {
		v.errorf(c.At["types"], "types: more than %d rules", MaxTypeRules)
	}
	for i := range c.Types {
		v.typeRule(fmt.Sprintf("types[%d]", i), &c.Types[i])
	}
	if c.DefaultType != "" {
		v.eventType(c.At["default_type"], "default_type", c.DefaultType)
	}
	for i := range c.Geocodes {
		g := &c.Geocodes[i]
		path := fmt.Sprintf("geocodes[%d]", i)
		if g.ValueName == "" {
			v.errorf(g.Pos, "%s.value_name: required", path)
		}
		if len(g.Values) == 0 {
			v.errorf(g.Pos, "%s.values: give each geocode value the districts it stands for", path)
		}
		for _, code := range sortedKeys(g.Values) {
			ds := g.Values[code]
			if len(ds) == 0 {
				v.errorf(g.At["values"], "%s.values.%s: no districts", path, clip(code))
			}
			for _, d := range ds {
				if !v.cat.HasDistrict(d) {
					v.errorf(g.At["values"], "%s.values.%s: %q is not a district of the catalog", path, clip(code), clip(d))
				}
			}
		}
	}
	switch {
	case c.MaxDistanceKM == 0:
		c.MaxDistanceKM = DefaultMaxDistanceKM
	case !(c.MaxDistanceKM > 0 && c.MaxDistanceKM <= 20_000):
		v.errorf(c.At["max_distance_km"], "max_distance_km: %v: want a distance in km above 0", c.MaxDistanceKM)
	}
	for _, d := range c.DefaultDistricts {
		if !v.cat.HasDistrict(d) {
			v.errorf(c.At["default_districts"], "default_districts: %q is not a district of the catalog", clip(d))
		}
	}
	v.feed(&c.Feed)
}

func (v *configChecker) eventType(at yamlfile.Pos, path, code string) {
	if _, ok := v.cat.EventType(code); !ok {
		v.errorf(at, "%s: %q is not an event type of the catalog", path, clip(code))
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func (v *configChecker) typeRule(path string, r *TypeRule) {
	if r.Type == "" {
		v.errorf(r.Pos, "%s.type: required", path)
	} else {
		v.eventType(r.At["type"], path+".type", r.Type)
	}
	if r.EventCode == nil && len(r.Event) == 0 && len(r.Category) == 0 {
		v.errorf(r.Pos, "%s: give at least one of event_code, event, category", path)
	}
	if m := r.EventCode; m != nil {
		if m.ValueName == "" {
			v.errorf(r.At["event_code"], "%s.event_code.value_name: required", path)
		}
		if len(m.Values) == 0 {
			v.errorf(r.At["event_code"], "%s.event_code.values: required", path)
		}
	}
	for _, e := range r.Event {
		if strings.TrimSpace(e) == "" {
			v.errorf(r.At["event"], "%s.event: an empty text matches every event; use default_type for that", path)
		}
	}
	for _, cat := range r.Category {
		if !inVocabulary("category", cat) {
			v.errorf(r.At["category"], "%s.category: %q: want one of %s", path, clip(cat), vocabularyList("category"))
		}
	}
	if len(r.Parameters) > MaxParameters {
		v.errorf(r.At["parameters"], "%s.parameters: more than %d", path, MaxParameters)
	}
	for _, name := range sortedKeys(r.Parameters) {
		attr := r.Parameters[name]
		switch {
		case !attrRE.MatchString(attr):
			v.errorf(r.At["parameters"], "%s.parameters.%s: %q: attribute names are lower-case letters, digits and _", path, clip(name), clip(attr))
		case strings.HasPrefix(attr, "cap_"):
			v.errorf(r.At["parameters"], "%s.parameters.%s: %q: cap_ attributes are the adapter's own", path, clip(name), attr)
		}
	}
}

func (v *configChecker) feed(f *Feed) {
	if f.Sender != "" && !plainName(f.Sender) {
		v.errorf(f.At["sender"], "feed.sender: %q: a CAP sender has no spaces, commas, < or &", clip(f.Sender))
	}
	if f.Language == "" {
		f.Language = DefaultLanguage
	} else if !languageRE.MatchString(f.Language) {
		v.errorf(f.At["language"], "feed.language: %q: want a language tag such as zh-CN", clip(f.Language))
	}
	if f.ID == "" {
		f.ID = DefaultFeedID
	}
	if f.Title == "" {
		f.Title = "CAP"
	}
	f.BaseURL = strings.TrimSuffix(f.BaseURL, "/")
	if f.BaseURL != "" && !strings.HasPrefix(f.BaseURL, "https://") && !strings.HasPrefix(f.BaseURL, "http://") {
		v.errorf(f.At["base_url"], "feed.base_url: %q: want an http(s) URL", clip(f.BaseURL))
	}
	switch {
	case f.Size == 0:
		f.Size = DefaultFeedSize
	case f.Size < 0 || f.Size > MaxFeedSize:
		v.errorf(f.At["size"], "feed.size: %d: want 1 to %d", f.Size, MaxFeedSize)
	}
	switch {
	case f.RadiusKM == 0:
		f.RadiusKM = DefaultRadiusKM
	case !(f.RadiusKM > 0 && f.RadiusKM <= 1000):
		v.errorf(f.At["radius_km"], "feed.radius_km: %v: want a distance in km above 0", f.RadiusKM)
	}
	for _, typ := range sortedKeys(f.Categories) {
		cat := f.Categories[typ]
		if _, ok := v.cat.EventType(typ); !ok {
			v.errorf(f.At["categories"], "feed.categories: %q is not an event type of the catalog", clip(typ))
		}
		if !inVocabulary("category", cat) {
			v.errorf(f.At["categories"], "feed.categories.%s: %q: want one of %s", clip(typ), clip(cat), vocabularyList("category"))
		}
	}
}
