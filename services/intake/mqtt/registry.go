package mqtt

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Limits on what a device registry may hold.
const (
	MaxRegistryBytes  = 8 << 20
	MaxDevices        = 50_000
	MaxGateways       = 5_000
	MaxGatewayDevices = 10_000
	MaxTelemetryKey   = 128
	MinTokenBytes     = 8
	MaxTokenBytes     = 256
	MaxScale          = 1e6
)

// DefaultSource is the source of the bridge's events when the registry
// names none.
const DefaultSource = "iot"

// Registry is a validated device registry (rules/adapters/devices.yaml):
// the devices that publish telemetry, what event each reading becomes, and
// the gateways that speak for several devices. A Registry is immutable and
// safe for concurrent use.
type Registry struct {
	source    string
	principal auth.Principal
	devices   map[string]*Device  // by id
	names     map[string]*Device  // by the name gateways use
	gateways  map[string]*Gateway // by name
	tokens    map[string]Publisher
}

// Device is a device of the registry.
type Device struct {
	// ID names the device in its topic (v1/devices/{ID}/telemetry) and in
	// the ids of its events.
	ID string
	// Name is what a gateway calls the device in its payloads; ID when the
	// registry gives none.
	Name string
	// Type is the catalog event type of every event the device raises.
	Type     string
	Location events.LocationInput
	// DeviceAttr, when set, is a string attribute that carries ID.
	DeviceAttr string
	// Telemetry maps the keys of the device's readings to event attributes.
	// A reading without any of these keys raises no event; a device with
	// no telemetry keys raises an event for every reading.
	Telemetry map[string]Telemetry

	token string
	keys  []string // of Telemetry, sorted
}

// Telemetry says which event attribute a telemetry key becomes.
type Telemetry struct {
	Attr string
	// Kind is the attribute's type in the catalog.
	Kind catalog.AttrType
	// Scale multiplies a number (0.1 turns millimetres into centimetres);
	// 1 when the registry gives none.
	Scale float64
}

// Gateway is a gateway of the registry: one connection publishing for
// several devices.
type Gateway struct {
	Name string
	// Devices are the ids of the devices the gateway may speak for.
	Devices []string

	token   string
	devices map[string]bool
}

// SpeaksFor reports whether g may publish readings of the device id.
func (g *Gateway) SpeaksFor(id string) bool { return g.devices[id] }

// Publisher is whom a token of the registry belongs to: exactly one of
// Device and Gateway is set.
type Publisher struct {
	Device  *Device
	Gateway *Gateway
}

// Source is the event source of every event the registry's devices raise.
func (r *Registry) Source() string { return r.source }

// Principal is the caller the bridge submits events as: a source token for
// the registry's source.
func (r *Registry) Principal() auth.Principal { return r.principal }

// Device returns the device with id.
func (r *Registry) Device(id string) (*Device, bool) { d, ok := r.devices[id]; return d, ok }

// Gateway returns the gateway called name.
func (r *Registry) Gateway(name string) (*Gateway, bool) { g, ok := r.gateways[name]; return g, ok }

// Publisher returns the device or gateway whose token is token.
func (r *Registry) Publisher(token string) (Publisher, bool) {
	if token == "" {
		return Publisher{}, false
	}
	p, ok := r.tokens[token]
	return p, ok
}

// Devices returns the number of devices.
func (r *Registry) Devices() int { return len(r.devices) }

// LoadRegistry reads the registry file at path and checks it against cat.
func LoadRegistry(path string, cat *catalog.Catalog) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("device registry: %w", err)
	}
	return ParseRegistry(path, b, cat)
}

// registryFile is the YAML form of the registry.
type registryFile struct {
	Source   string          `yaml:"source"`
	Devices  []deviceConfig  `yaml:"devices"`
	Gateways []gatewayConfig `yaml:"gateways"`

	At yamlfile.Positions `yaml:"-"`
}

type deviceConfig struct {
	ID         string                     `yaml:"id"`
	Name       string                     `yaml:"name"`
	Token      string                     `yaml:"token"`
	Type       string                     `yaml:"type"`
	Location   *locationConfig            `yaml:"location"`
	DeviceAttr string                     `yaml:"device_attr"`
	Telemetry  map[string]telemetryConfig `yaml:"telemetry"`

	Pos yamlfile.Pos       `yaml:"-"`
	At  yamlfile.Positions `yaml:"-"`
}

