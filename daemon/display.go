// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"slices"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/store"
)

// Display is what the status display shows. A short press of a button
// cycles its pages; after pageTimeout without a press it returns to
// PageState.
type Display struct {
	Page  Page
	State State // the gateway state, whatever the page
	// Good and Bad are the two checks of PageUplink and PageDevices: the
	// status LED is lit when Good, the fault LED when Bad.
	Good, Bad bool
}

// Page is a page of the status display, numbered from 1 as the LEDs flash
// it when it opens.
type Page int

// The pages of the status display.
const (
	PageState   Page = 1 + iota // the gateway state (the blink-code table)
	PageUplink                  // status: MQTT broker connected; fault: the repository refresh is failing
	PageDevices                 // status: every device answers; fault: a device drifted or was rolled back
)

// String returns "state", "uplink" or "devices".
func (p Page) String() string {
	switch p {
	case PageUplink:
		return "uplink"
	case PageDevices:
		return "devices"
	}
	return "state"
}

// pageTimeout is how long a page other than PageState stays without a press.
const pageTimeout = time.Minute

// State is the gateway's overall state as shown on LEDs.
type State string

// States, from the most to the least urgent.
const (
	StateTrustProblem     State = "trust-problem"
	StateFailure          State = "failure"
	StatePushing          State = "pushing"
	StateDownloading      State = "downloading"
	StateAwaitingApproval State = "awaiting-approval"
	StateUpdateAvailable  State = "update-available"
	StateSuccess          State = "success"
	StateIdle             State = "idle"
	StateStopped          State = "stopped"
)

// showState derives the LED state from health and jobs.
func (d *Daemon) showState() {
	if d.ind == nil {
		return
	}
	d.ind.Show(d.display())
}

// display is what the status display shows now.
func (d *Daemon) display() Display {
	disp := Display{Page: d.pages.current(), State: d.overallState()}
	switch disp.Page {
	case PageUplink:
		disp.Good = d.broker != nil && d.broker.Connected()
		disp.Bad = d.health.has(condRefresh)
	case PageDevices:
		disp.Good = !d.health.has(condUnreachable)
		disp.Bad = d.health.has(condMismatch) || d.health.has(condRollback)
	}
	return disp
}

// pager is the status display's page: a short press turns it, and it
// returns to PageState after pageTimeout. Safe for concurrent use.
type pager struct {
	now   func() time.Time
	mu    sync.Mutex
	page  Page      // 0: PageState
	until time.Time // when the page returns to PageState
}

// current returns the page, back at PageState once pageTimeout has passed
// since the last press.
func (p *pager) current() Page {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.page == 0 || !p.now().Before(p.until) {
		p.page = PageState
	}
	return p.page
}

// next turns the display to its next page (after the last, the first) and
// returns it.
func (p *pager) next() Page {
	n := p.current()%PageDevices + 1
	p.mu.Lock()
	p.page, p.until = n, p.now().Add(pageTimeout)
	p.mu.Unlock()
	return n
}

func (d *Daemon) overallState() State {
	if !d.health.trusted() {
		return StateTrustProblem
	}
	if d.m.stopped() {
		return StateStopped
	}
	jobs, _ := d.st.Jobs() // oldest first
	if slices.ContainsFunc(jobs, func(j store.Job) bool { return j.Phase == jobRunning }) {
		return StatePushing // do not power off
	}
	// A device left needing recovery is a failure whatever else waits.
	if d.health.has(condRecovery) {
		return StateFailure
	}
	var awaiting, scheduled bool
	var last phase // outcome of the newest finished job
	for _, j := range jobs {
		switch {
		case j.Phase == jobRunning:
			return StatePushing
		case j.Phase == jobAwaitingApproval:
			awaiting = true
		case j.Phase == jobScheduled:
			scheduled = true
		case jobTerminal(j.Phase):
			last = j.Phase
		}
	}
	switch {
	case d.downloading.Load():
		return StateDownloading
	case awaiting:
		return StateAwaitingApproval
	case scheduled:
		return StateUpdateAvailable
	case last == jobSucceeded:
		return StateSuccess
	case last == jobFailed || last == jobPartial || last == jobHalted:
		return StateFailure
	}
	return StateIdle
}
