// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
)

func mustWindow(t *testing.T, c config.Window) *Window {
	t.Helper()
	w, err := ParseWindow(c)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWindowOpenAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		berlin, _ := time.LoadLocation("Europe/Berlin")
		nightly := mustWindow(t, config.Window{Name: "n", Start: "0 2 * * *", Duration: 2 * time.Hour,
			TimeZone: "Europe/Berlin", Exclude: []string{"2026-12-24"}})
		tests := []struct {
			at   time.Time
			open bool
		}{
			{time.Date(2026, 11, 26, 1, 59, 0, 0, berlin), false},
			{time.Date(2026, 11, 26, 2, 0, 0, 0, berlin), true},
			{time.Date(2026, 11, 26, 3, 59, 59, 0, berlin), true},
			{time.Date(2026, 11, 26, 4, 0, 0, 0, berlin), false},
			{time.Date(2026, 12, 24, 2, 30, 0, 0, berlin), false}, // excluded date
			{time.Date(2026, 12, 25, 2, 30, 0, 0, berlin), true},
			// 29 March 2026: clocks go 02:00 → 03:00 in Berlin; cron fires at 03:00 local.
			{time.Date(2026, 3, 29, 3, 30, 0, 0, berlin), true},
			// 25 October 2026: 02:00–03:00 happens twice; the window still closes two hours after it opens.
			{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true},
			{time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC), false},
		}
		for _, tt := range tests {
			if got, _ := nightly.OpenAt(tt.at); got != tt.open {
				t.Errorf("OpenAt(%v) = %v, want %v", tt.at, got, tt.open)
			}
		}
	})
}

func TestWindowFits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := mustWindow(t, config.Window{Name: "w", Start: "0 2 * * *", Duration: time.Hour, TimeZone: "UTC"})
		at := time.Date(2026, 1, 1, 2, 30, 0, 0, time.UTC)
		if !w.Fits(at, 29*time.Minute) {
			t.Errorf("Fits(02:30, 29m) = false, want true")
		}
		if w.Fits(at, 31*time.Minute) {
			t.Errorf("Fits(02:30, 31m) = true, want false: the step would outlast the window")
		}
	})
}

func TestWindowNextOpeningSkipsExcluded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := mustWindow(t, config.Window{Name: "w", Start: "0 2 * * *", Duration: time.Hour, TimeZone: "UTC",
			Exclude: []string{"2026-01-02"}})
		got := w.NextOpening(time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC))
		if want := time.Date(2026, 1, 3, 2, 0, 0, 0, time.UTC); !got.Equal(want) {
			t.Errorf("NextOpening = %v, want %v", got, want)
		}
	})
}

// oracleOpen decides, minute by minute in absolute time and without the
// code under test, whether a daily window opening at hh:mm local time for
// dur is open at t. An opening is the first instant whose local wall clock
// shows hh:mm, or, on a day the clock jumps over hh:mm, the first instant
// after the jump.
func oracleOpen(t time.Time, hh, mm int, dur time.Duration, loc *time.Location, exclude map[string]bool) bool {
	for u := t.Truncate(time.Minute).Add(-dur - 3*time.Hour); !u.After(t); u = u.Add(time.Minute) {
		lu, lp := u.In(loc), u.Add(-time.Minute).In(loc)
		target := time.Date(lu.Year(), lu.Month(), lu.Day(), hh, mm, 0, 0, time.UTC)
		wall := time.Date(lu.Year(), lu.Month(), lu.Day(), lu.Hour(), lu.Minute(), 0, 0, time.UTC)
		prevWall := time.Date(lp.Year(), lp.Month(), lp.Day(), lp.Hour(), lp.Minute(), 0, 0, time.UTC)
		first := wall.Equal(target) && !prevWall.Equal(target) // clock reaches hh:mm …
		for v := u.Add(-3 * time.Hour); first && v.Before(u); v = v.Add(time.Minute) {
			lv := v.In(loc)
			if lv.Day() == lu.Day() && lv.Hour() == hh && lv.Minute() == mm {
				first = false // … but not for the first time that day (fall-back repeats it)
			}
		}
		jumped := prevWall.Before(target) && wall.After(target) && prevWall.Add(time.Minute).Before(wall)
		if (first || jumped) && !exclude[lu.Format(time.DateOnly)] && !t.Before(u) && t.Before(u.Add(dur)) {
			return true
		}
	}
	return false
}

// TestWindowMatchesOracleAcrossDST checks random daily windows in zones
// with DST (including Lord Howe's half-hour shift and the southern
// hemisphere) at random instants around their transitions against the
// independent oracle above.
func TestWindowMatchesOracleAcrossDST(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		zones := []string{"Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "America/Santiago", "UTC"}
		// Instants near 2026's transitions in those zones, plus ordinary days.
		anchors := []time.Time{
			time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), // EU
			time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC), // US
			time.Date(2026, 4, 4, 15, 0, 0, 0, time.UTC), time.Date(2026, 10, 3, 15, 0, 0, 0, time.UTC), // AU
			time.Date(2026, 4, 5, 3, 0, 0, 0, time.UTC), time.Date(2026, 9, 6, 4, 0, 0, 0, time.UTC), // CL
			time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC),
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 1000; i++ {
			zone := zones[rng.IntN(len(zones))]
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			hh, mm := rng.IntN(24), []int{0, 15, 30, 45}[rng.IntN(4)]
			if rng.IntN(2) == 0 {
				hh = 1 + rng.IntN(3) // the hours DST transitions touch
			}
			dur := time.Duration(15+rng.IntN(240)) * time.Minute
			anchor := anchors[rng.IntN(len(anchors))]
			var exclude []string
			exmap := map[string]bool{}
			if rng.IntN(4) == 0 {
				d := anchor.In(loc).Format(time.DateOnly)
				exclude, exmap[d] = []string{d}, true
			}
			w := mustWindow(t, config.Window{Name: "w", Start: fmt.Sprintf("%d %d * * *", mm, hh), Duration: dur, TimeZone: zone, Exclude: exclude})
			for k := 0; k < 20; k++ {
				at := anchor.Add(time.Duration(rng.IntN(48*60)-24*60) * time.Minute)
				got, _ := w.OpenAt(at)
				if want := oracleOpen(at, hh, mm, dur, loc, exmap); got != want {
					t.Errorf("window %02d:%02d+%s in %s (exclude %v): OpenAt(%s = %s local) = %v, oracle says %v",
						hh, mm, dur, zone, exclude, at.Format(time.RFC3339), at.In(loc).Format("2006-01-02 15:04 MST"), got, want)
				}
			}
		}
	})
}
