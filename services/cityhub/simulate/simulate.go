// Package simulate posts a plausible stream of city events to a hub's
// intake: a rainstorm's waterlogging reports and rain-gauge readings,
// hotline calls that cluster on one street, gas alarms, missing manhole
// covers and traffic incidents. Only event types and attributes that the
// catalog declares are sent, so every event is valid.
package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// Options configures Run.
type Options struct {
	// URL is the hub's base URL.
	URL string
	// Token is a source (or commander) token.
	Token string
	// Rate is events per second.
	Rate float64
	// Duration bounds the run; zero runs until ctx ends.
	Duration time.Duration
	// Seed seeds the generator; zero seeds from the clock.
	Seed        int64
	CatalogPath string
	// Progress receives a line every ten seconds; nil for none.
	Progress io.Writer
	Client   *http.Client
}

// Run posts events until Duration passes or ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Rate <= 0 || o.Rate > 10000 {
		return fmt.Errorf("simulate: rate %v: want more than 0 and at most 10000 events a second", o.Rate)
	}
	cat, err := catalog.Load(o.CatalogPath)
	if err != nil {
		return err
	}
	seed := o.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	g := NewGenerator(cat, seed)
	if len(g.kinds) == 0 {
		return ErrNoKinds
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	var sent, owed float64
	perTick := o.Rate / 5
	for {
		select {
		case <-ctx.Done():
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "simulate: %d events sent\n", int(sent))
			}
			return nil
		case <-report.C:
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "simulate: %d events sent\n", int(sent))
			}
		case now := <-tick.C:
			owed += perTick
			n := int(owed)
			if n == 0 {
				continue
			}
			owed -= float64(n)
			batch := make([]events.Input, n)
			for i := range batch {
				batch[i] = g.Next(now)
			}
			if err := post(ctx, o, batch); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			sent += float64(n)
		}
	}
}

func post(ctx context.Context, o Options, batch []events.Input) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(o.URL, "/")+"/v1/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+o.Token)
		resp, err := o.Client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted:
				return nil
			case resp.StatusCode < 500:
				return fmt.Errorf("simulate: the hub refused the events (%s): %s", resp.Status, msg)
			}
			err = fmt.Errorf("%s: %s", resp.Status, msg)
		}
		if attempt == 5 {
			return fmt.Errorf("simulate: posting events: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
}

// Generator makes events. It is not safe for concurrent use.
type Generator struct {
	cat   *catalog.Catalog
	rnd   *rand.Rand
	kinds []kind
	seq   int
}

// kind is one sort of incident: its event type, how often it comes, and
// how its attributes and text look.
type kind struct {
	typ    string
	source string
	weight int
	attrs  func(r *rand.Rand) map[string]any
	text   []string
}

var streets = []string{"tianping", "hengshan", "zhaojiabang", "caoxi", "nandan", "xietu", "longhua", "wanping", "huaihai", "yanan", "siping", "zhangyang"}

// NewGenerator returns a generator over the catalog's districts and the
// event types it declares.
func NewGenerator(cat *catalog.Catalog, seed int64) *Generator {
	g := &Generator{cat: cat, rnd: rand.New(rand.NewPCG(uint64(seed), 0x636974796875))}
	all := []kind{
		{typ: "waterlogging", source: "iot", weight: 30, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"water_depth_cm": float64(5 + r.IntN(60)), "rain_mm_h": float64(10 + r.IntN(90))}
		}},
		{typ: "waterlogging", source: "hotline", weight: 15, text: []string{"小区门口积水很深，车子开不过去", "地道积水，行人无法通行", "路口积水没过脚踝"}},
		{typ: "rainfall", source: "iot", weight: 15, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"rain_mm_h": float64(r.IntN(120)), "gauge_id": fmt.Sprintf("rg-%03d", r.IntN(200))}
		}},
		{typ: "gas_leak", source: "iot", weight: 6, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"lel_percent": float64(r.IntN(60)), "ch4_ppm": float64(r.IntN(20000)), "sensor_id": fmt.Sprintf("gs-%04d", r.IntN(5000))}
		}},
		{typ: "gas_smell_report", source: "hotline", weight: 2, text: []string{"楼道里有很重的煤气味", "饭店后厨闻到燃气味"}},
		{typ: "manhole_cover_missing", source: "inspector", weight: 5, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"cover_id": fmt.Sprintf("mh-%05d", r.IntN(90000))}
		}, text: []string{"人行道井盖缺失，已设临时围挡"}},
		{typ: "manhole_cover_displaced", source: "video", weight: 4, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"cover_id": fmt.Sprintf("mh-%05d", r.IntN(90000)), "displacement_cm": float64(r.IntN(40)), "camera_id": fmt.Sprintf("c-%d", r.IntN(400))}
		}},
		{typ: "traffic_congestion", source: "video", weight: 10, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"speed_kmh": float64(r.IntN(40)), "queue_m": float64(r.IntN(800)), "camera_id": fmt.Sprintf("c-%d", r.IntN(400))}
		}},
		{typ: "traffic_accident", source: "hotline", weight: 3, text: []string{"两车追尾，占用一条车道", "电动车与轿车碰擦"}},
		{typ: "noise_complaint", source: "hotline", weight: 6, text: []string{"夜间施工噪声扰民", "广场舞音响声音太大"}},
		{typ: "illegal_parking", source: "inspector", weight: 4, text: []string{"消防通道被占用"}},
		{typ: "smoke_detected", source: "video", weight: 2, attrs: func(r *rand.Rand) map[string]any {
			return map[string]any{"confidence": float64(50+r.IntN(50)) / 100, "camera_id": fmt.Sprintf("c-%d", r.IntN(400))}
		}},
	}
	for _, k := range all {
		if _, ok := cat.EventType(k.typ); ok {
			g.kinds = append(g.kinds, k)
		}
	}
	return g
}

