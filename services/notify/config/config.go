// Package config reads rules/notify.yaml: the receivers notifications are
// delivered through, the rosters of people on duty per department, the
// routing tree that decides who is told of which change, and the message
// templates. Load reports every problem of the file at once as
// file:line:col, checked against the catalog, and a file with any problem
// is refused whole, so that the running configuration stays.
package config

import (
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Limits on what notify.yaml may hold.
const (
	MaxFileBytes     = 1 << 20
	MaxReceivers     = 256
	MaxRosters       = 256
	MaxPeople        = 512
	MaxRouteDepth    = 8
	MaxRoutes        = 1024
	MaxSteps         = 8
	MaxTemplateBytes = 8 << 10
	MaxFallbackAfter = 100
	MaxShift         = 7 * 24 * time.Hour
	MaxWait          = 24 * time.Hour
)

// Config is the content of notify.yaml.
type Config struct {
	Defaults  Defaults            `yaml:"defaults"`
	Receivers []Receiver          `yaml:"receivers"`
	Rosters   []Roster            `yaml:"rosters"`
	Routes    Route               `yaml:"routes"`
	Templates map[string]Template `yaml:"templates"`

	At yamlfile.Positions `yaml:"-"`
}

// Defaults apply where a route or receiver says nothing.
type Defaults struct {
	// GroupWait is how long changes for one receiver gather before the
	// first message goes; 30s when zero.
	GroupWait time.Duration `yaml:"group_wait"`
	// GroupInterval is how long later changes of a group gather; 5m when
	// zero.
	GroupInterval time.Duration `yaml:"group_interval"`
	// RepeatInterval is how often an unacknowledged notification is sent
	// again; 4h when zero.
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// Language of the messages: zh (the default) or en.
	Language string `yaml:"language"`
	// FallbackAfter is how many failed deliveries in a row send a
	// receiver's messages to its fallback; 5 when zero.
	FallbackAfter int `yaml:"fallback_after"`

	At yamlfile.Positions `yaml:"-"`
}

// Receiver returns the receiver called name.
func (c *Config) Receiver(name string) (*Receiver, bool) {
	for i := range c.Receivers {
		if c.Receivers[i].Name == name {
			return &c.Receivers[i], true
		}
	}
	return nil, false
}

// Default values of Defaults.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	DefaultFallbackAfter  = 5
)

// Languages of the message templates.
var Languages = []string{"zh", "en"}

// Load reads the file at path and checks it against cat.
func Load(path string, cat *catalog.Catalog) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("notify config: %w", err)
	}
	return Parse(path, b, cat)
}

// Parse decodes notify.yaml from b, read from file, fills the defaults and
// checks everything against cat. The error, when there is one, is a
// yamlfile.Errors listing every problem.
func Parse(file string, b []byte, cat *catalog.Catalog) (*Config, error) {
	var c Config
	errs := yamlfile.Decode(file, b, MaxFileBytes, &c)
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	v := &validator{file: file, cat: cat, cfg: &c}
	v.all()
	if err := v.errs.Err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// validator collects the problems of one file.
type validator struct {
	file string
	cat  *catalog.Catalog
	cfg  *Config
	errs yamlfile.Errors

	receivers map[string]*Receiver
	rosters   map[string]*Roster
	routes    int
}

func (v *validator) errorf(at yamlfile.Pos, format string, args ...any) {
	v.errs.At(v.file, at, format, args...)
}

func (v *validator) all() {
	v.defaults(&v.cfg.Defaults)
	v.templates()
	v.checkReceivers()
	v.checkRosters()
	v.route(&v.cfg.Routes, "routes", nil, 0)
	if v.routes == 0 {
		v.errorf(v.cfg.At["routes"], "routes: give at least the root route's receivers")
	}
}

func (v *validator) defaults(d *Defaults) {
	set := func(p *time.Duration, key string, def time.Duration) {
		switch {
		case *p == 0:
			*p = def
		case *p < 0 || *p > MaxWait:
			v.errorf(d.At[key], "defaults.%s: %s is outside 0s to %s", key, *p, MaxWait)
		}
	}
	set(&d.GroupWait, "group_wait", DefaultGroupWait)
	set(&d.GroupInterval, "group_interval", DefaultGroupInterval)
	set(&d.RepeatInterval, "repeat_interval", DefaultRepeatInterval)
	switch {
	case d.Language == "":
		d.Language = "zh"
	case !contains(Languages, d.Language):
		v.errorf(d.At["language"], "defaults.language: %q: want zh or en", d.Language)
	}
	switch {
	case d.FallbackAfter == 0:
		d.FallbackAfter = DefaultFallbackAfter
	case d.FallbackAfter < 0 || d.FallbackAfter > MaxFallbackAfter:
		v.errorf(d.At["fallback_after"], "defaults.fallback_after: want 1 to %d", MaxFallbackAfter)
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func contains[T comparable](s []T, x T) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
