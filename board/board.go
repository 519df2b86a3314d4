// SPDX-License-Identifier: Apache-2.0

package board

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"
)

// Config names the buttons and LEDs of a board. The zero Config is a virtual
// board with one button ("approve") and two LEDs ("status", "fault").
type Config struct {
	Buttons map[string]Pin // name -> pin, e.g. "approve": {Name: "GPIO17", ActiveLow: true}
	LEDs    map[string]Pin // name -> pin, e.g. "status": {Name: "GPIO27"}

	// Debounce is how long a button must read the same level before the
	// level counts; 0 means 30 ms.
	Debounce time.Duration
	// LongPress and VeryLongPress are the hold thresholds (inclusive); 0
	// means 3 s and 10 s.
	LongPress, VeryLongPress time.Duration
}

// Pin is a GPIO line by its kernel line name ("GPIO17" on a Raspberry Pi;
// `gpioinfo` lists them) or, for an unnamed line, "gpiochipN:OFFSET". ActiveLow means the button or LED is active when
// the line is low: a button wired to ground with a pull-up, or an LED sunk by
// the pin.
type Pin struct {
	Name      string
	ActiveLow bool
}

// Defaults for a zero Config.
const (
	DefaultDebounce      = 30 * time.Millisecond
	DefaultLongPress     = 3 * time.Second
	DefaultVeryLongPress = 10 * time.Second
)

// eventQueue is how many button events wait for a reader before new ones
// are dropped (and logged): a slow consumer never stalls the debounce loop.
const eventQueue = 16

// Press classifies a button press by how long it was held.
type Press int

// The press kinds. What they mean is the daemon's business; the intended use
// is: short = cycle the status display, long = local approval / update now,
// very long = emergency stop.
const (
	ShortPress    Press = iota // released before LongPress
	LongPress                  // released after LongPress, before VeryLongPress
	VeryLongPress              // held for VeryLongPress; reported while still held
)

var pressNames = [...]string{"short", "long", "very-long"}

// String returns "short", "long" or "very-long".
func (p Press) String() string {
	if p < 0 || int(p) >= len(pressNames) {
		return fmt.Sprintf("press(%d)", int(p))
	}
	return pressNames[p]
}

// MarshalText encodes p as its String, for JSON status and audit records.
func (p Press) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Event is one debounced button press.
type Event struct {
	Button string
	Press  Press
	Held   time.Duration
}

// Board reads buttons and drives LEDs. Its methods are safe for concurrent
// use; Run must be called once for buttons to be read and LEDs to blink.
type Board struct {
	cfg     Config
	log     *slog.Logger
	virtual bool
	buttons map[string]*button
	leds    map[string]*led
	events  chan Event
	wake    chan struct{} // SetLED pokes the LED driver

	mu      sync.Mutex      // guards leds' pattern state, held, marker and running
	held    map[string]bool // buttons held past LongPress: LEDs acknowledge
	marker  marker          // a page number flashing over the patterns
	running bool
}

type button struct {
	name      string
	pin       gpio.PinIO // nil on a virtual board
	activeLow bool
	edges     bool // the pin reports edges; otherwise it is polled
}

// active reports whether the button reads as pressed.
func (b *button) active() bool { return (b.pin.Read() == gpio.High) != b.activeLow }

type led struct {
	name      string
	pin       gpio.PinIO // nil on a virtual board
	activeLow bool

	pattern Pattern
	since   time.Time // when pattern was set: blinking starts lit from here
	out     *bool     // last level written, nil before the first write
	failing bool      // the last write failed (logged once)
}

// Open returns the board described by cfg. When cfg configures no pin at all
// it returns a virtual board without touching any hardware; otherwise it
// initialises periph's host drivers, looks every pin up by name and configures
// it (buttons as inputs with a pull towards "released" and edge detection
// where the driver has it, LEDs as outputs, dark).
func Open(cfg Config, log *slog.Logger) (*Board, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open board: %w", err)
	}
	if len(cfg.Buttons)+len(cfg.LEDs) == 0 {
		return newBoard(cfg, nil, log)
	}
	// Only the GPIO character-device driver (/dev/gpiochip*) is linked:
	// it is the kernel's supported interface and the only one the hardened
	// unit lets through (DeviceAllow=char-gpiochip). host.Init would add
	// sysfs and the memory-mapped SoC drivers, which need /dev/mem or
	// /dev/gpiomem and about 0.6 MiB of binary.
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("open board: init periph GPIO driver: %w", err)
	}
	pins := make(map[string]gpio.PinIO)
	for kind, m := range map[string]map[string]Pin{"button": cfg.Buttons, "LED": cfg.LEDs} {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			p := lookupPin(m[name].Name)
			if p == nil {
				return nil, fmt.Errorf("open board: %s %q: no GPIO line named %q (see gpioinfo; unnamed lines are gpiochipN:OFFSET)", kind, name, m[name].Name)
			}
			pins[m[name].Name] = p
		}
	}
	return newBoard(cfg, pins, log)
}

