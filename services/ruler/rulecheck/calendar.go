package rulecheck

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// NextYearFrom is the month from which a calendar without next year's
// holidays is warned about: the State Council publishes them in the
// winter before.
const NextYearFrom = time.November

// CheckCalendar says whether the working calendar of the catalog at file
// knows the holidays it will need on today: an error when it lacks the
// current year — working-time deadlines would run through the holidays —
// and, from 1 November, a warning while it lacks the next. A calendar that
// knows no year at all (a catalog without holidays, as tests use) is left
// alone.
func CheckCalendar(file string, cal *catalog.Calendar, today time.Time) []Diagnostic {
	if len(cal.Years) == 0 {
		return nil
	}
	if loc := cal.Location(); loc != nil {
		today = today.In(loc)
	}
	where := filepath.Join(filepath.Dir(file), catalog.CalendarDir)
	var out []Diagnostic
	if y := today.Year(); !cal.Covers(y) {
		out = append(out, Diagnostic{File: where, Message: fmt.Sprintf("no holidays for %d, the current year (the calendar knows %v): add %d.yaml from the State Council's notice, or working-time deadlines run through the holidays", y, cal.Years, y)})
	}
	if y := today.Year() + 1; today.Month() >= NextYearFrom && !cal.Covers(y) {
		out = append(out, Diagnostic{Level: Warning, File: where, Message: fmt.Sprintf("no holidays for %d yet: add %d.yaml when the State Council publishes its notice", y, y)})
	}
	return out
}
