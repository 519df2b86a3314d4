// SPDX-License-Identifier: Apache-2.0

package board

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// step is one change of a button, as the hand does it: after wait, the
// button is pressed (or released).
type step struct {
	wait    time.Duration
	pressed bool
}

// setPressed moves a gpiotest pin the way the hardware would: the level
// changes, and an edge is signalled if the pin has edge detection. The edge
// channel holds at most the latest level, because gpiotest's WaitForEdge
// writes the level it receives back to the pin.
func setPressed(p *gpiotest.Pin, pressed, activeLow bool) {
	l := gpio.Level(pressed != activeLow)
	_ = p.Out(l)
	if p.EdgesChan == nil {
		return
	}
	for {
		select {
		case p.EdgesChan <- l:
			return
		default:
		}
		select {
		case <-p.EdgesChan:
		default:
		}
	}
}

// bounce returns steps that chatter for about 8 ms before settling.
func bounce(wait time.Duration, pressed bool) []step {
	return []step{
		{wait, pressed}, {time.Millisecond, !pressed}, {2 * time.Millisecond, pressed},
		{time.Millisecond, !pressed}, {3 * time.Millisecond, pressed}, {time.Millisecond, !pressed},
		{time.Millisecond, pressed},
	}
}

func concat(ss ...[]step) []step {
	var out []step
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

// runButton runs a one-button board on a gpiotest pin through steps and
// returns the events it reported.
func runButton(t *testing.T, activeLow, edges, heldAtStart bool, steps []step) []Event {
	t.Helper()
	var got []Event
	synctest.Test(t, func(t *testing.T) {
		pin := &gpiotest.Pin{N: "GPIO17", Num: 17}
		if edges {
			pin.EdgesChan = make(chan gpio.Level, 1)
		}
		cfg := Config{Buttons: map[string]Pin{"approve": {Name: "GPIO17", ActiveLow: activeLow}}}
		b, err := newBoard(cfg, map[string]gpio.PinIO{"GPIO17": pin}, nil)
		if err != nil {
			t.Fatalf("newBoard: %v", err)
		}
		if b.buttons["approve"].edges != edges {
			t.Fatalf("button edges = %v, want %v", b.buttons["approve"].edges, edges)
		}
		if heldAtStart {
			setPressed(pin, true, activeLow)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		// An odd offset keeps hand movements off the polling grid, so the
		// poll-mode timings are exact too.
		time.Sleep(time.Second + 5*time.Millisecond)
		for _, s := range steps {
			time.Sleep(s.wait)
			setPressed(pin, s.pressed, activeLow)
		}
		time.Sleep(20 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		for len(b.Events()) > 0 {
			got = append(got, <-b.Events())
		}
	})
	return got
}

func TestButton(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name        string
		steps       []step
		heldAtStart bool
		want        []Event
	}{
		{"short", []step{{0, true}, {200 * ms, false}}, false,
			[]Event{{"approve", ShortPress, 200 * ms}}},
		{"glitch shorter than debounce", []step{{0, true}, {20 * ms, false}}, false, nil},
		// Held runs from the last bounce of the press to the last bounce of
		// the release: 9 ms of chatter, then the hand lets go 500 ms later.
		{"bouncy short", concat(bounce(0, true), bounce(500*ms, false)), false,
			[]Event{{"approve", ShortPress, 509 * ms}}},
		{"long at threshold", []step{{0, true}, {3 * time.Second, false}}, false,
			[]Event{{"approve", LongPress, 3 * time.Second}}},
		{"just short of long", []step{{0, true}, {3*time.Second - 10*ms, false}}, false,
			[]Event{{"approve", ShortPress, 3*time.Second - 10*ms}}},
		{"bouncy long", concat(bounce(0, true), bounce(4*time.Second, false)), false,
			[]Event{{"approve", LongPress, 4*time.Second + 9*ms}}},
		{"very long reported while held", []step{{0, true}, {15 * time.Second, false}}, false,
			[]Event{{"approve", VeryLongPress, 10 * time.Second}}},
		{"two presses", []step{{0, true}, {100 * ms, false}, {300 * ms, true}, {5 * time.Second, false}}, false,
			[]Event{{"approve", ShortPress, 100 * ms}, {"approve", LongPress, 5 * time.Second}}},
		{"held at start is ignored", []step{{12 * time.Second, false}}, true, nil},
		{"held at start, then pressed", []step{{time.Second, false}, {time.Second, true}, {300 * ms, false}}, true,
			[]Event{{"approve", ShortPress, 300 * ms}}},
	}
	for _, tt := range tests {
		for _, activeLow := range []bool{true, false} {
			for _, edges := range []bool{true, false} {
				name := tt.name
				if activeLow {
					name += "/active-low"
				}
				if edges {
					name += "/edges"
				} else {
					name += "/polled"
				}
				t.Run(name, func(t *testing.T) {
					got := runButton(t, activeLow, edges, tt.heldAtStart, tt.steps)
					// A polled pin sees a change up to one poll (10 ms) late.
					var slack time.Duration
					if !edges {
						slack = DefaultDebounce / 3
					}
					if !equalEvents(got, tt.want, slack) {
						t.Errorf("events = %v, want %v", got, tt.want)
					}
				})
			}
		}
	}
}

func equalEvents(a, b []Event, slack time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Button != b[i].Button || a[i].Press != b[i].Press ||
			a[i].Held < b[i].Held-slack || a[i].Held > b[i].Held+slack {
			return false
		}
	}
	return true
}

func TestLEDPatterns(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		pattern Pattern
		at      []time.Duration // sample times after SetLED
		want    []bool          // lit?
	}{
		{On, []time.Duration{0, 5 * time.Second}, []bool{true, true}},
		{Off, []time.Duration{0, 5 * time.Second}, []bool{false, false}},
		{SlowBlink, []time.Duration{500 * ms, 1500 * ms, 2500 * ms, 3500 * ms}, []bool{true, false, true, false}},
		{FastBlink, []time.Duration{60 * ms, 190 * ms, 310 * ms, 440 * ms}, []bool{true, false, true, false}},
		{DoubleBlink, []time.Duration{75 * ms, 225 * ms, 375 * ms, 1000 * ms, 2075 * ms}, []bool{true, false, true, false, true}},
		{TripleBlink, []time.Duration{75 * ms, 225 * ms, 375 * ms, 525 * ms, 675 * ms, 1000 * ms, 2075 * ms}, []bool{true, false, true, false, true, false, true}},
		{Heartbeat, []time.Duration{50 * ms, 150 * ms, 1900 * ms, 2050 * ms}, []bool{true, false, false, true}},
	}
	for _, tt := range tests {
		for _, activeLow := range []bool{false, true} {
			name := string(tt.pattern)
			if activeLow {
				name += "/active-low"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					pin := &gpiotest.Pin{N: "GPIO27", Num: 27}
					cfg := Config{LEDs: map[string]Pin{"status": {Name: "GPIO27", ActiveLow: activeLow}}}
					b, err := newBoard(cfg, map[string]gpio.PinIO{"GPIO27": pin}, nil)
					if err != nil {
						t.Fatalf("newBoard: %v", err)
					}
					lit := func() bool { return (pin.Read() == gpio.High) != activeLow }
					if lit() {
						t.Fatalf("LED lit after open, want dark")
					}
					ctx, cancel := context.WithCancel(t.Context())
					done := make(chan error)
					go func() { done <- b.Run(ctx) }()
					time.Sleep(1234 * ms) // an arbitrary phase
					b.SetLED("status", tt.pattern)
					start := time.Now()
					for i, at := range tt.at {
						time.Sleep(start.Add(at).Sub(time.Now()))
						synctest.Wait()
						if got := lit(); got != tt.want[i] {
							t.Errorf("%s: lit after %v = %v, want %v", tt.pattern, at, got, tt.want[i])
						}
					}
					if got := b.LEDs()["status"]; got != tt.pattern {
						t.Errorf("LEDs()[status] = %q, want %q", got, tt.pattern)
					}
					cancel()
					<-done
					if lit() {
						t.Errorf("LED lit after Run returned, want dark")
					}
				})
			})
		}
	}
}