// lookupPin finds a GPIO line by its kernel line name (as gpioinfo lists
// it) or, for lines the device tree leaves unnamed, by "gpiochipN:OFFSET".
func lookupPin(name string) gpio.PinIO {
	if p := gpioreg.ByName(name); p != nil {
		return p
	}
	chip, offset, ok := strings.Cut(name, ":")
	n, err := strconv.Atoi(offset)
	if !ok || err != nil {
		return nil
	}
	for _, c := range gpioioctl.Chips {
		if c.Name() == chip {
			if l := c.ByNumber(n); l != nil {
				return l
			}
		}
	}
	return nil
}

// withDefaults fills zero durations and checks the configuration.
func (c Config) withDefaults() (Config, error) {
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.LongPress == 0 {
		c.LongPress = DefaultLongPress
	}
	if c.VeryLongPress == 0 {
		c.VeryLongPress = DefaultVeryLongPress
	}
	var errs []error
	if c.Debounce < 0 || c.Debounce >= c.LongPress {
		errs = append(errs, fmt.Errorf("debounce %v: want > 0 and < long press %v", c.Debounce, c.LongPress))
	}
	if c.LongPress >= c.VeryLongPress {
		errs = append(errs, fmt.Errorf("long press %v: want < very long press %v", c.LongPress, c.VeryLongPress))
	}
	used := make(map[string]string) // pin name -> its user
	for kind, m := range map[string]map[string]Pin{"button": c.Buttons, "LED": c.LEDs} {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			who := fmt.Sprintf("%s %q", kind, name)
			pin := m[name].Name
			switch {
			case name == "":
				errs = append(errs, fmt.Errorf("%s: empty name", who))
			case pin == "":
				errs = append(errs, fmt.Errorf("%s: pin name is required", who))
			case used[pin] != "":
				// Sorted for a stable message whichever map is walked first.
				a, b := used[pin], who
				if b < a {
					a, b = b, a
				}
				errs = append(errs, fmt.Errorf("%s and %s both use pin %q", a, b, pin))
			default:
				used[pin] = who
			}
		}
	}
	return c, errors.Join(errs...)
}

// newBoard builds a board on resolved pins (keyed by pin name). With pins ==
// nil it builds a virtual board; tests pass gpiotest pins.
func newBoard(cfg Config, pins map[string]gpio.PinIO, log *slog.Logger) (*Board, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open board: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Board{
		cfg:     cfg,
		log:     log,
		virtual: pins == nil,
		buttons: make(map[string]*button),
		leds:    make(map[string]*led),
		events:  make(chan Event, eventQueue),
		wake:    make(chan struct{}, 1),
		held:    make(map[string]bool),
	}
	if b.virtual {
		if len(cfg.Buttons)+len(cfg.LEDs) == 0 {
			cfg.Buttons = map[string]Pin{ButtonApprove: {}}
			cfg.LEDs = map[string]Pin{LEDStatus: {}, LEDFault: {}}
		}
		for name := range cfg.Buttons {
			b.buttons[name] = &button{name: name}
		}
		now := time.Now()
		for name := range cfg.LEDs {
			b.leds[name] = &led{name: name, pattern: Off, since: now}
		}
		log.Info("virtual board", "buttons", slices.Sorted(maps.Keys(b.buttons)), "leds", slices.Sorted(maps.Keys(b.leds)))
		return b, nil
	}

	for _, name := range slices.Sorted(maps.Keys(cfg.Buttons)) {
		pc := cfg.Buttons[name]
		p := pins[pc.Name]
		if p == nil {
			return nil, fmt.Errorf("open board: button %q: no GPIO named %q", name, pc.Name)
		}
		btn := &button{name: name, pin: p, activeLow: pc.ActiveLow}
		if err := btn.configure(); err != nil {
			return nil, fmt.Errorf("open board: button %q: %w", name, err)
		}
		if !btn.edges {
			log.Info("button has no edge detection, polling it", "button", name, "pin", pc.Name)
		}
		b.buttons[name] = btn
	}
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(cfg.LEDs)) {
		pc := cfg.LEDs[name]
		p := pins[pc.Name]
		if p == nil {
			return nil, fmt.Errorf("open board: LED %q: no GPIO named %q", name, pc.Name)
		}
		l := &led{name: name, pin: p, activeLow: pc.ActiveLow, pattern: Off, since: now}
		if err := p.Out(l.level(false)); err != nil {
			return nil, fmt.Errorf("open board: LED %q: set %s as output: %w", name, pc.Name, err)
		}
		off := false
		l.out = &off
		b.leds[name] = l
	}
	log.Info("board open", "buttons", slices.Sorted(maps.Keys(b.buttons)), "leds", slices.Sorted(maps.Keys(b.leds)))
	return b, nil
}

