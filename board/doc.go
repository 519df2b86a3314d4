// SPDX-License-Identifier: Apache-2.0

// Package board is the gateway's local human interface: debounced button
// presses in, LED blink codes out. It is the only package that imports
// periph.io.
//
// Open looks GPIO lines up through periph's GPIO character-device driver
// (gpioioctl: the kernel line name, or gpiochipN:OFFSET) and configures them; with no pin configured it returns a
// virtual board that touches no hardware, whose buttons are pressed with
// Board.Press (`fieldgatectl board press NAME --hold 3s`) and whose LEDs are
// read with Board.LEDs (`fieldgatectl status`). Board.Run owns the
// goroutines that read buttons and blink LEDs; it returns nil when its
// context is cancelled, after turning the LEDs off.
//
// # Buttons
//
// A button's level counts after it has read the same for Config.Debounce
// (30 ms). A press is classified by how long it was held:
//
//	short      < 3 s    reported on release   next page of the status display
//	long       3–10 s   reported on release   local approval / update now
//	very long  ≥ 10 s   reported at 10 s,     emergency stop
//	                    while still held
//
// While a press is held past 3 s, every LED is lit steadily until it is
// released (or reaches 10 s), so the engineer knows when to let go.
// A button that is already pressed when Run starts (held, or stuck) is
// ignored until it has been released.
//
// # Blink codes
//
// Patterns (each flash pattern repeats every 2 s):
//
//	off           dark
//	on            lit steadily
//	heartbeat     one short flash (100 ms) every 2 s
//	slow-blink    1 s on, 1 s off
//	fast-blink    4 flashes a second
//	double-blink  two short flashes (150 ms) every 2 s
//	triple-blink  three short flashes (150 ms) every 2 s
//
// The status display has pages (the daemon decides what they mean): Show
// puts a gateway state on the LEDs, ShowChecks two yes/no checks (status
// lit = good, fault lit = bad), and FlashAll(n) flashes every LED n times
// together over either, the number of a page as it opens.
//
// PatternsFor maps the gateway state to the "status" and "fault" LEDs. A
// heartbeat on the status LED means the daemon is alive; the fault LED is
// dark unless something needs a person.
//
//	state              status LED     fault LED     meaning
//	idle               heartbeat      off           healthy, nothing to do
//	update-available   slow-blink     off           a verified update waits for its window
//	awaiting-approval  double-blink   off           a job needs approval: hold the button 3 s
//	downloading        triple-blink   off           fetching and verifying an update
//	pushing            fast-blink     off           writing to a field device: do not power off
//	success            on             off           the last job committed on every device
//	failure            heartbeat      on            the last job failed or was rolled back
//	trust-problem      heartbeat      slow-blink    clock implausible or metadata untrusted: no installs
//	stopped            heartbeat      fast-blink    emergency stop: nothing is pushed until cleared
//	not running        off            off           fieldgated is not running (or the board is unused)
package board