func TestPatternValid(t *testing.T) {
	for _, p := range Patterns() {
		if _, err := ParsePattern(string(p)); err != nil {
			t.Errorf("ParsePattern(%q) = %v, want nil", p, err)
		}
		if p == Off || p == On {
			continue
		}
		if _, ok := steps[p]; !ok {
			t.Errorf("pattern %q has no steps", p)
		}
	}
	if _, err := ParsePattern("disco"); err == nil {
		t.Errorf("ParsePattern(disco) = nil, want error")
	}
}

func TestPatternsForDistinct(t *testing.T) {
	seen := map[[2]Pattern]State{}
	for _, s := range States() {
		p := PatternsFor(s)
		if len(p) != 2 || !p[LEDStatus].Valid() || !p[LEDFault].Valid() {
			t.Errorf("PatternsFor(%q) = %v, want valid status and fault patterns", s, p)
		}
		k := [2]Pattern{p[LEDStatus], p[LEDFault]}
		if k == [2]Pattern{Off, Off} {
			t.Errorf("PatternsFor(%q) = all dark, which means 'daemon not running'", s)
		}
		if other, dup := seen[k]; dup {
			t.Errorf("PatternsFor(%q) = PatternsFor(%q) = %v, want distinct codes", s, other, k)
		}
		seen[k] = s
		if row := docRow(string(s)); len(row) < 3 || row[1] != string(k[0]) || row[2] != string(k[1]) {
			t.Errorf("doc.go blink-code row for %q = %v, want %s %s", s, row, k[0], k[1])
		}
	}
	if got, want := PatternsFor("bogus"), PatternsFor(StateFailure); got[LEDFault] != want[LEDFault] {
		t.Errorf("PatternsFor(bogus) = %v, want %v", got, want)
	}
}

