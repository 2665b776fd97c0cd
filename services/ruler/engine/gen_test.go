package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// A generated workload: rule packs written the way the city's experts
// write them, over every event type of the catalog, and a stream of events
// of those types. Numbers are uniform in [0, 1000) and string attributes
// take one of 200 values, so the thresholds below make a rule match about
// one event of its type in two hundred; most events match nothing, as in
// a city's real stream.

const (
	genNumberRange = 1000
	genStringRange = 200
	// genRulesPerPack splits the rules into packs of this size.
	genRulesPerPack = 50
)

var genSources = []string{"iot", "hotline", "video", "inspector", "simulator"}

func loadCatalog(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	c, err := catalog.Load("../../../rules/catalog.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// genPacks returns n rules in packs, compiled against cat. The same seed
// gives the same packs.
func genPacks(tb testing.TB, cat *catalog.Catalog, n int, seed uint64) []*rulepack.Pack {
	tb.Helper()
	rnd := rand.New(rand.NewPCG(seed, 1))
	var packs []*rulepack.Pack
	for start := 0; start < n; start += genRulesPerPack {
		var b strings.Builder
		fmt.Fprintf(&b, "pack: generated-%d\nowner: city-centre\nrules:\n", start/genRulesPerPack)
		for i := start; i < min(n, start+genRulesPerPack); i++ {
			genRule(&b, rnd, cat, i)
		}
		file := fmt.Sprintf("generated-%d.yaml", start/genRulesPerPack)
		p, err := rulepack.Parse(file, []byte(b.String()))
		if err != nil {
			tb.Fatalf("generated pack: %v\n%s", err, b.String())
		}
		if err := rulepack.Compile(p, cat); err != nil {
			tb.Fatalf("generated pack: %v\n%s", err, b.String())
		}
		packs = append(packs, p)
	}
	return packs
}

func genRule(b *strings.Builder, rnd *rand.Rand, cat *catalog.Catalog, i int) {
	t := cat.EventTypes[rnd.IntN(len(cat.EventTypes))]
	var nums, strs, bools []string
	for _, name := range sortedKeys(t.Attrs) {
		switch t.Attrs[name] {
		case catalog.AttrNumber:
			nums = append(nums, name)
		case catalog.AttrString:
			strs = append(strs, name)
		case catalog.AttrBool:
			bools = append(bools, name)
		}
	}
	// A threshold in the top half-percent of the range.
	hi := func() int { return genNumberRange - 1 - rnd.IntN(genNumberRange/200) }
	district := func() string { return cat.Districts[rnd.IntN(len(cat.Districts))].Code }
	typ := fmt.Sprintf("event.type == %q", t.Code)
	var when string
	switch k := rnd.IntN(10); {
	case k < 3 && len(nums) > 0:
		when = fmt.Sprintf("%s && (event.attrs.%s ?? 0) >= %d", typ, nums[rnd.IntN(len(nums))], hi())
	case k < 4 && len(nums) > 0:
		when = fmt.Sprintf(`%s && event.source != "hotline" && (event.attrs.%s ?? 0) > %d.5`, typ, nums[rnd.IntN(len(nums))], hi())
	case k < 5 && len(nums) > 1:
		when = fmt.Sprintf("%s && ((event.attrs.%s ?? 0) >= %d || (event.attrs.%s ?? 0) >= %d)", typ, nums[0], hi(), nums[1], hi())
	case k < 6 && len(strs) > 0:
		when = fmt.Sprintf(`%s && event.attrs.%s == "v-%d"`, typ, strs[rnd.IntN(len(strs))], rnd.IntN(genStringRange))
	case k < 7 && len(bools) > 0 && len(nums) > 0:
		when = fmt.Sprintf("%s && event.attrs.%s == true && (event.attrs.%s ?? 0) >= %d", typ, bools[0], nums[0], hi())
	case k < 8:
		when = fmt.Sprintf(`%s && event.location.district in [%q, %q] && event.severity == "extreme" && event.source == "iot"`, typ, district(), district())
	case k < 9:
		other := cat.EventTypes[rnd.IntN(len(cat.EventTypes))].Code
		when = fmt.Sprintf(`event.type in [%q, %q] && event.location.street == "street-%d"`, t.Code, other, rnd.IntN(genStringRange))
	default:
		when = fmt.Sprintf(`%s && event.location.district == %q && event.location.street startsWith "street-19"`, typ, district())
	}
	if rnd.IntN(50) == 0 {
		// A rule for any event type: a district watch list.
		when = fmt.Sprintf(`event.location.district == %q && event.severity == "extreme" && event.source == "inspector"`, district())
	}
	fmt.Fprintf(b, "  - id: rule-%d\n    when: '%s'\n    severity: %s\n", i, when, []string{"minor", "moderate", "severe", "extreme"}[rnd.IntN(4)])
	switch rnd.IntN(3) {
	case 0:
		b.WriteString("    group_by: [district, street]\n")
	case 1:
		b.WriteString("    group_by: [district]\n")
	default:
		if len(strs) > 0 && !strings.HasPrefix(when, "event.type in") && !strings.HasPrefix(when, "event.location") {
			fmt.Fprintf(b, "    group_by: [district, attrs.%s]\n", strs[0])
		} else {
			b.WriteString("    group_by: [district, street]\n")
		}
	}
	if rnd.IntN(5) == 0 {
		b.WriteString("    count: {at_least: 3, within: 30m}\n")
	}
	if rnd.IntN(3) == 0 {
		b.WriteString("    title: \"{{ .event.type }} in {{ .labels.district }}\"\n")
	}
	if cleared := clearType(cat, t.Code); cleared != "" && rnd.IntN(10) == 0 {
		fmt.Fprintf(b, "    clear_when: event.type == %q\n", cleared)
	}
}

// clearType returns the catalog's event type that ends events of type t.
func clearType(cat *catalog.Catalog, t string) string {
	for _, c := range []string{t + "_cleared", strings.TrimSuffix(t, "_missing") + "_restored"} {
		if _, ok := cat.EventType(c); ok && c != t {
			return c
		}
	}
	return ""
}

// genEvents returns n events over every type of the catalog.
func genEvents(cat *catalog.Catalog, n int, seed uint64) []*cityhubv1.Event {
	rnd := rand.New(rand.NewPCG(seed, 2))
	at := time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)
	out := make([]*cityhubv1.Event, n)
	for i := range out {
		t := cat.EventTypes[rnd.IntN(len(cat.EventTypes))]
		attrs := map[string]*structpb.Value{}
		for _, name := range sortedKeys(t.Attrs) {
			if rnd.IntN(10) == 0 {
				continue // sources leave attributes out
			}
			switch t.Attrs[name] {
			case catalog.AttrNumber:
				attrs[name] = structpb.NewNumberValue(float64(rnd.IntN(genNumberRange)))
			case catalog.AttrString:
				attrs[name] = structpb.NewStringValue(fmt.Sprintf("v-%d", rnd.IntN(genStringRange)))
			case catalog.AttrBool:
				attrs[name] = structpb.NewBoolValue(rnd.IntN(2) == 0)
			}
		}
		sev := cityhubv1.Severity(rnd.IntN(5))
		if rnd.IntN(10) != 0 && sev == cityhubv1.Severity_SEVERITY_EXTREME {
			sev = cityhubv1.Severity_SEVERITY_MODERATE
		}
		out[i] = &cityhubv1.Event{
			Id:         fmt.Sprintf("ev-%d", i),
			Source:     genSources[rnd.IntN(len(genSources))],
			Type:       t.Code,
			OccurredAt: timestamppb.New(at.Add(time.Duration(i) * time.Second)),
			Severity:   sev,
			Location: &cityhubv1.Location{
				District: cat.Districts[rnd.IntN(len(cat.Districts))].Code,
				Street:   fmt.Sprintf("street-%d", rnd.IntN(genStringRange)),
				Lon:      121.3 + rnd.Float64()/2, Lat: 31.1 + rnd.Float64()/4,
			},
			Attrs: &structpb.Struct{Fields: attrs},
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
