package load

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cityhub/cityhub/services/cityhub/simulate"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// Mix names a stream of events.
type Mix string

const (
	// MixCity is the simulator's city (simulate.Generator): rainstorm
	// waterlogging and rain gauges, hotline calls, gas alarms, manhole
	// covers, traffic.
	MixCity Mix = "city"
	// MixStorm is the ruler benchmark's mix=uniform: every event type of
	// the catalog equally often, attribute values spread evenly over their
	// ranges, so that about a third of all events change an alert.
	MixStorm Mix = "storm"
	// MixDay is the ruler benchmark's mix=city, an ordinary day: readings
	// in their everyday ranges, a few reports; about one event in seventy
	// changes an alert.
	MixDay Mix = "day"
)

// ParseMix returns the mix named s.
func ParseMix(s string) (Mix, error) {
	switch m := Mix(s); m {
	case MixCity, MixStorm, MixDay:
		return m, nil
	}
	return "", fmt.Errorf("mix %q: want city, storm or day", s)
}

// generator makes the events of a mix. simulate.Generator is one.
type generator interface {
	Next(now time.Time) events.Input
	Sources() []string
}

func newGenerator(m Mix, cat *catalog.Catalog, seed int64) (generator, error) {
	var g generator
	switch m {
	case MixCity:
		g = simulate.NewGenerator(cat, seed)
	case MixStorm:
		g = newStorm(cat, seed)
	case MixDay:
		g = newDay(cat, seed)
	default:
		return nil, fmt.Errorf("mix %q: want city, storm or day", m)
	}
	if len(g.Sources()) == 0 || len(cat.Districts) == 0 {
		return nil, fmt.Errorf("mix %s: the catalog declares none of its event types or no districts", m)
	}
	return g, nil
}

// Sources returns the sources a source token must speak for to run mix m
// with the catalog at catalogPath: the mix's and the markers'.
func Sources(catalogPath string, m Mix) ([]string, error) {
	cat, err := catalog.Load(catalogPath)
	if err != nil {
		return nil, err
	}
	g, err := newGenerator(m, cat, 1)
	if err != nil {
		return nil, err
	}
	out := append(slices.Clone(g.Sources()), markerSource)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// storm draws events as the ruler's BenchmarkStage draws its mix=uniform:
// an event type of the catalog, a source, a district and one of 200
// streets uniformly, every numeric attribute uniform over 0–59, every
// string one of a hundred values, every bool a coin. Thresholds sit in
// those ranges, so a third of all events change an alert. It is not safe
// for concurrent use.
type storm struct {
	cat *catalog.Catalog
	rnd *rand.Rand
}

// stormSources are the sources storm events come from.
var stormSources = []string{"hotline", "inspector", "iot", "video"}

func newStorm(cat *catalog.Catalog, seed int64) *storm {
	return &storm{cat: cat, rnd: rand.New(rand.NewPCG(uint64(seed), 0x73746f726d))}
}

func (s *storm) Sources() []string {
	if len(s.cat.EventTypes) == 0 {
		return nil
	}
	return stormSources
}

func (s *storm) Next(now time.Time) events.Input {
	t := s.cat.EventTypes[s.rnd.IntN(len(s.cat.EventTypes))]
	d := s.cat.Districts[s.rnd.IntN(len(s.cat.Districts))]
	lon := d.Centre.Lon + (s.rnd.Float64()-0.5)*0.05
	lat := d.Centre.Lat + (s.rnd.Float64()-0.5)*0.05
	in := events.Input{
		Source:     stormSources[s.rnd.IntN(len(stormSources))],
		Type:       t.Code,
		OccurredAt: now.UTC().Format(time.RFC3339Nano),
		Location:   &events.LocationInput{Lon: &lon, Lat: &lat, District: d.Code, Street: fmt.Sprintf("street-%d", s.rnd.IntN(200))},
	}
	if len(t.Attrs) > 0 {
		in.Attrs = make(map[string]any, len(t.Attrs))
		// Sorted, so that a seed gives the same events every time.
		for _, name := range slices.Sorted(maps.Keys(t.Attrs)) {
			switch t.Attrs[name] {
			case catalog.AttrNumber:
				in.Attrs[name] = float64(s.rnd.IntN(60))
			case catalog.AttrString:
				in.Attrs[name] = fmt.Sprintf("%s-%d", name, s.rnd.IntN(100))
			case catalog.AttrBool:
				in.Attrs[name] = s.rnd.IntN(2) == 0
			}
		}
	}
	return in
}
