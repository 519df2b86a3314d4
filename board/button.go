// SPDX-License-Identifier: Apache-2.0

package board

import (
	"context"
	"time"
)

// edgeWait bounds a wait for an edge, so a driver whose Halt does not
// interrupt WaitForEdge still notices cancellation.
const edgeWait = time.Second

// watch debounces one button until ctx is done and emits its presses.
//
// A level counts once the pin has read it for cfg.Debounce. A press is
// reported when the button is released, classified by how long it was held:
// from the start of the pressed level's stable run to the start of the
// released level's, so contact bounce neither shortens nor stretches it. A
// very long press is reported as soon as the threshold is reached, because an
// emergency stop must not wait for the hand to let go. While a press is held
// past LongPress (and until it becomes very long) every LED is lit, so the
// engineer knows that letting go now gives a long press. The button is armed
// only after it has been seen released: a button held (or stuck) at start-up
// yields nothing.
//
// With edge detection the loop sleeps in WaitForEdge until something happens
// or a deadline (end of debounce, long or very long press) falls due, so an
// idle gateway does not wake up to poll; without it, the pin is read every
// Debounce/3. A driver whose WaitForEdge returns at once without an edge is
// demoted to polling rather than spun on.
func (b *Board) watch(ctx context.Context, btn *button) {
	debounce, veryLong := b.cfg.Debounce, b.cfg.VeryLongPress
	poll := max(debounce/3, time.Millisecond)
	var (
		raw          = btn.active()
		since        = time.Now() // raw has read the same since
		stable       bool         // debounced level: pressed
		armed        bool         // a debounced release was seen since start
		pressedAt    time.Time
		veryLongSent bool
		longShown    bool // the LEDs acknowledge that LongPress is reached
	)
	showLong := func(on bool) {
		if on != longShown {
			longShown = on
			b.setHeld(btn.name, on)
		}
	}
	defer showLong(false)
	spins := 0 // WaitForEdge calls in a row that returned at once without an edge
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for ctx.Err() == nil {
		now := time.Now()
		if r := btn.active(); r != raw {
			raw, since = r, now
		}
		settled := now.Sub(since) >= debounce
		if settled && raw != stable {
			stable = raw
			switch {
			case !armed:
			case stable:
				pressedAt, veryLongSent = since, false
			case !veryLongSent:
				held := since.Sub(pressedAt)
				showLong(false)
				b.emit(Event{Button: btn.name, Press: b.classify(held), Held: held})
			}
		}
		if settled && !stable && !armed {
			armed = true
		}
		if armed && stable && !veryLongSent && now.Sub(pressedAt) >= b.cfg.LongPress {
			showLong(true)
		}
		if armed && stable && !veryLongSent && now.Sub(pressedAt) >= veryLong {
			veryLongSent = true
			showLong(false)
			b.emit(Event{Button: btn.name, Press: VeryLongPress, Held: now.Sub(pressedAt)})
		}

		if !btn.edges {
			timer.Reset(poll)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
			continue
		}
		wait := edgeWait
		if !settled {
			wait = since.Add(debounce).Sub(now)
		} else if armed && stable && !veryLongSent {
			next := pressedAt.Add(veryLong)
			if !longShown {
				next = pressedAt.Add(b.cfg.LongPress)
			}
			wait = min(wait, next.Sub(now))
		}
		wait = max(wait, time.Millisecond)
		start := time.Now()
		if !btn.pin.WaitForEdge(wait) && time.Since(start) < wait/2 && ctx.Err() == nil {
			// Neither an edge nor a timeout: the driver cannot wait here.
			// Poll rather than spin.
			if spins++; spins >= 3 {
				b.log.Warn("button edge detection does not work, polling it", "button", btn.name)
				btn.edges = false
			}
		} else {
			spins = 0
		}
	}
}
