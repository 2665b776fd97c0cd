package catalog

import (
	"math"
	"strings"
	"testing"
)

const withAreas = good + `
areas:
  - name: square
    polygons:
      - [[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1], [121.0, 31.0]]
  - name: two-parts
    polygons:
      - [[121.0, 31.0], [121.1, 31.0], [121.0, 31.1], [121.0, 31.0]]
      - [[122.0, 32.0], [122.2, 32.0], [122.2, 32.2], [122.1, 32.05], [122.0, 32.2], [122.0, 32.0]]
`

func TestAreas(t *testing.T) {
	c, err := Parse([]byte(withAreas))
	if err != nil {
		t.Fatal(err)
	}
	sq, ok := c.Area("square")
	if !ok {
		t.Fatal("square missing")
	}
	two, _ := c.Area("two-parts")
	if _, ok := c.Area("circle"); ok {
		t.Error("found an area that is not there")
	}
	for _, tc := range []struct {
		name     string
		a        *Area
		lon, lat float64
		want     bool
	}{
		{"centre of the square", sq, 121.05, 31.05, true},
		{"west of the square", sq, 120.99, 31.05, false},
		{"north of the square", sq, 121.05, 31.11, false},
		{"inside the triangle", two, 121.02, 31.02, true},
		{"beyond the hypotenuse", two, 121.08, 31.08, false},
		{"in the second polygon", two, 122.02, 32.15, true},
		{"in the notch of the concave polygon", two, 122.1, 32.15, false},
	} {
		if got := tc.a.Contains(tc.lon, tc.lat); got != tc.want {
			t.Errorf("%s: Contains(%v, %v) = %v", tc.name, tc.lon, tc.lat, got)
		}
	}
}

func TestAreasBad(t *testing.T) {
	ring := "[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.0]]"
	for _, tc := range []struct{ name, areas, want string }{
		{"open ring", "- {name: a, polygons: [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1]]]}", "not closed"},
		{"too few points", "- {name: a, polygons: [[[121.0, 31.0], [121.1, 31.0], [121.0, 31.0]]]}", "at least 3 corners"},
		{"repeated corners", "- {name: a, polygons: [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.0], [121.0, 31.0]]]}", "3 distinct corners"},
		{"lat out of range", "- {name: a, polygons: [[[121.0, 95.0], [121.1, 31.0], [121.1, 31.1], [121.0, 95.0]]]}", "not a [lon, lat] pair"},
		{"no polygons", "- {name: a, polygons: []}", `area "a": no polygons`},
		{"bad name", "- {name: School Zones, polygons: [" + ring + "]}", `name "School Zones"`},
		{"twice", "- {name: a, polygons: [" + ring + "]}\n  - {name: a, polygons: [" + ring + "]}", `area "a" listed twice`},
		{"too many polygons", "- {name: a, polygons: [" + strings.Repeat(ring+", ", MaxPolygonsPerArea) + ring + "]}", "more than 64 polygons"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(good + "areas:\n  " + tc.areas + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestDistanceM(t *testing.T) {
	// People's Square to the Oriental Pearl Tower: about 2.7 km.
	d := DistanceM(121.4737, 31.2304, 121.4997, 31.2397)
	if math.Abs(d-2660) > 60 {
		t.Errorf("DistanceM = %.0f m, want about 2660", d)
	}
	if d := DistanceM(121.47, 31.23, 121.47, 31.23); d != 0 {
		t.Errorf("distance to itself = %v", d)
	}
	// One degree of latitude is about 111.2 km everywhere.
	if d := DistanceM(0, 10, 0, 11); math.Abs(d-111195) > 10 {
		t.Errorf("one degree of latitude = %.0f m", d)
	}
}

func TestRepositoryCatalogAreas(t *testing.T) {
	c, err := Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	school, ok := c.Area("school-zones")
	if !ok || !school.Contains(121.4378, 31.1990) {
		t.Error("school-zones does not hold the school on Tianping Road")
	}
	river, ok := c.Area("riverside-flood-zone")
	if !ok || !river.Contains(121.4935, 31.2330) || river.Contains(121.4737, 31.2304) {
		t.Error("riverside-flood-zone: the Bund should be in it, People's Square not")
	}
}