type locationConfig struct {
	District string   `yaml:"district"`
	Street   string   `yaml:"street"`
	Grid     string   `yaml:"grid"`
	Address  string   `yaml:"address"`
	Lon      *float64 `yaml:"lon"`
	Lat      *float64 `yaml:"lat"`

	Pos yamlfile.Pos       `yaml:"-"`
	At  yamlfile.Positions `yaml:"-"`
}

// telemetryConfig is written `key: attr` or `key: {attr: a, scale: 0.1}`.
type telemetryConfig struct {
	Attr  string   `yaml:"attr"`
	Scale *float64 `yaml:"scale"`

	Pos yamlfile.Pos       `yaml:"-"`
	At  yamlfile.Positions `yaml:"-"`
}

// UnmarshalText takes the short form, the attribute's name alone.
func (t *telemetryConfig) UnmarshalText(b []byte) error {
	t.Attr = string(b)
	return nil
}

type gatewayConfig struct {
	Name    string   `yaml:"name"`
	Token   string   `yaml:"token"`
	Devices []string `yaml:"devices"`

	Pos yamlfile.Pos       `yaml:"-"`
	At  yamlfile.Positions `yaml:"-"`
}

var (
	// nameRE is the form of device ids and gateway names: they are topic
	// levels and parts of event ids, which allow [A-Za-z0-9._:-]; the
	// colon is kept out to separate the parts of an id.
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	sourceRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
)

// reservedID is the topic level that means "the device of this
// connection" in ThingsBoard's topics.
const reservedID = "me"

// ParseRegistry decodes a registry from b, read from file, and checks it
// against cat. The error, when there is one, is a yamlfile.Errors listing
// every problem at file:line:col.
func ParseRegistry(file string, b []byte, cat *catalog.Catalog) (*Registry, error) {
	var f registryFile
	if errs := yamlfile.Decode(file, b, MaxRegistryBytes, &f); len(errs) > 0 {
		return nil, errs.Err()
	}
	v := &registryValidator{file: file, cat: cat, reg: &Registry{
		devices:  make(map[string]*Device, len(f.Devices)),
		names:    make(map[string]*Device, len(f.Devices)),
		gateways: make(map[string]*Gateway, len(f.Gateways)),
		tokens:   make(map[string]Publisher),
	}}
	v.all(&f)
	if err := v.errs.Err(); err != nil {
		return nil, err
	}
	return v.reg, nil
}

type registryValidator struct {
	file string
	cat  *catalog.Catalog
	reg  *Registry
	errs yamlfile.Errors

	tokenAt map[string]string // token → who holds it, for messages
}

func (v *registryValidator) errorf(at yamlfile.Pos, format string, args ...any) {
	v.errs.At(v.file, at, format, args...)
}

func (v *registryValidator) all(f *registryFile) {
	v.tokenAt = map[string]string{}
	switch {
	case f.Source == "":
		v.reg.source = DefaultSource
	case !sourceRE.MatchString(f.Source):
		v.errorf(f.At["source"], "source %q: want lower-case letters, digits and _", clip(f.Source))
	default:
		v.reg.source = f.Source
	}
	v.reg.principal = auth.Principal{Subject: "mqtt-bridge", Role: auth.RoleSource, Sources: []string{v.reg.source}}
	switch {
	case len(f.Devices) == 0:
		v.errorf(f.At["devices"], "devices: give at least one device")
	case len(f.Devices) > MaxDevices:
		v.errorf(f.At["devices"], "devices: %d devices, at most %d", len(f.Devices), MaxDevices)
		return
	}
	if len(f.Gateways) > MaxGateways {
		v.errorf(f.At["gateways"], "gateways: %d gateways, at most %d", len(f.Gateways), MaxGateways)
		return
	}
	for i := range f.Devices {
		v.device(i, &f.Devices[i])
	}
	// A gateway names a device by its name or its id: one device's name
	// must not be another's id.
	for i := range f.Devices {
		c := &f.Devices[i]
		if other, ok := v.reg.devices[c.Name]; ok && c.Name != "" && other.ID != c.ID && v.reg.devices[c.ID] != nil {
			v.errorf(c.At["name"], "device %s: name %q is the id of device %s; gateways name devices by either", c.ID, clip(c.Name), other.ID)
		}
	}
	for i := range f.Gateways {
		v.gateway(i, &f.Gateways[i])
	}
}

