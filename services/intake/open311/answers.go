package open311

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// localLayouts are the datetime forms accepted without an offset (what an
// HTML datetime-local input sends); they are read in the city's time zone.
var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04"}

// answers turns the attribute[CODE] answers of a report into event
// attributes, typed as the service's questions say, and returns the answer
// to the district question, which is no attribute. It reports every
// problem at once: a question the service does not ask, a required one
// unanswered, an answer that does not fit its datatype.
func answers(t *catalog.EventType, given map[string][]string, zone *time.Location) (map[string]any, string, []problem) {
	var probs []problem
	attrs := map[string]any{}
	district := ""
	for _, code := range sortedKeys(given) {
		vs := given[code]
		field := "attribute[" + code + "]"
		if code == catalog.ReservedReportCode {
			if len(vs) > 1 {
				probs = append(probs, problemf(field, "one district, got %d", len(vs)))
				continue
			}
			district = strings.TrimSpace(vs[0])
			continue
		}
		a, ok := t.Report.Attribute(code)
		if !ok {
			probs = append(probs, problemf(field, "not an attribute of service %s; GET services/%s tells its attributes", t.Code, t.Code))
			continue
		}
		if len(vs) > 1 && a.Datatype != catalog.DatatypeMultiValueList {
			probs = append(probs, problemf(field, "one answer, got %d", len(vs)))
			continue
		}
		v, p := answer(a, t.Attrs[code], vs, zone)
		if p != "" {
			probs = append(probs, problem{field, p})
			continue
		}
		attrs[code] = v
	}
	for _, a := range t.Report.Attributes {
		if _, ok := given[a.Code]; a.Required && !ok {
			probs = append(probs, problemf("attribute["+a.Code+"]", "required: %s", a.Description))
		}
	}
	return attrs, district, probs
}

// answer types the answers to one question, or says why it cannot.
func answer(a *catalog.ReportAttribute, attr catalog.AttrType, vs []string, zone *time.Location) (any, string) {
	v := vs[0]
	switch a.Datatype {
	case catalog.DatatypeString:
		if strings.ContainsAny(v, "\r\n") {
			return nil, "a string is one line; this answer has line breaks"
		}
		return v, ""
	case catalog.DatatypeText:
		return v, ""
	case catalog.DatatypeNumber:
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, "want a number, got " + strconv.Quote(clip(v))
		}
		return n, ""
	case catalog.DatatypeDatetime:
		v = strings.TrimSpace(v)
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.Format(time.RFC3339Nano), ""
		}
		for _, layout := range localLayouts {
			if t, err := time.ParseInLocation(layout, v, zone); err == nil {
				return t.Format(time.RFC3339Nano), ""
			}
		}
		return nil, "want an ISO 8601 date and time such as 2026-07-01T08:30:00+08:00, got " + strconv.Quote(clip(v))
	case catalog.DatatypeSingleValueList:
		if _, ok := a.Value(v); !ok {
			return nil, "not one of the values: " + keys(a)
		}
		if attr == catalog.AttrBool {
			return v == "true", ""
		}
		return v, ""
	case catalog.DatatypeMultiValueList:
		chosen := map[string]bool{}
		for _, v := range vs {
			if _, ok := a.Value(v); !ok {
				return nil, strconv.Quote(clip(v)) + " is not one of the values: " + keys(a)
			}
			chosen[v] = true
		}
		// In the order of the values, each once, whatever order they came in.
		var out []string
		for _, val := range a.Values {
			if chosen[val.Key] {
				out = append(out, val.Key)
			}
		}
		return strings.Join(out, ","), ""
	}
	return nil, "the catalog gives this attribute an unknown datatype"
}

// keys lists the keys of a list question, for an error.
func keys(a *catalog.ReportAttribute) string {
	ks := make([]string, len(a.Values))
	for i, v := range a.Values {
		ks[i] = v.Key
	}
	return strings.Join(ks, ", ")
}
