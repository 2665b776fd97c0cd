// Package workload draws the events of an ordinary day in a city, for the
// benchmarks and the load driver: a share of readings from sensors and
// cameras, almost all of them in their everyday ranges and few past a
// rule's threshold, and the rest reports — 12345 calls, inspectors,
// video-AI detections and the all-clears. The ruler's BenchmarkStage and
// `cityhub load` draw from the same Day, so that the stage's figures and
// the end-to-end ones are about the same stream.
package workload

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// Readings weighs, within the readings' share, the event types that
// sensors and cameras send whatever the values: rain gauges, air
// stations, road cameras measuring queues, water-level sensors, smart
// bins, methane sensors.
var Readings = map[string]float64{
	"rainfall": 220, "air_quality": 140, "traffic_congestion": 120, "waterlogging": 100,
	"garbage_overflow": 80, "gas_leak": 40,
}

// Reports weighs, within the rest, the event types that report something
// seen, and the all-clears.
var Reports = map[string]float64{
	"illegal_parking": 80, "noise_complaint": 40, "smoke_detected": 30, "traffic_accident": 20,
	"manhole_cover_displaced": 20, "drain_blocked": 20, "illegal_street_vending": 20,
	"gas_smell_report": 10, "waterlogging_cleared": 10, "traffic_cleared": 10, "fire_report": 5,
	"manhole_cover_missing": 5, "building_facade_risk": 5, "road_collapse": 3,
	"gas_alarm_cleared": 3, "manhole_cover_restored": 3, "fire_extinguished": 2,
}

// Ordinary is the readings' share of an ordinary day.
const Ordinary = 0.93

// Event is one drawn event, for its user to encode as it sends events.
type Event struct {
	Type     *catalog.EventType
	Source   string
	District *catalog.District
	Street   string
	Grid     string
	Lon, Lat float64
	// Attrs holds a value for every attribute of Type: a float64, string
	// or bool as the catalog declares it.
	Attrs map[string]any
}

// Day draws events. It is not safe for concurrent use.
type Day struct {
	cat     *catalog.Catalog
	rnd     *rand.Rand
	types   []*catalog.EventType
	weights []float64 // cumulative, beside types
}

// NewDay returns a Day of cat's event types with readings as the
// readings' share (Ordinary for an ordinary day), drawing from rnd. Event
// types of the weights that cat does not have are left out.
func NewDay(cat *catalog.Catalog, readings float64, rnd *rand.Rand) *Day {
	d := &Day{cat: cat, rnd: rnd}
	var total float64
	for _, group := range []struct {
		w     map[string]float64
		share float64
	}{{Readings, readings}, {Reports, 1 - readings}} {
		var sum float64
		for _, w := range group.w {
			sum += w
		}
		for _, code := range slices.Sorted(maps.Keys(group.w)) {
			et, ok := cat.EventType(code)
			if !ok {
				continue
			}
			total += group.w[code] / sum * group.share
			d.types = append(d.types, et)
			d.weights = append(d.weights, total)
		}
	}
	return d
}

// Empty reports whether the catalog has none of the day's event types.
func (d *Day) Empty() bool { return len(d.types) == 0 }

// Next draws the next event. The day must not be Empty.
func (d *Day) Next() Event {
	x := d.rnd.Float64() * d.weights[len(d.weights)-1]
	i, _ := slices.BinarySearch(d.weights, x)
	t := d.types[min(i, len(d.types)-1)]
	dist := &d.cat.Districts[d.rnd.IntN(len(d.cat.Districts))]
	e := Event{
		Type:     t,
		Source:   source(d.rnd, t.Code),
		District: dist,
		Lon:      dist.Centre.Lon + (d.rnd.Float64()-0.5)*0.05,
		Lat:      dist.Centre.Lat + (d.rnd.Float64()-0.5)*0.05,
		Street:   fmt.Sprintf("street-%d", d.rnd.IntN(200)),
		Grid:     fmt.Sprintf("%s-%d", dist.Code, d.rnd.IntN(100)),
	}
	if len(t.Attrs) > 0 {
		e.Attrs = make(map[string]any, len(t.Attrs))
		for _, name := range slices.Sorted(maps.Keys(t.Attrs)) {
			switch t.Attrs[name] {
			case catalog.AttrNumber:
				e.Attrs[name] = attr(d.rnd, name)
			case catalog.AttrString:
				e.Attrs[name] = fmt.Sprintf("%s-%d", name, d.rnd.IntN(500))
			case catalog.AttrBool:
				e.Attrs[name] = d.rnd.IntN(4) == 0
			}
		}
	}
	return e
}

// attr draws a numeric attribute as a city's sensors and reports give it:
// mostly ordinary readings, rarely past an alarm level.
func attr(rnd *rand.Rand, name string) float64 {
	exp := func(mean float64) float64 { return math.Round(rnd.ExpFloat64()*mean*10) / 10 }
	switch name {
	case "water_depth_cm":
		return exp(5)
	case "rain_mm_h":
		return exp(4)
	case "rain_mm_24h":
		return exp(20)
	case "ch4_ppm":
		return exp(50)
	case "lel_percent":
		return exp(1)
	case "speed_kmh":
		return 5 + float64(rnd.IntN(60))
	case "queue_m":
		return exp(200)
	case "injured":
		if rnd.IntN(10) == 0 {
			return float64(1 + rnd.IntN(3))
		}
		return 0
	case "confidence":
		return 0.3 + rnd.Float64()*0.69
	case "db":
		return float64(50 + rnd.IntN(40))
	case "fill_percent":
		return float64(rnd.IntN(101))
	default:
		return exp(10)
	}
}

// source says who reports each kind of event, most often first.
func source(rnd *rand.Rand, typ string) string {
	switch typ {
	case "rainfall", "air_quality", "gas_leak", "garbage_overflow", "manhole_cover_displaced", "gas_alarm_cleared", "manhole_cover_restored":
		return "iot"
	case "traffic_congestion", "illegal_parking", "smoke_detected", "illegal_street_vending", "traffic_cleared", "fire_extinguished":
		return "video"
	case "waterlogging", "waterlogging_cleared":
		return []string{"iot", "iot", "iot", "iot", "iot", "iot", "iot", "video", "video", "hotline"}[rnd.IntN(10)]
	case "traffic_accident":
		return []string{"video", "video", "video", "hotline", "hotline"}[rnd.IntN(5)]
	case "building_facade_risk", "road_collapse", "drain_blocked", "manhole_cover_missing":
		return []string{"inspector", "hotline"}[rnd.IntN(2)]
	default:
		return "hotline"
	}
}
