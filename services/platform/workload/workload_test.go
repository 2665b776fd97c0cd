package workload

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

func TestDay(t *testing.T) {
	cat, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, share := range []float64{Ordinary, 0.70} {
		d := NewDay(cat, share, rand.New(rand.NewPCG(1, 2)))
		if d.Empty() {
			t.Fatal("the catalog has none of the day's event types")
		}
		const n = 20000
		readings := 0
		for range n {
			e := d.Next()
			if _, ok := Readings[e.Type.Code]; ok {
				readings++
			} else if _, ok := Reports[e.Type.Code]; !ok {
				t.Fatalf("drew %s, which neither weighs", e.Type.Code)
			}
			if e.District == nil || e.Source == "" || e.Street == "" || e.Grid == "" {
				t.Fatalf("an event without a place or a source: %+v", e)
			}
			if math.Abs(e.Lon-e.District.Centre.Lon) > 0.025 || math.Abs(e.Lat-e.District.Centre.Lat) > 0.025 {
				t.Fatalf("%s at %v,%v: not near %s", e.Type.Code, e.Lon, e.Lat, e.District.Code)
			}
			if len(e.Attrs) != len(e.Type.Attrs) {
				t.Fatalf("%s has attrs %v, the catalog declares %v", e.Type.Code, e.Attrs, e.Type.Attrs)
			}
			for name, kind := range e.Type.Attrs {
				want := map[catalog.AttrType]reflect.Kind{catalog.AttrNumber: reflect.Float64, catalog.AttrString: reflect.String, catalog.AttrBool: reflect.Bool}[kind]
				if got := reflect.TypeOf(e.Attrs[name]).Kind(); got != want {
					t.Errorf("%s.%s is a %v, want %v", e.Type.Code, name, got, want)
				}
			}
		}
		if got := float64(readings) / n; math.Abs(got-share) > 0.01 {
			t.Errorf("readings are %.3f of the day, want %.2f", got, share)
		}
	}
	// The same seed draws the same day.
	a, b := NewDay(cat, Ordinary, rand.New(rand.NewPCG(7, 7))), NewDay(cat, Ordinary, rand.New(rand.NewPCG(7, 7)))
	for range 100 {
		if x, y := a.Next(), b.Next(); !reflect.DeepEqual(x, y) {
			t.Fatalf("the same seed drew %+v and %+v", x, y)
		}
	}
}