func (v *registryValidator) device(i int, c *deviceConfig) {
	what := fmt.Sprintf("devices[%d]", i)
	d := &Device{ID: c.ID, Name: c.Name, Type: c.Type, DeviceAttr: c.DeviceAttr, token: c.Token}
	ok := true
	switch {
	case c.ID == "":
		v.errorf(c.Pos, "%s: id: required", what)
		ok = false
	case !nameRE.MatchString(c.ID):
		v.errorf(c.At["id"], "%s: id %q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", what, clip(c.ID))
		ok = false
	case c.ID == reservedID:
		v.errorf(c.At["id"], "%s: id %q is reserved: v1/devices/me/telemetry means the device of the connection", what, c.ID)
		ok = false
	case v.reg.devices[c.ID] != nil:
		v.errorf(c.At["id"], "device %s: listed twice", c.ID)
		ok = false
	default:
		what = "device " + c.ID
	}
	if d.Name == "" {
		d.Name = d.ID
	} else if msg := badText(d.Name, 128); msg != "" {
		v.errorf(c.At["name"], "%s: name: %s", what, msg)
		ok = false
	}
	if other, taken := v.reg.names[d.Name]; taken && ok {
		at := c.At["name"]
		if c.Name == "" {
			at = c.At["id"]
		}
		v.errorf(at, "%s: name %q is also the name of device %s; gateways name devices by it", what, clip(d.Name), other.ID)
		ok = false
	}
	v.token(c.Token, c.At["token"], what)

	var et *catalog.EventType
	switch t, known := v.cat.EventType(c.Type); {
	case c.Type == "":
		v.errorf(c.Pos, "%s: type: required", what)
	case !known:
		v.errorf(c.At["type"], "%s: type %q is not an event type of the catalog", what, clip(c.Type))
	default:
		et = t
	}
	v.location(what, c, d)
	d.Telemetry = make(map[string]Telemetry, len(c.Telemetry))
	if len(c.Telemetry) > events.MaxAttrs {
		v.errorf(c.At["telemetry"], "%s: telemetry: %d keys, at most %d", what, len(c.Telemetry), events.MaxAttrs)
	} else if et != nil {
		v.telemetry(what, c, d, et)
	}
	if ok {
		v.reg.devices[d.ID] = d
		v.reg.names[d.Name] = d
		if d.token != "" {
			v.reg.tokens[d.token] = Publisher{Device: d}
		}
	}
}

func (v *registryValidator) location(what string, c *deviceConfig, d *Device) {
	l := c.Location
	if l == nil {
		v.errorf(c.Pos, "%s: location: required (at least its district)", what)
		return
	}
	d.Location = events.LocationInput{District: l.District, Street: l.Street, Grid: l.Grid, Address: l.Address, Lon: l.Lon, Lat: l.Lat}
	switch {
	case l.District == "":
		v.errorf(l.Pos, "%s: location.district: required", what)
	case !v.cat.HasDistrict(l.District):
		v.errorf(l.At["district"], "%s: location.district %q is not a district of the catalog", what, clip(l.District))
	}
	if (l.Lon == nil) != (l.Lat == nil) {
		v.errorf(l.Pos, "%s: location: give lon and lat together, or neither", what)
	}
	if l.Lon != nil && !(*l.Lon >= -180 && *l.Lon <= 180) {
		v.errorf(l.At["lon"], "%s: location.lon %v is outside -180..180", what, *l.Lon)
	}
	if l.Lat != nil && !(*l.Lat >= -90 && *l.Lat <= 90) {
		v.errorf(l.At["lat"], "%s: location.lat %v is outside -90..90", what, *l.Lat)
	}
	for _, f := range []struct {
		key, v string
		max    int
	}{{"street", l.Street, events.MaxPlaceRunes}, {"grid", l.Grid, events.MaxPlaceRunes}, {"address", l.Address, events.MaxAddressRunes}} {
		if msg := badText(f.v, f.max); msg != "" && f.v != "" {
			v.errorf(l.At[f.key], "%s: location.%s: %s", what, f.key, msg)
		}
	}
}