func TestVirtual(t *testing.T) {
	b, err := Open(Config{}, nil)
	if err != nil {
		t.Fatalf("Open(Config{}) = %v", err)
	}
	if !b.Virtual() {
		t.Fatalf("Open(Config{}).Virtual() = false, want true")
	}
	b.Show(StateAwaitingApproval)
	if got, want := b.LEDs(), PatternsFor(StateAwaitingApproval); got[LEDStatus] != want[LEDStatus] || got[LEDFault] != want[LEDFault] {
		t.Errorf("LEDs() after Show = %v, want %v", got, want)
	}
	b.SetLED("status", "disco")
	if got := b.LEDs()["status"]; got != DoubleBlink {
		t.Errorf("LEDs()[status] after invalid SetLED = %q, want %q", got, DoubleBlink)
	}
	for _, tt := range []struct {
		hold time.Duration
		want Press
	}{{0, ShortPress}, {2 * time.Second, ShortPress}, {3 * time.Second, LongPress}, {10 * time.Second, VeryLongPress}} {
		if err := b.Press(ButtonApprove, tt.hold); err != nil {
			t.Fatalf("Press(approve, %v) = %v", tt.hold, err)
		}
		if got := <-b.Events(); got != (Event{ButtonApprove, tt.want, tt.hold}) {
			t.Errorf("Press(approve, %v) gave %v, want %v", tt.hold, got, Event{ButtonApprove, tt.want, tt.hold})
		}
	}
	if err := b.Press("reset", 0); err == nil || !strings.Contains(err.Error(), "no such button") {
		t.Errorf("Press(reset) = %v, want no such button", err)
	}
	if err := b.Press(ButtonApprove, -time.Second); err == nil {
		t.Errorf("Press(approve, -1s) = nil, want error")
	}
	for range eventQueue {
		if err := b.Press(ButtonApprove, 0); err != nil {
			t.Fatalf("Press() = %v", err)
		}
	}
	if err := b.Press(ButtonApprove, 0); err == nil {
		t.Errorf("Press() with a full queue = nil, want error")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Errorf("Run(cancelled) = %v, want nil", err)
	}
	if err := b.Run(ctx); err == nil {
		t.Errorf("second Run() = nil, want error")
	}
}

