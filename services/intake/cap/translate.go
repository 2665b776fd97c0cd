package cap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// Translation is what a CAP document becomes: events, and what became
// none with the reason. Paths[i] names the element Inputs[i] came from.
type Translation struct {
	Inputs  []*events.Input
	Paths   []string
	Skipped []Problem
}

func (t *Translation) skip(path, format string, args ...any) {
	t.Skipped = append(t.Skipped, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Translate turns a valid CAP message into events: one for each info
// block, each of its areas and each district the area names — by a
// geocode cap.yaml maps, else by the district centres its polygons and
// circles cover, else by the district centre nearest to them (within
// MaxDistanceKM). An info block without areas goes to DefaultDistricts.
//
// Event ids derive from the message's sender and identifier, the block
// and area indexes and the district, so a document sent again is the same
// events. occurred_at is the block's onset, else its effective time, else
// the message's sent time (a time further ahead than intake accepts is
// passed over). The cap_* attributes carry the message's identity and
// type, so rules can tell an Update or a Cancel from a new warning.
func (c *Config) Translate(a *Alert, cat *catalog.Catalog, now time.Time) *Translation {
	t := &Translation{}
	if !slices.Contains(c.Statuses, a.Status) {
		t.skip("alert/status", "%s message: cap.yaml turns only %s messages into events", a.Status, strings.Join(c.Statuses, ", "))
		return t
	}
	if a.MsgType == "Ack" || a.MsgType == "Error" {
		t.skip("alert/msgType", "%s messages answer other messages and carry no warning", a.MsgType)
		return t
	}
	if len(a.Infos) == 0 {
		t.skip("alert", "no info block: nothing says what the warning is or where")
		return t
	}
	source := c.Source
	if s, ok := c.Senders[a.Sender]; ok {
		source = s
	}
	base := idBase(a.Sender, a.Identifier)
	for i := range a.Infos {
		in := &a.Infos[i]
		path := fmt.Sprintf("alert/info[%d]", i)
		rule, typ := c.match(in)
		if typ == "" {
			t.skip(path, "no rule of cap.yaml maps event %q (categories %s)", clip(in.Event), strings.Join(in.Categories, ", "))
			continue
		}
		proto := c.event(a, in, rule, typ, cat, now, path, t)
		proto.Source = source
		if len(in.Areas) == 0 {
			if len(c.DefaultDistricts) == 0 {
				t.skip(path, "no area, and cap.yaml names no default_districts")
			}
			for _, d := range c.DefaultDistricts {
				t.add(path, proto, fmt.Sprintf("%s:%d:%s", base, i, d), place{district: d}, "")
			}
			continue
		}
		for j := range in.Areas {
			ar := &in.Areas[j]
			apath := fmt.Sprintf("%s/area[%d]", path, j)
			places, why := c.place(ar, cat)
			if len(places) == 0 {
				t.skip(apath, "%s", why)
			}
			for _, p := range places {
				t.add(apath, proto, fmt.Sprintf("%s:%d.%d:%s", base, i, j, p.district), p, ar.Desc)
			}
		}
	}
	return t
}

// add appends a copy of proto placed at p.
func (t *Translation) add(path string, proto *events.Input, id string, p place, desc string) {
	ev := *proto
	ev.ID = id
	ev.Location = &events.LocationInput{District: p.district, Lon: p.lon, Lat: p.lat, Address: clipRunes(desc, events.MaxAddressRunes)}
	if desc != "" {
		ev.Attrs = cloneAttrs(proto.Attrs)
		ev.Attrs["cap_area"] = clipBytes(desc, events.MaxAttrBytes)
	}
	t.Inputs = append(t.Inputs, &ev)
	t.Paths = append(t.Paths, path)
}

func cloneAttrs(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

var plainIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,48}$`)

// idBase names a message within event ids: "sender:identifier" when both
// are short and made of characters ids may hold (the sender without a
// colon, so the pair reads back one way only), else a hash of the two.
func idBase(sender, identifier string) string {
	if plainIDRE.MatchString(sender) && len(sender)+1+len(identifier) <= 48 && idCharsRE.MatchString(identifier) {
		return sender + ":" + identifier
	}
	h := sha256.Sum256([]byte(sender + "\n" + identifier))
	return "cap-" + hex.EncodeToString(h[:12])
}

var idCharsRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// match returns the first type rule that takes in, and the event type.
func (c *Config) match(in *Info) (*TypeRule, string) {
	for i := range c.Types {
		r := &c.Types[i]
		if r.matches(in) {
			return r, r.Type
		}
	}
	return nil, c.DefaultType
}

func (r *TypeRule) matches(in *Info) bool {
	if m := r.EventCode; m != nil && !slices.ContainsFunc(in.EventCodes, func(v Value) bool {
		return v.Name == m.ValueName && slices.Contains(m.Values, v.Value)
	}) {
		return false
	}
	if len(r.Event) > 0 {
		ev := strings.ToLower(in.Event)
		if !slices.ContainsFunc(r.Event, func(s string) bool { return strings.Contains(ev, strings.ToLower(s)) }) {
			return false
		}
	}
	if len(r.Category) > 0 && !slices.ContainsFunc(in.Categories, func(c string) bool { return slices.Contains(r.Category, c) }) {
		return false
	}
	return true
}

// severities maps CAP severities to the hub's; Unknown gives none.
var severities = map[string]string{"Extreme": "extreme", "Severe": "severe", "Moderate": "moderate", "Minor": "minor"}

// event returns the fields every event of in shares.
func (c *Config) event(a *Alert, in *Info, rule *TypeRule, typ string, cat *catalog.Catalog, now time.Time, path string, t *Translation) *events.Input {
	occurred := a.Sent
	for _, at := range []time.Time{in.Onset, in.Effective} {
		if !at.IsZero() && !at.After(now.Add(events.MaxFuture)) {
			occurred = at
			break
		}
	}
	attrs := map[string]any{
		"cap_identifier": clipBytes(a.Identifier, events.MaxAttrBytes),
		"cap_sender":     clipBytes(a.Sender, events.MaxAttrBytes),
		"cap_sent":       FormatTime(a.Sent),
		"cap_msg_type":   a.MsgType,
		"cap_status":     a.Status,
		"cap_event":      clipBytes(in.Event, events.MaxAttrBytes),
		"cap_urgency":    in.Urgency,
		"cap_severity":   in.Severity,
		"cap_certainty":  in.Certainty,
	}
	if refs := references(a.References); refs != "" {
		attrs["cap_references"] = refs
	}
	if !in.Onset.IsZero() {
		attrs["cap_onset"] = FormatTime(in.Onset)
	}
	if !in.Expires.IsZero() {
		attrs["cap_expires"] = FormatTime(in.Expires)
	}
	if rule != nil {
		et, _ := cat.EventType(typ)
		for _, name := range sortedKeys(rule.Parameters) {
			attr := rule.Parameters[name]
			k := slices.IndexFunc(in.Parameters, func(v Value) bool { return v.Name == name })
			if k < 0 {
				continue
			}
			v, err := attrValue(in.Parameters[k].Value, et, attr)
			if err != nil {
				t.skip(fmt.Sprintf("%s/parameter[%d]", path, k), "not copied to attribute %s: %v", attr, err)
				continue
			}
			attrs[attr] = v
		}
	}
	text := in.Headline
	if in.Description != "" {
		if text != "" {
			text += "\n"
		}
		text += in.Description
	}
	if text == "" {
		text = in.Event
	}
	return &events.Input{
		Type:       typ,
		OccurredAt: occurred.Format(time.RFC3339),
		Severity:   severities[in.Severity],
		Text:       clipBytes(text, events.MaxTextBytes),
		Attrs:      attrs,
	}
}

// references writes refs as CAP does, keeping the latest that fit in an
// attribute when there are many.
func references(refs []Reference) string {
	var out []string
	n := 0
	for i := len(refs) - 1; i >= 0; i-- {
		s := refs[i].String()
		if len(s) > events.MaxAttrBytes || n+len(s)+1 > events.MaxAttrBytes {
			break
		}
		out = append(out, s)
		n += len(s) + 1
	}
	slices.Reverse(out)
	return strings.Join(out, " ")
}

// attrValue converts a parameter's value to the type the catalog declares
// for attr (a string when it declares none).
func attrValue(s string, et *catalog.EventType, attr string) (any, error) {
	var want catalog.AttrType
	if et != nil {
		want = et.Attrs[attr]
	}
	switch want {
	case catalog.AttrNumber:
		v, err := parseDecimal(s)
		if err != nil {
			return nil, err
		}
		return v, nil
	case catalog.AttrBool:
		switch s {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
		return nil, fmt.Errorf("%q: want true or false", clip(s))
	}
	return clipBytes(s, events.MaxAttrBytes), nil
}

// place is where one event of an area is.
type place struct {
	district string
	lon, lat *float64
}

// place returns the districts an area names, or why it names none.
func (c *Config) place(a *Area, cat *catalog.Catalog) ([]place, string) {
	centre, shaped := a.centre()
	var districts []string
	for _, g := range a.Geocodes {
		for _, m := range c.Geocodes {
			if m.ValueName != g.Name {
				continue
			}
			for _, d := range m.Values[g.Value] {
				if !slices.Contains(districts, d) {
					districts = append(districts, d)
				}
			}
		}
	}
	if len(districts) > 0 {
		out := make([]place, len(districts))
		for i, d := range districts {
			out[i] = place{district: d}
		}
		if len(out) == 1 && shaped {
			out[0].lon, out[0].lat = &centre.Lon, &centre.Lat
		}
		return out, ""
	}
	if !shaped {
		return nil, "no geocode cap.yaml maps to a district, and no polygon or circle"
	}
	var out []place
	for _, d := range cat.Districts {
		p := Point{Lat: d.Centre.Lat, Lon: d.Centre.Lon}
		if a.covers(p) {
			out = append(out, place{district: d.Code, lon: &d.Centre.Lon, lat: &d.Centre.Lat})
		}
	}
	if len(out) > 0 {
		return out, ""
	}
	best, dist := "", math.Inf(1)
	for _, d := range cat.Districts {
		if m := catalog.DistanceM(centre.Lon, centre.Lat, d.Centre.Lon, d.Centre.Lat); m < dist {
			best, dist = d.Code, m
		}
	}
	if best == "" || dist > c.MaxDistanceKM*1000 {
		return nil, fmt.Sprintf("its centre (%s) is %.0f km from the nearest district centre, beyond max_distance_km %v: not the city's", centre, dist/1000, c.MaxDistanceKM)
	}
	return []place{{district: best, lon: &centre.Lon, lat: &centre.Lat}}, ""
}

// centre returns the mean of the centres of the area's polygons and
// circles; false when it has none.
func (a *Area) centre() (Point, bool) {
	var sum Point
	n := 0
	for _, p := range a.Polygons {
		if len(p) == 0 {
			continue
		}
		c := p.centroid()
		sum.Lat, sum.Lon = sum.Lat+c.Lat, sum.Lon+c.Lon
		n++
	}
	for _, c := range a.Circles {
		sum.Lat, sum.Lon = sum.Lat+c.Centre.Lat, sum.Lon+c.Centre.Lon
		n++
	}
	if n == 0 {
		return Point{}, false
	}
	return Point{Lat: sum.Lat / float64(n), Lon: sum.Lon / float64(n)}, true
}

// covers reports whether p lies in one of the area's polygons or circles.
func (a *Area) covers(p Point) bool {
	for _, poly := range a.Polygons {
		if poly.contains(p) {
			return true
		}
	}
	for _, c := range a.Circles {
		if catalog.DistanceM(p.Lon, p.Lat, c.Centre.Lon, c.Centre.Lat) <= c.RadiusKM*1000 {
			return true
		}
	}
	return false
}

// centroid is the polygon's centre of area, treating lon and lat as plane
// coordinates (fine at city scale); the mean of its corners when it
// encloses no area. Coordinates are taken relative to the first corner,
// which keeps the products small and the result exact to the metre.
func (p Polygon) centroid() Point {
	ring := p
	if len(ring) > 1 && ring[0] == ring[len(ring)-1] {
		ring = ring[:len(ring)-1]
	}
	o := ring[0]
	var area, cx, cy float64
	for i := range ring {
		a, b := ring[i], ring[(i+1)%len(ring)]
		ax, ay, bx, by := a.Lon-o.Lon, a.Lat-o.Lat, b.Lon-o.Lon, b.Lat-o.Lat
		cross := ax*by - bx*ay
		area += cross
		cx += (ax + bx) * cross
		cy += (ay + by) * cross
	}
	if math.Abs(area) < 1e-15 {
		var m Point
		for _, q := range ring {
			m.Lat += q.Lat - o.Lat
			m.Lon += q.Lon - o.Lon
		}
		return Point{Lat: o.Lat + m.Lat/float64(len(ring)), Lon: o.Lon + m.Lon/float64(len(ring))}
	}
	area /= 2
	return Point{Lat: o.Lat + cy/(6*area), Lon: o.Lon + cx/(6*area)}
}

// contains is the even-odd rule: a ray from q crosses the ring an odd
// number of times when q is inside.
func (p Polygon) contains(q Point) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		a, b := p[i], p[j]
		if (a.Lat > q.Lat) != (b.Lat > q.Lat) && q.Lon < (b.Lon-a.Lon)*(q.Lat-a.Lat)/(b.Lat-a.Lat)+a.Lon {
			in = !in
		}
	}
	return in
}

// clipBytes cuts s to at most n bytes on a character boundary.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clipRunes cuts s to at most n characters.
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}
