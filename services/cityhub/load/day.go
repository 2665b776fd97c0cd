package load

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// day draws an ordinary day as the ruler's BenchmarkStage draws its
// mix=city (services/ruler/bench_test.go), so that the end-to-end figures
// and the ruler's stage figures are about the same stream: 93% readings
// of sensors and cameras in their everyday ranges, few of them past a
// rule's threshold, and 7% reports. It is not safe for concurrent use.
type day struct {
	cat     *catalog.Catalog
	rnd     *rand.Rand
	types   []*catalog.EventType
	weights []float64 // cumulative, beside types
}

// dayReadings and dayReports weigh the event types, within their share.
var (
	dayReadings = map[string]float64{
		"rainfall": 220, "air_quality": 140, "traffic_congestion": 120, "waterlogging": 100,
		"garbage_overflow": 80, "gas_leak": 40,
	}
	dayReports = map[string]float64{
		"illegal_parking": 80, "noise_complaint": 40, "smoke_detected": 30, "traffic_accident": 20,
		"manhole_cover_displaced": 20, "drain_blocked": 20, "illegal_street_vending": 20,
		"gas_smell_report": 10, "waterlogging_cleared": 10, "traffic_cleared": 10, "fire_report": 5,
		"manhole_cover_missing": 5, "building_facade_risk": 5, "road_collapse": 3,
		"gas_alarm_cleared": 3, "manhole_cover_restored": 3, "fire_extinguished": 2,
	}
)

// dayReadingShare is the share of readings.
const dayReadingShare = 0.93

func newDay(cat *catalog.Catalog, seed int64) *day {
	d := &day{cat: cat, rnd: rand.New(rand.NewPCG(uint64(seed), 0x646179))}
	var total float64
	for _, group := range []struct {
		w     map[string]float64
		share float64
	}{{dayReadings, dayReadingShare}, {dayReports, 1 - dayReadingShare}} {
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

func (d *day) Sources() []string {
	if len(d.types) == 0 {
		return nil
	}
	return []string{"hotline", "inspector", "iot", "video"}
}

func (d *day) Next(now time.Time) events.Input {
	x := d.rnd.Float64() * d.weights[len(d.weights)-1]
	i, _ := slices.BinarySearch(d.weights, x)
	t := d.types[min(i, len(d.types)-1)]
	dist := d.cat.Districts[d.rnd.IntN(len(d.cat.Districts))]
	lon := dist.Centre.Lon + (d.rnd.Float64()-0.5)*0.05
	lat := dist.Centre.Lat + (d.rnd.Float64()-0.5)*0.05
	in := events.Input{
		Source:     daySource(d.rnd, t.Code),
		Type:       t.Code,
		OccurredAt: now.UTC().Format(time.RFC3339Nano),
		Location: &events.LocationInput{
			Lon: &lon, Lat: &lat, District: dist.Code,
			Street: fmt.Sprintf("street-%d", d.rnd.IntN(200)),
			Grid:   fmt.Sprintf("%s-%d", dist.Code, d.rnd.IntN(100)),
		},
	}
	if len(t.Attrs) > 0 {
		in.Attrs = make(map[string]any, len(t.Attrs))
		for _, name := range slices.Sorted(maps.Keys(t.Attrs)) {
			switch t.Attrs[name] {
			case catalog.AttrNumber:
				in.Attrs[name] = dayAttr(d.rnd, name)
			case catalog.AttrString:
				in.Attrs[name] = fmt.Sprintf("%s-%d", name, d.rnd.IntN(500))
			case catalog.AttrBool:
				in.Attrs[name] = d.rnd.IntN(4) == 0
			}
		}
	}
	return in
}

// dayAttr draws a numeric attribute as a city's sensors and reports give
// it: mostly ordinary readings, rarely past an alarm level.
func dayAttr(rnd *rand.Rand, name string) float64 {
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

// daySource says who reports each kind of event, most often first.
func daySource(rnd *rand.Rand, typ string) string {
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
