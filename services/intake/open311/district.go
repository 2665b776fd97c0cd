package open311

import (
	"fmt"
	"math"
	"strings"
	"unicode"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// DefaultMaxDistance is how far, in metres, a report's coordinates may be
// from the nearest district centre of the catalog and still be placed in
// that district.
const DefaultMaxDistance = 50_000

// placer decides the district of a report.
type placer struct {
	cat     *catalog.Catalog
	maxDist float64
}

// place returns the district of a report: the one chosen in
// attribute[district]; else the district whose centre is nearest to its
// coordinates, when within maxDist; else the one district its address
// names. A report it cannot place is a problem asking for
// attribute[district].
func (p placer) place(chosen string, rep *report) (string, []problem) {
	const field = "attribute[" + catalog.ReservedReportCode + "]"
	if chosen != "" {
		if _, ok := p.cat.District(chosen); !ok {
			return "", []problem{problemf(field, "%q is not a district; GET services/CODE lists them", clip(chosen))}
		}
		return chosen, nil
	}
	if rep.Lat != nil && rep.Long != nil {
		code, dist := p.nearest(*rep.Long, *rep.Lat)
		if code != "" && dist <= p.maxDist {
			return code, nil
		}
		return "", []problem{problemf("lat", "%v, %v is %.0f km from the nearest district of this city; choose one in %s if it is right", *rep.Lat, *rep.Long, dist/1000, field)}
	}
	switch named := p.named(rep.Address); len(named) {
	case 1:
		return named[0], nil
	case 0:
		return "", []problem{problemf(field, "address_string names no district: choose one, or send lat and long")}
	default:
		return "", []problem{problemf(field, "address_string names several districts (%s): choose one, or send lat and long", strings.Join(named, ", "))}
	}
}

// nearest returns the district whose centre is nearest to the point, and
// how far it is in metres.
func (p placer) nearest(lon, lat float64) (string, float64) {
	best, bestDist := "", math.Inf(1)
	for _, d := range p.cat.Districts {
		if dist := catalog.DistanceM(lon, lat, d.Centre.Lon, d.Centre.Lat); dist < bestDist {
			best, bestDist = d.Code, dist
		}
	}
	return best, bestDist
}

// named returns the districts an address names, by their full name
// (徐汇区, 浦东新区), or — when it names none so — by their short name (徐汇,
// 浦东) or their code as a word (xuhui). A river or a road named like a
// district (黄浦江) is why full names come first.
func (p placer) named(address string) []string {
	if address == "" {
		return nil
	}
	lower := strings.ToLower(address)
	var full, short []string
	for _, d := range p.cat.Districts {
		switch {
		case d.Name != "" && strings.Contains(address, d.Name):
			full = append(full, d.Code)
		case shortName(d.Name) != "" && strings.Contains(address, shortName(d.Name)):
			short = append(short, d.Code)
		case containsWord(lower, d.Code):
			short = append(short, d.Code)
		}
	}
	if len(full) > 0 {
		return full
	}
	return short
}

// shortName is a district's name without 新区 or 区, when two characters or
// more remain.
func shortName(name string) string {
	for _, suffix := range []string{"新区", "区"} {
		if s, ok := strings.CutSuffix(name, suffix); ok {
			if len([]rune(s)) >= 2 {
				return s
			}
			return ""
		}
	}
	return ""
}

// containsWord reports whether word occurs in s between non-letters.
func containsWord(s, word string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		before := start == 0 || !isWordByte(s[start-1])
		after := end == len(s) || !isWordByte(s[end])
		if before && after {
			return true
		}
		i = start + 1
	}
}

func isWordByte(b byte) bool {
	return b < 0x80 && (unicode.IsLetter(rune(b)) || unicode.IsDigit(rune(b)))
}

// districtValues are the choices of the district question.
func districtValues(cat *catalog.Catalog) []valueDoc {
	out := make([]valueDoc, len(cat.Districts))
	for i, d := range cat.Districts {
		out[i] = valueDoc{Key: d.Code, Name: d.Name}
	}
	return out
}

// districtQuestion is the description of the district question.
func districtQuestion(maxDist float64) string {
	return fmt.Sprintf("所在区。不填时按经纬度取最近的区（%.0f 公里内），或按地址中的区名。", maxDist/1000)
}
