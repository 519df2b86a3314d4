// SPDX-License-Identifier: Apache-2.0

package board

import (
	"context"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// level returns the pin level that makes the LED lit (on) or dark.
func (l *led) level(on bool) gpio.Level { return gpio.Level(on != l.activeLow) }

// driveLEDs writes every LED's pattern to its pin until ctx is done, then
// turns the LEDs off. It wakes only when some LED changes (or SetLED is
// called), so steady patterns cost nothing.
func (b *Board) driveLEDs(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var tc <-chan time.Time
		if next := b.refreshLEDs(time.Now()); next > 0 {
			timer.Reset(next)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			b.mu.Lock()
			for _, l := range b.leds {
				b.write(l, false)
			}
			b.mu.Unlock()
			return
		case <-b.wake:
		case <-tc:
		}
	}
}

// refreshLEDs sets every LED to its level at now and returns how long until
// the next change (0: none is due).
func (b *Board) refreshLEDs(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next time.Duration
	mOn, mRem, marking := b.marker.lit(now)
	for _, l := range b.leds {
		on, rem := l.pattern.lit(now.Sub(l.since))
		switch {
		case len(b.held) > 0:
			on, rem = true, 0
		case marking:
			on, rem = mOn, mRem
		}
		b.write(l, on)
		if l.pin == nil {
			continue // a virtual LED has no level to keep up: LEDs() reports its pattern
		}
		if rem > 0 && (next == 0 || rem < next) {
			next = rem
		}
	}
	return next
}

// write sets l lit or dark if it is not already; b.mu is held. A failing pin
// is logged once until it works again.
func (b *Board) write(l *led, on bool) {
	if l.pin == nil || (l.out != nil && *l.out == on && !l.failing) {
		return
	}
	if err := l.pin.Out(l.level(on)); err != nil {
		if !l.failing {
			b.log.Error("set LED", "led", l.name, "err", err)
		}
		l.failing = true
		return
	}
	l.failing = false
	l.out = &on
}

// markerFlash is one flash of a page marker, and the gap after it.
const markerFlash = 150 * time.Millisecond

// marker is n flashes of every LED together, from start.
type marker struct {
	start time.Time
	n     int
}

// lit reports whether the marker lights the LEDs at now and how long that
// lasts; active is false once the marker is over (or never was).
func (m marker) lit(now time.Time) (on bool, rem time.Duration, active bool) {
	el := now.Sub(m.start)
	if m.n <= 0 || el < 0 || el >= time.Duration(2*m.n)*markerFlash {
		return false, 0, false
	}
	slot := el / markerFlash
	return slot%2 == 0, markerFlash - el%markerFlash, true
}

// FlashAll flashes every LED n times together (150 ms lit, 150 ms dark) over
// whatever they show, then lets them show their patterns again: the number
// of the status page just opened. A held button's acknowledgement wins.
func (b *Board) FlashAll(n int) {
	b.mu.Lock()
	b.marker = marker{start: time.Now(), n: n}
	b.mu.Unlock()
	b.poke()
}
