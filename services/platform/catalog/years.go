package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// CalendarDir is the directory, beside catalog.yaml, of the calendar's
// year files: YYYY.yaml, one per year, each that year's holidays and
// make-up working days as the State Council's notice publishes them every
// winter for the year after.
const CalendarDir = "calendar"

// Year is one year file of the calendar.
type Year struct {
	Year int `yaml:"year"`
	// Notice names where the dates come from (the notice and its date).
	Notice   string   `yaml:"notice"`
	Holidays []string `yaml:"holidays"`
	Workdays []string `yaml:"workdays"`
}

// maxYears bounds the year files read.
const maxYears = 100

// loadYears reads the year files of dir (none when dir does not exist).
// Each must be named for its year and hold dates of that year only.
func loadYears(dir string) ([]Year, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) > maxYears {
		return nil, fmt.Errorf("%s: %d year files, at most %d", dir, len(files), maxYears)
	}
	slices.Sort(files)
	var out []Year
	var errs []error
	for _, f := range files {
		b, err := readLimited(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var y Year
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&y); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if strconv.Itoa(y.Year) != name {
			errs = append(errs, fmt.Errorf("%s: year %d: the file of a year is named for it (%d.yaml)", f, y.Year, y.Year))
			continue
		}
		for _, d := range slices.Concat(y.Holidays, y.Workdays) {
			if t, err := time.Parse(time.DateOnly, d); err == nil && t.Year() != y.Year {
				errs = append(errs, fmt.Errorf("%s: %s is not a date of %d", f, d, y.Year))
			}
		}
		out = append(out, y)
	}
	return out, errors.Join(errs...)
}

// addYears adds the years' dates to the calendar and records them as
// covered.
func (cal *Calendar) addYears(years []Year) {
	for _, y := range years {
		cal.Holidays = append(cal.Holidays, y.Holidays...)
		cal.Workdays = append(cal.Workdays, y.Workdays...)
		cal.Years = append(cal.Years, y.Year)
	}
}

// coverYears records the years the calendar's dates fall in as covered,
// besides those of year files.
func (cal *Calendar) coverYears() {
	for _, d := range slices.Concat(cal.Holidays, cal.Workdays) {
		if t, err := time.Parse(time.DateOnly, d); err == nil {
			cal.Years = append(cal.Years, t.Year())
		}
	}
	slices.Sort(cal.Years)
	cal.Years = slices.Compact(cal.Years)
}

// Covers reports whether the calendar knows the holidays of year: a year
// file for it, or dates of it in catalog.yaml. A year it does not cover
// counts every weekday as a working day.
func (cal *Calendar) Covers(year int) bool { return slices.Contains(cal.Years, year) }

// yearsOf loads the year files beside the catalog file at path.
func yearsOf(path string) ([]Year, error) {
	dir := filepath.Join(filepath.Dir(path), CalendarDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return loadYears(dir)
}