// Sources returns the sources g's events come from, sorted: what a
// source token for the simulator must speak for.
func (g *Generator) Sources() []string {
	var out []string
	for _, k := range g.kinds {
		if !slices.Contains(out, k.source) {
			out = append(out, k.source)
		}
	}
	slices.Sort(out)
	return out
}

// Next returns one event that occurred at now.
func (g *Generator) Next(now time.Time) events.Input {
	g.seq++
	if len(g.kinds) == 0 || len(g.cat.Districts) == 0 {
		return events.Input{}
	}
	k := g.pick()
	d := g.cat.Districts[g.rnd.IntN(len(g.cat.Districts))]
	lon := d.Centre.Lon + (g.rnd.Float64()-0.5)*0.05
	lat := d.Centre.Lat + (g.rnd.Float64()-0.5)*0.05
	in := events.Input{
		ID:         fmt.Sprintf("sim-%d-%d", now.Unix(), g.seq),
		Source:     k.source,
		Type:       k.typ,
		OccurredAt: now.UTC().Format(time.RFC3339Nano),
		Location:   &events.LocationInput{Lon: &lon, Lat: &lat, District: d.Code, Street: streets[g.rnd.IntN(len(streets))]},
	}
	if len(k.text) > 0 {
		in.Text = k.text[g.rnd.IntN(len(k.text))]
	}
	if k.attrs != nil {
		et, _ := g.cat.EventType(k.typ)
		in.Attrs = map[string]any{}
		for name, v := range k.attrs(g.rnd) {
			if declared, ok := et.Attrs[name]; ok && kindOf(v) == declared {
				in.Attrs[name] = v
			}
		}
	}
	return in
}

func (g *Generator) pick() kind {
	total := 0
	for _, k := range g.kinds {
		total += k.weight
	}
	n := g.rnd.IntN(total)
	for _, k := range g.kinds {
		if n < k.weight {
			return k
		}
		n -= k.weight
	}
	return g.kinds[len(g.kinds)-1]
}

func kindOf(v any) catalog.AttrType {
	switch v.(type) {
	case float64:
		return catalog.AttrNumber
	case string:
		return catalog.AttrString
	case bool:
		return catalog.AttrBool
	}
	return ""
}

// ErrNoKinds is returned when the catalog declares none of the event types
// the simulator knows.
var ErrNoKinds = errors.New("simulate: the catalog declares none of the simulated event types")