func (v *registryValidator) telemetry(what string, c *deviceConfig, d *Device, et *catalog.EventType) {
	from := map[string]string{} // attr → the key that maps to it
	for _, key := range slices.Sorted(maps.Keys(c.Telemetry)) {
		t := c.Telemetry[key]
		at := t.Pos
		if at.Line == 0 {
			at = c.At["telemetry"] // the short form has no position of its own
		}
		name := fmt.Sprintf("%s: telemetry %q", what, clip(key))
		if msg := badText(key, MaxTelemetryKey); msg != "" || key == "" {
			if key == "" {
				msg = "empty"
			}
			v.errorf(at, "%s: %s", name, msg)
			continue
		}
		kind, declared := et.Attrs[t.Attr]
		switch {
		case t.Attr == "":
			v.errorf(at, "%s: attr: required", name)
			continue
		case !declared:
			v.errorf(at, "%s: attr %q is not an attribute the catalog declares for %s events", name, clip(t.Attr), et.Code)
			continue
		case from[t.Attr] != "":
			v.errorf(at, "%s: attr %s is already mapped from telemetry %q", name, t.Attr, from[t.Attr])
			continue
		}
		from[t.Attr] = key
		m := Telemetry{Attr: t.Attr, Kind: kind, Scale: 1}
		if t.Scale != nil {
			s := *t.Scale
			switch {
			case kind != catalog.AttrNumber:
				v.errorf(t.At["scale"], "%s: scale applies to numbers; %s is a %s", name, t.Attr, kind)
			case s == 0 || math.IsNaN(s) || math.Abs(s) > MaxScale || math.Abs(s) < 1/MaxScale:
				v.errorf(t.At["scale"], "%s: scale %v: want a number from %g to %g (or its negative)", name, s, 1/MaxScale, MaxScale)
			default:
				m.Scale = s
			}
		}
		d.Telemetry[key] = m
		d.keys = append(d.keys, key)
	}
	if c.DeviceAttr != "" {
		kind, declared := et.Attrs[c.DeviceAttr]
		switch {
		case !declared:
			v.errorf(c.At["device_attr"], "%s: device_attr %q is not an attribute the catalog declares for %s events", what, clip(c.DeviceAttr), et.Code)
		case kind != catalog.AttrString:
			v.errorf(c.At["device_attr"], "%s: device_attr %s is a %s; the device id is a string", what, c.DeviceAttr, kind)
		case from[c.DeviceAttr] != "":
			v.errorf(c.At["device_attr"], "%s: device_attr %s is also mapped from telemetry %q", what, c.DeviceAttr, from[c.DeviceAttr])
		}
	}
}

func (v *registryValidator) gateway(i int, c *gatewayConfig) {
	what := fmt.Sprintf("gateways[%d]", i)
	ok := true
	switch {
	case c.Name == "":
		v.errorf(c.Pos, "%s: name: required", what)
		ok = false
	case !nameRE.MatchString(c.Name):
		v.errorf(c.At["name"], "%s: name %q: want 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", what, clip(c.Name))
		ok = false
	case v.reg.gateways[c.Name] != nil:
		v.errorf(c.At["name"], "gateway %s: listed twice", c.Name)
		ok = false
	default:
		what = "gateway " + c.Name
	}
	v.token(c.Token, c.At["token"], what)
	g := &Gateway{Name: c.Name, token: c.Token, devices: make(map[string]bool, len(c.Devices))}
	switch {
	case len(c.Devices) == 0:
		v.errorf(c.Pos, "%s: devices: give the devices it speaks for", what)
	case len(c.Devices) > MaxGatewayDevices:
		v.errorf(c.At["devices"], "%s: devices: %d, at most %d", what, len(c.Devices), MaxGatewayDevices)
	}
	for _, id := range c.Devices {
		switch {
		case v.reg.devices[id] == nil:
			v.errorf(c.At["devices"], "%s: devices: %q is not a device of the registry", what, clip(id))
		case g.devices[id]:
			v.errorf(c.At["devices"], "%s: devices: %s listed twice", what, id)
		default:
			g.devices[id] = true
			g.Devices = append(g.Devices, id)
		}
	}
	if ok {
		v.reg.gateways[g.Name] = g
		if g.token != "" {
			v.reg.tokens[g.token] = Publisher{Gateway: g}
		}
	}
}

// token checks a device's or gateway's token; what names its holder.
func (v *registryValidator) token(tok string, at yamlfile.Pos, what string) {
	if tok == "" {
		return // the device publishes through a gateway or an external broker
	}
	ok := len(tok) >= MinTokenBytes && len(tok) <= MaxTokenBytes
	for _, r := range tok {
		if r <= ' ' || r > '~' {
			ok = false
		}
	}
	if !ok {
		// The token itself is never echoed.
		v.errorf(at, "%s: token: want %d to %d printable ASCII characters without spaces", what, MinTokenBytes, MaxTokenBytes)
		return
	}
	if other, taken := v.tokenAt[tok]; taken {
		v.errorf(at, "%s: token is also the token of %s; tokens say who is publishing and must differ", what, other)
		return
	}
	v.tokenAt[tok] = what
}

// badText says what is wrong with a name or a place, or "".
func badText(s string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("%d characters, at most %d", utf8.RuneCountInString(s), max)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "control characters are not allowed"
	}
	return ""
}

// clip shortens what a file or a payload said before it is echoed in a
// message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

var errNoRegistry = errors.New("no device registry")
