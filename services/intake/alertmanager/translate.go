package alertmanager

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// EventID returns the id of the event an alert becomes: a hash of its
// fingerprint, its status and its start. Alertmanager sends an alert
// again at every group interval and repeat interval, and again when a
// notification failed; each time it is the same event, which the hub
// keeps once. The alert's resolution is another event, and so is the next
// time the same labels fire (a new start). endsAt is left out: Alertmanager
// moves it forward while an alert fires.
func EventID(fingerprint, status string, startsAt time.Time) string {
	h := sha256.New()
	h.Write([]byte(fingerprint))
	h.Write([]byte{0})
	h.Write([]byte(status))
	h.Write([]byte{0})
	h.Write([]byte(startsAt.UTC().Format(time.RFC3339Nano)))
	return "am-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// resolvedPrefix starts the text of a clear, whose annotations still
// describe the alert as it fired.
const resolvedPrefix = "[resolved] "

// result is what became of one alert of a notification.
type result struct {
	alert *Alert
	// input is the alert's event; nil when no mapping matched or a value
	// did not convert.
	input   *events.Input
	matched bool
	// errs are why the alert became no event: values that did not
	// convert, or intake's reasons for refusing the event.
	errs []events.FieldError
}

// translate maps every alert of msg to an event by the first mapping of c
// that matches it. now stands in for the end of a resolved alert that
// has none.
func translate(c *Config, cat *catalog.Catalog, msg *Message, now time.Time) []result {
	out := make([]result, len(msg.Alerts))
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		out[i].alert = a
		m := c.match(a.Labels)
		if m == nil {
			continue
		}
		out[i].matched = true
		out[i].input, out[i].errs = event(c, m, cat, a, now)
	}
	return out
}

// match returns the first mapping that takes an alert with labels.
func (c *Config) match(labels map[string]string) *Mapping {
	for i := range c.Mappings {
		m := &c.Mappings[i]
		if !slices.ContainsFunc(m.Matchers, func(mt Matcher) bool { return !mt.Matches(labels) }) {
			return m
		}
	}
	return nil
}

// event builds the event of alert a by mapping m.
func event(c *Config, m *Mapping, cat *catalog.Catalog, a *Alert, now time.Time) (*events.Input, []events.FieldError) {
	var errs []events.FieldError
	resolved := a.Status == StatusResolved
	in := &events.Input{
		ID:     EventID(a.Fingerprint, a.Status, a.StartsAt),
		Source: cmp.Or(m.Source, c.Source),
		Type:   m.Type,
		Location: &events.LocationInput{
			Street:  get(m.Location.Street, a),
			Grid:    get(m.Location.Grid, a),
			Address: get(m.Location.Address, a),
		},
		Attrs: map[string]any{
			AttrResolved:    resolved,
			AttrStatus:      a.Status,
			AttrFingerprint: a.Fingerprint,
		},
	}
	at := a.StartsAt
	if resolved {
		in.Type = cmp.Or(m.ClearType, m.Type)
		at = a.EndsAt
		if at.IsZero() {
			at = now
		}
	} else {
		in.Severity = get(m.Severity, a)
	}
	in.OccurredAt = at.Format(time.RFC3339Nano)
	in.Location.District = get(m.Location.District, a)

	// A location with only one of lon and lat is given neither: the
	// district places the event.
	lon, okLon := m.Location.Lon.lookup(a.Labels, a.Annotations)
	lat, okLat := m.Location.Lat.lookup(a.Labels, a.Annotations)
	if okLon && okLat {
		x, err := coordinate(lon, 180)
		if err != nil {
			errs = append(errs, events.FieldError{Field: "location.lon", Message: fmt.Sprintf("%q: %v", clip(lon), err)})
		}
		y, err := coordinate(lat, 90)
		if err != nil {
			errs = append(errs, events.FieldError{Field: "location.lat", Message: fmt.Sprintf("%q: %v", clip(lat), err)})
		}
		in.Location.Lon, in.Location.Lat = &x, &y
	}

	in.Text = text(m.Text, a.Annotations, resolved)

	var declared map[string]catalog.AttrType
	if et, ok := cat.EventType(in.Type); ok {
		declared = et.Attrs
	}
	for _, name := range slices.Sorted(maps.Keys(m.Attrs)) {
		val := m.Attrs[name]
		typ, ok := declared[name]
		if !ok || (resolved && !val.fromLabel()) {
			continue
		}
		s, ok := val.lookup(a.Labels, a.Annotations)
		if !ok {
			continue
		}
		x, err := convert(s, typ)
		if err != nil {
			errs = append(errs, events.FieldError{Field: "attrs." + name, Message: fmt.Sprintf("%s: %q: %v", val.origin(), clip(s), err)})
			continue
		}
		in.Attrs[name] = x
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return in, nil
}

// origin says where v's text came from, for messages.
func (v *Value) origin() string {
	switch {
	case v.Label != "":
		return "label " + v.Label
	case v.Annotation != "":
		return "annotation " + v.Annotation
	}
	return "value"
}

func get(v *Value, a *Alert) string {
	s, _ := v.lookup(a.Labels, a.Annotations)
	return s
}

// text joins the non-empty annotations named by names (defaultText when
// nil), one per line, within events.MaxTextBytes.
func text(names []string, annotations map[string]string, resolved bool) string {
	if names == nil {
		names = defaultText
	}
	var b strings.Builder
	if resolved {
		b.WriteString(resolvedPrefix)
	}
	n := 0
	for _, name := range names {
		s := strings.TrimSpace(annotations[name])
		if s == "" {
			continue
		}
		if n > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s)
		n++
	}
	if n == 0 {
		return ""
	}
	return truncate(strings.ToValidUTF8(b.String(), "\uFFFD"), events.MaxTextBytes)
}

// truncate shortens s to at most max bytes, on a character boundary,
// ending in "…" when it had to cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
