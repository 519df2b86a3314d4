// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/board"
)

// shownDisplays records what the daemon hands its indicator.
type shownDisplays struct {
	mu   sync.Mutex
	last Display
	ch   chan Display
}

func (s *shownDisplays) Show(d Display) {
	s.mu.Lock()
	s.last = d
	s.mu.Unlock()
	select {
	case s.ch <- d:
	default:
	}
}

func (s *shownDisplays) LEDs() map[string]string { return nil }

type fakeBroker struct{ up bool }

func (b fakeBroker) Connected() bool { return b.up }

// TestStatusDisplayPages: a short press turns the display to its next page
// (state → uplink → devices → state); each page shows its own two checks;
// a minute without a press brings it back to the state page.
func TestStatusDisplayPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		r.setNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
		advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
		r.d.broker = fakeBroker{up: true}
		shown := &shownDisplays{ch: make(chan Display, 16)}
		r.d.ind = shown
		bd, err := board.Open(board.Config{}, nil) // virtual: presses are injected
		if err != nil {
			t.Fatal(err)
		}
		r.d.buttons = bd
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.d.buttonLoop(ctx)

		press := func() Display {
			t.Helper()
			if err := bd.Press(board.ButtonApprove, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-shown.ch:
				return d
			case <-time.After(10 * time.Second):
				t.Fatal("a short press showed nothing")
				return Display{}
			}
		}

		if got := r.d.display(); got.Page != PageState || got.State != StateIdle {
			t.Errorf("display() before any press = %+v, want the state page, idle", got)
		}
		r.d.health.set(condRefresh, "", "repository unreachable")
		if got := press(); got != (Display{Page: PageUplink, State: StateIdle, Good: true, Bad: true}) {
			t.Errorf("first press shows %+v, want the uplink page: broker connected (good), refresh failing (bad)", got)
		}
		r.d.health.set(condUnreachable, "a", "no answer")
		if got := press(); got != (Display{Page: PageDevices, State: StateIdle, Good: false, Bad: false}) {
			t.Errorf("second press shows %+v, want the devices page: a device unreachable, none drifted", got)
		}
		if got := press(); got.Page != PageState {
			t.Errorf("third press shows page %v, want the state page again", got.Page)
		}

		press() // uplink again
		advance(pageTimeout - time.Second)
		if got := r.d.display().Page; got != PageUplink {
			t.Errorf("%v after the press: page %v, want still %v", pageTimeout-time.Second, got, PageUplink)
		}
		advance(time.Second)
		if got := r.d.display().Page; got != PageState {
			t.Errorf("%v after the press: page %v, want back at %v", pageTimeout, got, PageState)
		}
		if got := r.d.gatewayDoc().Display; got != "" {
			t.Errorf("gatewayDoc().Display = %q with an indicator that has no LEDs, want empty", got)
		}
	})
}
