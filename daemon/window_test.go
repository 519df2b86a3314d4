package daemon

import (
	"testing"
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
}

func TestWindowFits(t *testing.T) {
	w := mustWindow(t, config.Window{Name: "w", Start: "0 2 * * *", Duration: time.Hour, TimeZone: "UTC"})
	at := time.Date(2026, 1, 1, 2, 30, 0, 0, time.UTC)
	if !w.Fits(at, 29*time.Minute) {
		t.Errorf("Fits(02:30, 29m) = false, want true")
	}
	if w.Fits(at, 31*time.Minute) {
		t.Errorf("Fits(02:30, 31m) = true, want false: the step would outlast the window")
	}
}

func TestWindowNextOpeningSkipsExcluded(t *testing.T) {
	w := mustWindow(t, config.Window{Name: "w", Start: "0 2 * * *", Duration: time.Hour, TimeZone: "UTC",
		Exclude: []string{"2026-01-02"}})
	got := w.NextOpening(time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 1, 3, 2, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("NextOpening = %v, want %v", got, want)
	}
}
