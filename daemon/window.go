// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/fieldgate/fieldgate/daemon/config"
)

// Window is a parsed maintenance window.
type Window struct {
	Name     string
	spec     *cron.SpecSchedule
	duration time.Duration
	loc      *time.Location
	exclude  map[string]bool // YYYY-MM-DD in loc
}

// ParseWindow parses a configured window.
func ParseWindow(c config.Window) (*Window, error) {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("window %s: %w", c.Name, err)
	}
	sched, err := cron.ParseStandard(c.Start)
	if err != nil {
		return nil, fmt.Errorf("window %s: start %q: %w", c.Name, c.Start, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("window %s: start %q: use a five-field cron expression", c.Name, c.Start)
	}
	w := &Window{Name: c.Name, spec: spec, duration: c.Duration, loc: loc, exclude: map[string]bool{}}
	for _, d := range c.Exclude {
		w.exclude[d] = true
	}
	return w, nil
}

// openings returns the window's openings on the calendar days from..to
// (inclusive, in the window's zone), in order, skipping excluded dates.
// It works on wall-clock times rather than asking cron for "the next
// instant", because on a spring-forward day a 02:00 start does not exist:
// time.Date moves it to the first instant after the gap (03:00), so the
// window still opens that night, as a plant expects; robfig/cron would skip
// the day.
func (w *Window) openings(from, to time.Time) []time.Time {
	var out []time.Time
	y, m, d := from.In(w.loc).Date()
	day := time.Date(y, m, d, 12, 0, 0, 0, w.loc)
	y, m, d = to.In(w.loc).Date()
	last := time.Date(y, m, d, 12, 0, 0, 0, w.loc)
	for ; !day.After(last); day = day.AddDate(0, 0, 1) {
		if w.exclude[day.Format(time.DateOnly)] || !w.dayMatches(day) {
			continue
		}
		for h := 0; h < 24; h++ {
			if w.spec.Hour&(1<<uint(h)) == 0 {
				continue
			}
			for min := 0; min < 60; min++ {
				if w.spec.Minute&(1<<uint(min)) != 0 {
					out = append(out, firstInstant(day, h, min, w.loc))
				}
			}
		}
	}
	return out
}

// dayMatches applies cron's day rules: month, and day-of-month OR
// day-of-week when both are restricted.
func (w *Window) dayMatches(day time.Time) bool {
	const star = 1 << 63
	if w.spec.Month&(1<<uint(day.Month())) == 0 {
		return false
	}
	dom := w.spec.Dom&(1<<uint(day.Day())) != 0
	dow := w.spec.Dow&(1<<uint(day.Weekday())) != 0
	if w.spec.Dom&star != 0 || w.spec.Dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}

// openingAround returns the latest opening at or before t whose window
// still covers t.
func (w *Window) openingAround(t time.Time) (start time.Time, ok bool) {
	for _, s := range w.openings(t.Add(-w.duration-24*time.Hour), t) {
		if !s.After(t) && t.Before(s.Add(w.duration)) {
			start, ok = s, true
		}
	}
	return start, ok
}

// OpenAt reports whether the window is open at t and, if so, when it closes.
func (w *Window) OpenAt(t time.Time) (open bool, closes time.Time) {
	start, ok := w.openingAround(t)
	if !ok {
		return false, time.Time{}
	}
	closes = start.Add(w.duration)
	return t.Before(closes), closes
}

// Fits reports whether a step of estimated duration d, started at t, ends
// before the window closes.
func (w *Window) Fits(t time.Time, d time.Duration) bool {
	open, closes := w.OpenAt(t)
	return open && !t.Add(d).After(closes)
}

// NextOpening returns the first opening after t (skipping excluded
// dates), or the zero time if there is none within a year.
func (w *Window) NextOpening(t time.Time) time.Time {
	for from := t; from.Before(t.AddDate(1, 0, 0)); from = from.AddDate(0, 0, 28) {
		for _, s := range w.openings(from, from.AddDate(0, 0, 28)) {
			if s.After(t) {
				return s
			}
		}
	}
	return time.Time{}
}

// firstInstant is time.Date for a wall-clock time on day, with cron's
// conventions where DST makes that wall time ambiguous: when a fall-back
// transition makes it happen twice, the first; when a spring-forward
// transition skips it, the first instant after the gap (the transition
// itself). Time zones shift by an hour or, on Lord Howe Island, by half of
// one. (time.Date alone picks either instant of a repeated time, and maps a
// skipped time to an instant whose wall clock shows something else.)
func firstInstant(day time.Time, h, min int, loc *time.Location) time.Time {
	t := time.Date(day.Year(), day.Month(), day.Day(), h, min, 0, 0, loc)
	if t.Hour() != h || t.Minute() != min { // in a gap: the wall clock never shows h:min
		start, end := t.ZoneBounds()
		if t.Hour()*60+t.Minute() < h*60+min {
			return end // t lies before the jump
		}
		return start
	}
	_, before := t.Add(-3 * time.Hour).Zone()
	_, after := t.Zone()
	if shift := time.Duration(before-after) * time.Second; shift > 0 {
		if e := t.Add(-shift); e.Hour() == h && e.Minute() == min && e.Day() == t.Day() {
			return e
		}
	}
	return t
}
