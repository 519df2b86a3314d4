// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"fmt"
	"sync"
	"time"
)

// liveness records that the daemon makes progress, for systemd's watchdog:
// the update loop turns, and no device phase overstays its deadline. A
// ticker of its own would keep systemd happy while the loop is deadlocked;
// this asks the parts that do the work. It reads the monotonic wall clock,
// not the daemon's (possibly injected) clock. Safe for concurrent use.
type liveness struct {
	mu     sync.Mutex
	turned time.Time            // the loop's last turn, or download progress
	phases map[string]time.Time // device -> deadline of the phase in flight
}

// beat records progress of the loop (a turn, or bytes of a download the
// loop waits for).
func (l *liveness) beat() {
	l.mu.Lock()
	l.turned = time.Now()
	l.mu.Unlock()
}

// phase records that dev runs a phase that must end by deadline; call the
// returned function when it ends.
func (l *liveness) phase(dev string, deadline time.Time) (done func()) {
	l.mu.Lock()
	if l.phases == nil {
		l.phases = map[string]time.Time{}
	}
	l.phases[dev] = deadline
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.phases, dev)
		l.mu.Unlock()
	}
}

// phaseGrace is how long a device phase may overrun its deadline (drivers
// close their port when the context ends) before the daemon counts as hung.
const phaseGrace = 30 * time.Second

// Alive returns nil when the update loop turned within the last period and
// no device phase is past its deadline (plus a grace); otherwise it says
// what is stuck. fieldgated pings systemd's watchdog only while Alive is
// nil, with period half of WatchdogSec (sd_watchdog_enabled(3)).
func (d *Daemon) Alive(period time.Duration) error {
	l := d.pulse
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.turned.IsZero() {
		return nil // not started yet: systemd's start timeout covers that
	}
	if since := now.Sub(l.turned); since > period {
		return fmt.Errorf("update loop has not turned for %s", since.Round(time.Second))
	}
	for dev, dl := range l.phases {
		if over := now.Sub(dl); over > phaseGrace {
			return fmt.Errorf("device %s: phase %s past its deadline", dev, over.Round(time.Second))
		}
	}
	return nil
}
