// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Warnings returns what is valid but almost certainly not meant, each
// naming its key path: a maintenance window whose cron expression matches
// no calendar day (such as "0 0 30 2 *", February 30th) never opens, so
// its devices are never updated. Windows with an invalid start are
// Validate's business and are skipped here.
func (c *Config) Warnings() []string {
	var out []string
	for i, w := range c.Windows {
		sched, err := cron.ParseStandard(w.Start)
		if err != nil {
			continue
		}
		spec, ok := sched.(*cron.SpecSchedule)
		if !ok {
			continue
		}
		if !matchesSomeDay(spec) {
			out = append(out, fmt.Sprintf("windows[%d].start: %q matches no calendar day: window %q never opens", i, w.Start, w.Name))
		}
	}
	return out
}

// matchesSomeDay reports whether spec's month, day-of-month and day-of-week
// fields match at least one calendar day. Every hour and minute a spec can
// name exists on every day (a start in a DST gap opens after the gap, see
// daemon.Window), so the day fields alone decide whether a window ever
// opens. The day rules are cron's, as daemon.Window applies them: when
// either day field is *, both must match; when both are restricted, either
// may. 28 years hold every combination of weekday, leap year and date.
func matchesSomeDay(spec *cron.SpecSchedule) bool {
	const star = 1 << 63
	day := time.Date(2000, time.January, 1, 12, 0, 0, 0, time.UTC)
	end := day.AddDate(28, 0, 0)
	for ; day.Before(end); day = day.AddDate(0, 0, 1) {
		if spec.Month&(1<<uint(day.Month())) == 0 {
			continue
		}
		dom := spec.Dom&(1<<uint(day.Day())) != 0
		dow := spec.Dow&(1<<uint(day.Weekday())) != 0
		if spec.Dom&star != 0 || spec.Dow&star != 0 {
			if dom && dow {
				return true
			}
		} else if dom || dow {
			return true
		}
	}
	return false
}