func TestPressRealBoard(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO17"}
	b, err := newBoard(Config{Buttons: map[string]Pin{"approve": {Name: "GPIO17"}}}, map[string]gpio.PinIO{"GPIO17": pin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Virtual() {
		t.Errorf("Virtual() = true, want false")
	}
	if err := b.Press("approve", 0); !errors.Is(err, ErrNotVirtual) {
		t.Errorf("Press() on a real board = %v, want ErrNotVirtual", err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing pin", Config{Buttons: map[string]Pin{"approve": {}}}, `button "approve": pin name is required`},
		{"shared pin", Config{Buttons: map[string]Pin{"approve": {Name: "GPIO1"}}, LEDs: map[string]Pin{"status": {Name: "GPIO1"}}},
			`both use pin "GPIO1"`},
		{"long < debounce", Config{Debounce: time.Second, LongPress: 500 * time.Millisecond}, "debounce 1s"},
		{"very long < long", Config{LongPress: 5 * time.Second, VeryLongPress: 4 * time.Second}, "long press 5s"},
		{"unknown pin", Config{LEDs: map[string]Pin{"status": {Name: "FIELDGATE_NO_SUCH_PIN"}}}, `LED "status": no GPIO line named "FIELDGATE_NO_SUCH_PIN"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
			}
		})
	}
}

// TestOpenGpioreg opens a board through periph's registry, the path a real
// gateway takes, with gpiotest pins registered under made-up names.
func TestOpenGpioreg(t *testing.T) {
	btn := &gpiotest.Pin{N: "FIELDGATE_TEST_BTN", Num: 9001}
	led := &gpiotest.Pin{N: "FIELDGATE_TEST_LED", Num: 9002, L: gpio.Low}
	for _, p := range []*gpiotest.Pin{btn, led} {
		if err := gpioreg.Register(p); err != nil {
			t.Fatalf("gpioreg.Register(%s) = %v", p, err)
		}
		t.Cleanup(func() { _ = gpioreg.Unregister(p.N) })
	}
	b, err := Open(Config{
		Buttons: map[string]Pin{"approve": {Name: btn.N, ActiveLow: true}},
		LEDs:    map[string]Pin{"status": {Name: led.N, ActiveLow: true}},
	}, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	if b.Virtual() {
		t.Errorf("Virtual() = true, want false")
	}
	if btn.P != gpio.PullUp {
		t.Errorf("active-low button pull = %s, want %s", btn.P, gpio.PullUp)
	}
	if b.buttons["approve"].edges {
		t.Errorf("button without EdgesChan reports edges, want polled")
	}
	if led.Read() != gpio.High {
		t.Errorf("active-low LED level after Open = %s, want High (dark)", led.Read())
	}
}

// docRow returns the fields of the line of doc.go's blink-code table that
// starts with state.
func docRow(state string) []string {
	b, _ := os.ReadFile("doc.go")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "//"))
		if len(f) > 0 && f[0] == state {
			return f
		}
	}
	return nil
}

// TestLongPressAcknowledged checks that the LEDs light up while a press is
// held past the long-press threshold, and return to their patterns after.
func TestLongPressAcknowledged(t *testing.T) {
	for _, edges := range []bool{true, false} {
		t.Run(map[bool]string{true: "edges", false: "polled"}[edges], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				btn := &gpiotest.Pin{N: "GPIO17"}
				if edges {
					btn.EdgesChan = make(chan gpio.Level, 1)
				}
				led := &gpiotest.Pin{N: "GPIO27"}
				b, err := newBoard(Config{
					Buttons: map[string]Pin{"approve": {Name: "GPIO17", ActiveLow: true}},
					LEDs:    map[string]Pin{"status": {Name: "GPIO27"}},
				}, map[string]gpio.PinIO{"GPIO17": btn, "GPIO27": led}, nil)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- b.Run(ctx) }()
				time.Sleep(time.Second + 5*time.Millisecond)

				for _, tt := range []struct {
					press   bool // press (true) or release (false) first, then wait
					wait    time.Duration
					wantLit bool
				}{
					{true, 2900 * time.Millisecond, false},  // 2.9 s held: not yet long
					{true, 200 * time.Millisecond, true},    // 3.1 s: long, acknowledged
					{false, 100 * time.Millisecond, false},  // released: pattern again
					{true, 10500 * time.Millisecond, false}, // very long: reported, acknowledgement off
				} {
					if pressed := btn.Read() == gpio.Low; tt.press != pressed {
						setPressed(btn, tt.press, true)
					}
					time.Sleep(tt.wait)
					synctest.Wait()
					if got := led.Read() == gpio.High; got != tt.wantLit {
						t.Errorf("pressed=%v after %v: LED lit = %v, want %v", tt.press, tt.wait, got, tt.wantLit)
					}
				}
				if got := b.LEDs()["status"]; got != Off {
					t.Errorf("LEDs()[status] = %q, want %q", got, Off)
				}
				cancel()
				<-done
				var got []Press
				for len(b.Events()) > 0 {
					got = append(got, (<-b.Events()).Press)
				}
				if want := []Press{LongPress, VeryLongPress}; !slices.Equal(got, want) {
					t.Errorf("presses = %v, want %v", got, want)
				}
			})
		})
	}
}

// brokenEdges is a pin whose driver accepts edge detection but whose
// WaitForEdge returns at once, as a driver in trouble might.
type brokenEdges struct{ *gpiotest.Pin }

func (brokenEdges) WaitForEdge(time.Duration) bool { return false }

func TestBrokenEdgeDetectionFallsBackToPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := &gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level, 1)}
		b, err := newBoard(Config{Buttons: map[string]Pin{"approve": {Name: "GPIO17"}}},
			map[string]gpio.PinIO{"GPIO17": brokenEdges{pin}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		time.Sleep(time.Second + 5*time.Millisecond) // would never return while spinning
		_ = pin.Out(gpio.High)
		time.Sleep(time.Second)
		_ = pin.Out(gpio.Low)
		time.Sleep(time.Second)
		cancel()
		<-done
		if got := len(b.Events()); got != 1 {
			t.Errorf("events after a press = %d, want 1", got)
		}
	})
}

// TestLookupPin: a line registered with gpioreg is found by its name; a
// "gpiochipN:OFFSET" name is only found on a chip that exists, and anything
// else is no pin at all (Open turns that into an error naming the pin).
func TestLookupPin(t *testing.T) {
	pin := &gpiotest.Pin{N: "FG_LOOKUP_TEST_LINE"}
	if err := gpioreg.Register(pin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gpioreg.Unregister(pin.N) })
	if got := lookupPin("FG_LOOKUP_TEST_LINE"); got != pin {
		t.Fatalf("lookupPin(registered name) = %v, want the registered pin", got)
	}
	for _, name := range []string{"gpiochip99:3", "gpiochip0:x", "gpiochip0", ":", "NO_SUCH_LINE"} {
		if got := lookupPin(name); got != nil {
			t.Errorf("lookupPin(%q) = %v, want nil", name, got)
		}
	}
}

// TestFlashAllAndChecks: a page marker flashes both LEDs together n times
// over a two-check page, which then shows on its own: status lit = good,
// fault lit = bad.
func TestFlashAllAndChecks(t *testing.T) {
	const ms = time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		status, fault := &gpiotest.Pin{N: "GPIO27"}, &gpiotest.Pin{N: "GPIO22"}
		cfg := Config{LEDs: map[string]Pin{"status": {Name: "GPIO27"}, "fault": {Name: "GPIO22"}}}
		b, err := newBoard(cfg, map[string]gpio.PinIO{"GPIO27": status, "GPIO22": fault}, nil)
		if err != nil {
			t.Fatalf("newBoard: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		b.ShowChecks(true, false)
		b.FlashAll(2)
		start := time.Now()
		for _, step := range []struct {
			at            time.Duration
			status, fault bool
		}{
			{75 * ms, true, true},    // first flash: both lit
			{225 * ms, false, false}, // gap: both dark
			{375 * ms, true, true},   // second flash
			{525 * ms, false, false}, // gap
			{700 * ms, true, false},  // marker over: the page itself
			{5 * time.Second, true, false},
		} {
			time.Sleep(start.Add(step.at).Sub(time.Now()))
			synctest.Wait()
			if got := [2]bool{status.Read() == gpio.High, fault.Read() == gpio.High}; got != [2]bool{step.status, step.fault} {
				t.Errorf("after %v: status, fault lit = %v, want %v", step.at, got, [2]bool{step.status, step.fault})
			}
		}
		if got := b.LEDs(); got["status"] != On || got["fault"] != Off {
			t.Errorf("LEDs() = %v, want status on, fault off", got)
		}
		cancel()
		<-done
	})
}
