package load

import (
	"math/rand/v2"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
	"github.com/cityhub/cityhub/services/platform/workload"
)

// day sends an ordinary day (workload.Day), the stream the ruler's
// BenchmarkStage measures as mix=city. It is not safe for concurrent use.
type day struct {
	d *workload.Day
}

func newDay(cat *catalog.Catalog, seed int64) *day {
	return &day{d: workload.NewDay(cat, workload.Ordinary, rand.New(rand.NewPCG(uint64(seed), 0x646179)))}
}

func (d *day) Sources() []string {
	if d.d.Empty() {
		return nil
	}
	return []string{"hotline", "inspector", "iot", "video"}
}

func (d *day) Next(now time.Time) events.Input {
	e := d.d.Next()
	lon, lat := e.Lon, e.Lat
	return events.Input{
		Source:     e.Source,
		Type:       e.Type.Code,
		OccurredAt: now.UTC().Format(time.RFC3339Nano),
		Location: &events.LocationInput{
			Lon: &lon, Lat: &lat, District: e.District.Code, Street: e.Street, Grid: e.Grid,
		},
		Attrs: e.Attrs,
	}
}
