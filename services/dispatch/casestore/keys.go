package casestore

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Every key of a district carries the district code as its hash tag, so that
// one script may touch a case, its history, its request log and every index
// it sits in, and still run on Redis Cluster.
const prefix = "cityhub:"

var (
	districtRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	ulidRE     = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{26}$`)
)

// NewID returns a fresh case id for district: the district code, a dash and
// a lower-case ULID of t, so ids sort by creation time within a district.
func NewID(district string, t time.Time) string {
	return district + "-" + strings.ToLower(ulid.MustNew(ulid.Timestamp(t), rand.Reader).String())
}

// DistrictOf returns the district of a case id, or false when id is not a
// well-formed case id.
func DistrictOf(id string) (string, bool) {
	const tail = 1 + ulid.EncodedSize
	if len(id) <= tail || id[len(id)-tail] != '-' {
		return "", false
	}
	d := id[:len(id)-tail]
	if !districtRE.MatchString(d) || !ulidRE.MatchString(id[len(id)-ulid.EncodedSize:]) {
		return "", false
	}
	return d, true
}

// ValidDistrict reports whether d can be used as a district code in keys.
func ValidDistrict(d string) bool { return districtRE.MatchString(d) }

func tag(district string) string { return "{" + district + "}" }

func caseKey(district, id string) string {
	return prefix + "case:" + tag(district) + ":" + id
}

func historyKey(district, id string) string { return caseKey(district, id) + ":history" }

func requestsKey(district, id string) string { return caseKey(district, id) + ":requests" }

func alertOriginKey(district, alertID string, startsAt time.Time) string {
	return prefix + "alertcase:" + tag(district) + ":" + alertID + ":" + strconv.FormatInt(startsAt.UnixMilli(), 10)
}

func requestOriginKey(district, requestID string) string {
	return prefix + "casereq:" + tag(district) + ":" + requestID
}

func indexAll(district string) string  { return prefix + "cases:" + tag(district) + ":all" }
func indexOpen(district string) string { return prefix + "cases:" + tag(district) + ":open" }

func indexStatus(district string, s cityhubv1.CaseStatus) string {
	return prefix + "cases:" + tag(district) + ":status:" + s.Name()
}

func indexDept(district, dept string) string {
	return prefix + "cases:" + tag(district) + ":dept:" + dept
}

func indexDeptOpen(district, dept string) string { return indexDept(district, dept) + ":open" }

// indexArbitration holds the open cases flagged for arbitration.
func indexArbitration(district string) string {
	return prefix + "cases:" + tag(district) + ":arbitration"
}

// timersKey holds the case ids of district scored by when their timer is
// due; leasesKey the ids a sweeper has claimed, scored by when the lease
// runs out. Both carry the district's tag, so a case's write and its timer
// change in one script.
func timersKey(district string) string { return prefix + "timers:" + tag(district) }
func leasesKey(district string) string { return timersKey(district) + ":leases" }

// indexes returns every index key c belongs to.
func indexes(c *cityhubv1.Case) []string {
	d := c.GetDistrict()
	keys := []string{indexAll(d), indexStatus(d, c.GetStatus())}
	open := c.GetStatus().Open()
	if open {
		keys = append(keys, indexOpen(d))
	}
	if open && c.GetArbitration() {
		keys = append(keys, indexArbitration(d))
	}
	for _, dept := range departments(c) {
		keys = append(keys, indexDept(d, dept))
		if open {
			keys = append(keys, indexDeptOpen(d, dept))
		}
	}
	return keys
}

// departments returns the lead and the assisting departments of c, each once.
// A case has a handful, so a scan of out beats a map; this runs twice per
// transition.
func departments(c *cityhubv1.Case) []string {
	out := make([]string, 0, 2+len(c.GetAssist()))
	add := func(d string) {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	add(c.GetLead())
	for _, a := range c.GetAssist() {
		add(a)
	}
	for _, p := range c.GetParts() {
		add(p.GetDepartment())
	}
	return out
}

// originKey returns the key that makes the creation of c happen once: the
// alert firing it came from, or the request that created it by hand.
func originKey(c *cityhubv1.Case, creation *cityhubv1.AuditEntry) (string, error) {
	if c.GetOrigin() == OriginAlert {
		if c.GetAlertId() == "" || c.GetAlertStartsAt() == nil {
			return "", fmt.Errorf("case %s from an alert has no alert id or start", c.GetId())
		}
		return alertOriginKey(c.GetDistrict(), c.GetAlertId(), c.GetAlertStartsAt().AsTime()), nil
	}
	if creation.GetRequestId() == "" {
		return "", fmt.Errorf("case %s: creation has no request id", c.GetId())
	}
	return requestOriginKey(c.GetDistrict(), creation.GetRequestId()), nil
}

// Origins of a case.
const (
	// OriginAlert marks a case opened by a firing alert.
	OriginAlert = "alert"
	// OriginManual marks a case opened by a person through the API.
	OriginManual = "manual"
)
