// SPDX-License-Identifier: Apache-2.0

package board

import (
	"maps"
	"slices"
)

// State is the gateway condition the LEDs show. The names are stable.
type State string

// The gateway states with a blink code, in order of the README table.
const (
	StateIdle             State = "idle"              // healthy, nothing to do
	StateUpdateAvailable  State = "update-available"  // a verified update is staged, waiting for its window
	StateAwaitingApproval State = "awaiting-approval" // a job needs approval: a long press gives it
	StateDownloading      State = "downloading"       // fetching and verifying an update
	StatePushing          State = "pushing"           // writing to a field device: do not power off
	StateSuccess          State = "success"           // the last job committed on every device
	StateFailure          State = "failure"           // the last job failed or rolled back
	StateTrustProblem     State = "trust-problem"     // clock implausible or metadata untrusted/expired: no installs
	StateStopped          State = "stopped"           // emergency stop (very long press): nothing is pushed
)

// The LED names PatternsFor drives. A board without one of them simply does
// not show that half of the code.
const (
	LEDStatus = "status"
	LEDFault  = "fault"
)

// ButtonApprove is the button a virtual board has when none is configured.
const ButtonApprove = "approve"

// codes is the blink-code table; doc.go renders it for people and
// TestPatternsForDistinct keeps every state distinguishable.
var codes = map[State][2]Pattern{ // {status, fault}
	StateIdle:             {Heartbeat, Off},
	StateUpdateAvailable:  {SlowBlink, Off},
	StateAwaitingApproval: {DoubleBlink, Off},
	StateDownloading:      {TripleBlink, Off},
	StatePushing:          {FastBlink, Off},
	StateSuccess:          {On, Off},
	StateFailure:          {Heartbeat, On},
	StateTrustProblem:     {Heartbeat, SlowBlink},
	StateStopped:          {Heartbeat, FastBlink},
}

// States returns every state with a blink code, in a stable order.
func States() []State {
	return []State{StateIdle, StateUpdateAvailable, StateAwaitingApproval, StateDownloading,
		StatePushing, StateSuccess, StateFailure, StateTrustProblem, StateStopped}
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { _, ok := codes[s]; return ok }

// PatternsFor returns the patterns of the "status" and "fault" LEDs that show
// s. An unknown state shows as StateFailure: the gateway is in a condition
// the board cannot name, which a field engineer should look at. The returned
// map is the caller's.
func PatternsFor(s State) map[string]Pattern {
	c, ok := codes[s]
	if !ok {
		c = codes[StateFailure]
	}
	return map[string]Pattern{LEDStatus: c[0], LEDFault: c[1]}
}

// Show sets the LEDs to the blink code of s (see PatternsFor). LEDs the board
// does not have are skipped; other LEDs keep their pattern.
func (b *Board) Show(s State) {
	p := PatternsFor(s)
	for _, name := range slices.Sorted(maps.Keys(p)) {
		if _, ok := b.leds[name]; ok {
			b.SetLED(name, p[name])
		}
	}
}

// ShowChecks shows a page of two checks instead of a state: the status LED
// lit steadily when good is true, the fault LED lit steadily when bad is.
func (b *Board) ShowChecks(good, bad bool) {
	p := map[bool]Pattern{true: On, false: Off}
	for name, lit := range map[string]bool{LEDStatus: good, LEDFault: bad} {
		if _, ok := b.leds[name]; ok {
			b.SetLED(name, p[lit])
		}
	}
}
