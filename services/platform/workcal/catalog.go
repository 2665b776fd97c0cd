package workcal

import "github.com/cityhub/cityhub/services/platform/catalog"

// FromCatalog turns the catalog's calendar into a working calendar.
func FromCatalog(c *catalog.Calendar) (*Calendar, error) {
	cfg := Config{Location: c.Location(), Weekdays: c.WorkingWeekdays()}
	for _, p := range c.Periods() {
		cfg.Periods = append(cfg.Periods, Period{Start: p.Start, End: p.End})
	}
	for _, list := range []struct {
		in  []string
		out *[]Date
	}{{c.Holidays, &cfg.Holidays}, {c.Workdays, &cfg.Workdays}} {
		for _, s := range list.in {
			d, err := ParseDate(s)
			if err != nil {
				return nil, err
			}
			*list.out = append(*list.out, d)
		}
	}
	return New(cfg)
}
