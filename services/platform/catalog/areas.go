package catalog

import (
	"fmt"
	"math"
)

// Limits on the areas of a catalog. An area is tested against every event a
// rule using it sees, so its geometry stays small.
const (
	MaxAreas           = 256
	MaxPolygonsPerArea = 64
	MaxRingPoints      = 1000
)

// Area is a named set of polygons — school zones, a riverside flood zone —
// that rules test locations against with in_area.
type Area struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description,omitempty"`
	// Polygons are closed rings of [lon, lat] points (WGS84): the first
	// point is repeated as the last, and a ring has at least three distinct
	// corners. A point is in the area when it is in any of them.
	Polygons [][][2]float64 `yaml:"polygons" json:"polygons"`

	// boxes are the polygons' bounding boxes: minLon, minLat, maxLon, maxLat.
	boxes [][4]float64
}

// Area returns the area with the given name.
func (c *Catalog) Area(name string) (*Area, bool) {
	a, ok := c.areas[name]
	return a, ok
}

// indexAreas validates the areas and indexes them by name.
func (c *Catalog) indexAreas() []error {
	var errs []error
	c.areas = make(map[string]*Area, len(c.Areas))
	if len(c.Areas) > MaxAreas {
		return []error{fmt.Errorf("areas: more than %d", MaxAreas)}
	}
	for i := range c.Areas {
		a := &c.Areas[i]
		if !codeRE.MatchString(a.Name) {
			errs = append(errs, fmt.Errorf("area %d: name %q: want lower-case letters, digits, - and _", i, a.Name))
		}
		if _, dup := c.areas[a.Name]; dup {
			errs = append(errs, fmt.Errorf("area %q listed twice", a.Name))
		}
		c.areas[a.Name] = a
		switch n := len(a.Polygons); {
		case n == 0:
			errs = append(errs, fmt.Errorf("area %q: no polygons", a.Name))
		case n > MaxPolygonsPerArea:
			errs = append(errs, fmt.Errorf("area %q: more than %d polygons", a.Name, MaxPolygonsPerArea))
			continue
		}
		a.boxes = make([][4]float64, len(a.Polygons))
		for j, ring := range a.Polygons {
			if err := checkRing(ring); err != nil {
				errs = append(errs, fmt.Errorf("area %q: polygon %d: %w", a.Name, j+1, err))
				continue
			}
			a.boxes[j] = bounds(ring)
		}
	}
	return errs
}

func checkRing(ring [][2]float64) error {
	if len(ring) > MaxRingPoints {
		return fmt.Errorf("more than %d points", MaxRingPoints)
	}
	for k, p := range ring {
		if p[0] < -180 || p[0] > 180 || p[1] < -90 || p[1] > 90 || math.IsNaN(p[0]) || math.IsNaN(p[1]) {
			return fmt.Errorf("point %d [%v, %v] is not a [lon, lat] pair", k+1, p[0], p[1])
		}
	}
	if len(ring) < 4 {
		return fmt.Errorf("a ring needs at least 3 corners and the first point again at the end, got %d points", len(ring))
	}
	if ring[0] != ring[len(ring)-1] {
		return fmt.Errorf("the ring is not closed: the last point must repeat the first")
	}
	distinct := map[[2]float64]bool{}
	for _, p := range ring[:len(ring)-1] {
		distinct[p] = true
	}
	if len(distinct) < 3 {
		return fmt.Errorf("a ring needs at least 3 distinct corners, got %d", len(distinct))
	}
	return nil
}

func bounds(ring [][2]float64) [4]float64 {
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range ring {
		b[0], b[1] = math.Min(b[0], p[0]), math.Min(b[1], p[1])
		b[2], b[3] = math.Max(b[2], p[0]), math.Max(b[3], p[1])
	}
	return b
}

// Contains reports whether the point (lon, lat) lies in one of the area's
// polygons. Points on an edge may fall either way.
func (a *Area) Contains(lon, lat float64) bool {
	for j, ring := range a.Polygons {
		if j >= len(a.boxes) {
			break
		}
		b := a.boxes[j]
		if lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3] {
			continue
		}
		if inRing(ring, lon, lat) {
			return true
		}
	}
	return false
}

// inRing is the even-odd rule: a ray from the point crosses the ring's
// edges an odd number of times when the point is inside. At city scale the
// edges are short enough to treat lon and lat as plane coordinates.
func inRing(ring [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
		xi, yi, xj, yj := ring[i][0], ring[i][1], ring[j][0], ring[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

// earthRadiusM is the mean Earth radius used by DistanceM.
const earthRadiusM = 6371008.8

// DistanceM returns the great-circle (haversine) distance in metres between
// two WGS84 points.
func DistanceM(lon1, lat1, lon2, lat2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}
