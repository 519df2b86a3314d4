// SPDX-License-Identifier: Apache-2.0

package board

import (
	"fmt"
	"slices"
	"time"
)

// Pattern names how an LED is driven. The names are stable: they appear in
// `fieldgatectl status`, MQTT status and the README's blink-code table.
type Pattern string

// The LED patterns. Periods are chosen so that each pattern is told apart by
// counting flashes, not by judging a frequency: slow and fast blink differ
// eightfold, and the flash patterns repeat every 2 s.
const (
	Off         Pattern = "off"          // dark
	On          Pattern = "on"           // lit steadily
	SlowBlink   Pattern = "slow-blink"   // 1 s on, 1 s off
	FastBlink   Pattern = "fast-blink"   // 125 ms on, 125 ms off (4 Hz)
	DoubleBlink Pattern = "double-blink" // two 150 ms flashes every 2 s
	TripleBlink Pattern = "triple-blink" // three 150 ms flashes every 2 s
	Heartbeat   Pattern = "heartbeat"    // one 100 ms flash every 2 s
)

// steps lists, for each blinking pattern, how long the LED stays lit, then
// dark, then lit… The sequence starts lit and repeats.
var steps = map[Pattern][]time.Duration{
	SlowBlink:   {time.Second, time.Second},
	FastBlink:   {125 * time.Millisecond, 125 * time.Millisecond},
	DoubleBlink: {150 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond, 1550 * time.Millisecond},
	TripleBlink: {150 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond, 1250 * time.Millisecond},
	Heartbeat:   {100 * time.Millisecond, 1900 * time.Millisecond},
}

// Patterns returns every known pattern, in a stable order.
func Patterns() []Pattern {
	return []Pattern{Off, On, SlowBlink, FastBlink, DoubleBlink, TripleBlink, Heartbeat}
}

// Valid reports whether p is a known pattern.
func (p Pattern) Valid() bool { return slices.Contains(Patterns(), p) }

// ParsePattern returns the pattern named s, or an error naming s.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern(s)
	if !p.Valid() {
		return "", fmt.Errorf("parse LED pattern %q: unknown (known: %v)", s, Patterns())
	}
	return p, nil
}

// lit reports whether pattern p, started at elapsed 0, is lit after elapsed,
// and how long it stays in that state (0: forever).
func (p Pattern) lit(elapsed time.Duration) (on bool, remaining time.Duration) {
	switch p {
	case On:
		return true, 0
	case Off, "":
		return false, 0
	}
	st, ok := steps[p]
	if !ok {
		return false, 0
	}
	var period time.Duration
	for _, d := range st {
		period += d
	}
	if elapsed < 0 {
		elapsed = 0
	}
	t := elapsed % period
	for i, d := range st {
		if t < d {
			return i%2 == 0, d - t
		}
		t -= d
	}
	return false, period // unreachable: t < period
}
