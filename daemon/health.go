// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"sort"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// A condition is one kind of health problem, declared once (as tailscale's
// health.Warnable is): its published name, its severity, how long it must
// hold before it shows, and whether it describes persisted state. Call
// sites only set or clear it. Names are published and shown as they are;
// never change their meaning.
type condition struct {
	name     string
	severity string        // warning | error
	delay    time.Duration // set this long before it shows (blips are normal)
	// derived conditions follow durable records (device records, the
	// self-update state): Daemon.deriveHealth sets and clears them, so
	// they survive restarts.
	derived bool
	trust   bool // a trust failure: the LEDs show trust-problem
}

// String returns the condition's published name.
func (c *condition) String() string { return c.name }

// The conditions. Each is set from few places; the README has the table.
var (
	condClock   = &condition{name: "clock-unsynced", severity: "error", trust: true}
	condVerify  = &condition{name: "verification-failed", severity: "error", trust: true} // a signature, hash or length did not verify
	condExpired = &condition{name: "metadata-expired", severity: "error", trust: true}
	condAnchor  = &condition{name: "trust-fallback", severity: "error", trust: true} // the newest trusted root could not be loaded

	condExpiry   = &condition{name: "metadata-expiring", severity: "warning"}
	condRefresh  = &condition{name: "refresh-failed", severity: "warning"}
	condDownload = &condition{name: "download-failed", severity: "warning"} // transport, not trust
	condBroker   = &condition{name: "broker-unreachable", severity: "warning", delay: time.Minute}

	condUnreachable = &condition{name: "device-unreachable", severity: "warning"}
	condDevice      = &condition{name: "device-check-failed", severity: "warning"} // a device did not report the update it was given
	condMismatch    = &condition{name: "device-mismatch", severity: "error", derived: true}
	condRollback    = &condition{name: "rollback", severity: "warning", derived: true}
	condHeld        = &condition{name: "update-held", severity: "warning", derived: true}
	condRecovery    = &condition{name: "needs-recovery", severity: "error", derived: true}

	condAudit   = &condition{name: "audit-unwritable", severity: "error"}
	condStore   = &condition{name: "store-unwritable", severity: "error"} // a transition could not be written
	condDisk    = &condition{name: "disk-low", severity: "error"}
	condStopped = &condition{name: "emergency-stop", severity: "warning"}
)

// health is the set of active conditions. It is safe for concurrent use.
type health struct {
	now   func() time.Time
	mu    sync.Mutex
	conds map[key]api.Condition
}

type key struct {
	c       *condition
	subject string
}

func newHealth(now func() time.Time) *health {
	return &health{now: now, conds: map[key]api.Condition{}}
}

// set raises c on subject ("" for the gateway) with msg; Since keeps the
// time it was first raised.
func (h *health) set(c *condition, subject, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := key{c, subject}
	ac, ok := h.conds[k]
	if !ok {
		ac.Since = h.now().UTC()
	}
	ac.Name, ac.Subject, ac.Severity, ac.Message = c.name, subject, c.severity, msg
	h.conds[k] = ac
}

func (h *health) clear(c *condition, subject string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conds, key{c, subject})
}

// sync makes the conditions c on the given subjects exactly want
// (subject -> message): it sets those and clears the others.
func (h *health) sync(c *condition, subjects []string, want map[string]string) {
	for _, sub := range subjects {
		if msg, ok := want[sub]; ok {
			h.set(c, sub, msg)
		} else {
			h.clear(c, sub)
		}
	}
}

// visible reports whether ac, an instance of c, has held past c's delay.
func (h *health) visible(c *condition, ac api.Condition) bool {
	return c.delay == 0 || h.now().Sub(ac.Since) >= c.delay
}

// has reports whether c is visible on any subject.
func (h *health) has(c *condition) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, ac := range h.conds {
		if k.c == c && h.visible(c, ac) {
			return true
		}
	}
	return false
}

// trusted reports whether no trust condition is visible.
func (h *health) trusted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, ac := range h.conds {
		if k.c.trust && h.visible(k.c, ac) {
			return false
		}
	}
	return true
}

// list returns the visible conditions, ordered by name and subject.
func (h *health) list() []api.Condition {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]api.Condition, 0, len(h.conds))
	for k, ac := range h.conds {
		if h.visible(k.c, ac) {
			out = append(out, ac)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Subject < out[j].Subject
	})
	return out
}

// ratelimit lets a repeated message through once per period per key.
// Safe for concurrent use.
type ratelimit struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (r *ratelimit) allow(key string, period time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	now := time.Now()
	if t, ok := r.last[key]; ok && now.Sub(t) < period {
		return false
	}
	r.last[key] = now
	return true
}