// configure sets the button's pin as an input pulled towards "released",
// with edge detection when the driver offers it. Drivers that cannot set a
// pull (external resistors) or detect edges are accepted, in that order of
// preference.
func (btn *button) configure() error {
	pull := gpio.PullDown
	if btn.activeLow {
		pull = gpio.PullUp
	}
	var errs []error
	for _, try := range []struct {
		pull gpio.Pull
		edge gpio.Edge
	}{{pull, gpio.BothEdges}, {gpio.PullNoChange, gpio.BothEdges}, {pull, gpio.NoEdge}, {gpio.PullNoChange, gpio.NoEdge}} {
		err := btn.pin.In(try.pull, try.edge)
		if err == nil {
			btn.edges = try.edge != gpio.NoEdge
			return nil
		}
		errs = append(errs, fmt.Errorf("in(%s, %s): %w", try.pull, try.edge, err))
	}
	return fmt.Errorf("set %s as input: %w", btn.pin.Name(), errors.Join(errs...))
}

// Virtual reports whether the board is virtual (no GPIO configured).
func (b *Board) Virtual() bool { return b.virtual }

// Buttons returns the names of the board's buttons, sorted.
func (b *Board) Buttons() []string { return slices.Sorted(maps.Keys(b.buttons)) }

// Events returns the channel of button events. It is never closed; it holds
// up to 16 events, and newer ones are dropped (and logged) while it is full.
func (b *Board) Events() <-chan Event { return b.events }

// Run reads the buttons and drives the LEDs until ctx is cancelled, then
// turns the LEDs off and returns nil. It returns an error only when called
// twice.
func (b *Board) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return errors.New("run board: already running")
	}
	b.running = true
	b.mu.Unlock()

	var wg sync.WaitGroup
	if !b.virtual {
		for _, btn := range b.buttons {
			wg.Go(func() { b.watch(ctx, btn) })
		}
		// Halt interrupts a WaitForEdge in periph's GPIO drivers, so
		// cancellation does not wait for an edge timeout.
		stop := context.AfterFunc(ctx, func() {
			for _, btn := range b.buttons {
				_ = btn.pin.Halt()
			}
		})
		defer stop()
	}
	b.driveLEDs(ctx)
	wg.Wait()
	return nil
}

// SetLED sets the pattern of the LED called name; blinking starts lit, now.
// Unknown LEDs and patterns are logged and ignored, so a board with fewer
// LEDs than the daemon's codes expect still works.
func (b *Board) SetLED(name string, p Pattern) {
	if !p.Valid() {
		b.log.Warn("unknown LED pattern ignored", "led", name, "pattern", p)
		return
	}
	b.mu.Lock()
	l, ok := b.leds[name]
	if ok && l.pattern != p {
		l.pattern, l.since = p, time.Now()
	}
	b.mu.Unlock()
	if !ok {
		b.log.Debug("no such LED, pattern ignored", "led", name, "pattern", p)
		return
	}
	b.poke()
}

// poke wakes the LED driver.
func (b *Board) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// setHeld records whether button name is held past LongPress.
func (b *Board) setHeld(name string, held bool) {
	b.mu.Lock()
	if held {
		b.held[name] = true
	} else {
		delete(b.held, name)
	}
	b.mu.Unlock()
	b.poke()
}

// LEDs returns the pattern set for every LED, for status displays (not the
// brief acknowledgement of a long press). The map is the caller's.
func (b *Board) LEDs() map[string]Pattern {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]Pattern, len(b.leds))
	for name, l := range b.leds {
		m[name] = l.pattern
	}
	return m
}

// ErrNotVirtual is returned by Press on a board with real buttons: a press
// there means someone is physically at the gateway, and software must not
// be able to fake that.
var ErrNotVirtual = errors.New("not a virtual board")

// Press injects a press of the button called name, held for hold, into a
// virtual board's events, as if it had been pressed and released now. It
// returns an error for a real board, an unknown button, a negative hold or a
// full event queue.
func (b *Board) Press(name string, hold time.Duration) error {
	if !b.virtual {
		return fmt.Errorf("press %s: %w", name, ErrNotVirtual)
	}
	if _, ok := b.buttons[name]; !ok {
		return fmt.Errorf("press %s: no such button (have %v)", name, b.Buttons())
	}
	if hold < 0 {
		return fmt.Errorf("press %s: negative hold %v", name, hold)
	}
	ev := Event{Button: name, Press: b.classify(hold), Held: hold}
	select {
	case b.events <- ev:
		b.log.Info("button pressed (virtual)", "button", name, "press", ev.Press, "held", hold)
		return nil
	default:
		return fmt.Errorf("press %s: event queue full", name)
	}
}

// classify maps a hold time to a press kind; thresholds are inclusive.
func (b *Board) classify(held time.Duration) Press {
	switch {
	case held >= b.cfg.VeryLongPress:
		return VeryLongPress
	case held >= b.cfg.LongPress:
		return LongPress
	}
	return ShortPress
}

// emit queues ev without blocking.
func (b *Board) emit(ev Event) {
	select {
	case b.events <- ev:
		b.log.Info("button pressed", "button", ev.Button, "press", ev.Press, "held", ev.Held)
	default:
		b.log.Warn("button event dropped: queue full", "button", ev.Button, "press", ev.Press)
	}
}
