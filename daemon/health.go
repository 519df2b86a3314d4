package daemon

import (
	"sort"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// Health condition names. They are published and shown as they are; never
// change their meaning.
const (
	condClock       = "clock-unsynced"
	condRefresh     = "refresh-failed"
	condExpiry      = "metadata-expiring"
	condExpired     = "metadata-expired"
	condBroker      = "broker-unreachable"
	condUnreachable = "device-unreachable"
	condVerify      = "verification-failed"
	condAudit       = "audit-unwritable"
	condDisk        = "disk-low"
	condMismatch    = "device-mismatch"
	condRollback    = "rollback"

	condStore    = "store-unwritable"    // a transition could not be written; no device step starts
	condRecovery = "needs-recovery"      // what a device holds is unknown: fieldgatectl recover
	condHeld     = "update-held"         // a failed update is not retried on its own: fieldgatectl retry
	condDownload = "download-failed"     // a target could not be downloaded (transport, not trust)
	condDevice   = "device-check-failed" // a device did not report the update it was given
	condStopped  = "emergency-stop"      // no device step starts until resume
)

// Trust conditions turn the LEDs to trust-problem: what the gateway was
// given could not be verified (signature, hash, expiry, clock). Device and
// transport failures are not among them.
var trustConds = []string{condClock, condVerify, condExpired}

// deviceConds are the conditions derived from device records (see
// Daemon.deriveHealth): persisted, so they survive restarts.
var deviceConds = []string{condRecovery, condHeld, condRollback, condMismatch}

// health is the set of active conditions. It is safe for concurrent use.
type health struct {
	now   func() time.Time
	mu    sync.Mutex
	conds map[[2]string]api.Condition // (name, subject)
}

func newHealth(now func() time.Time) *health {
	return &health{now: now, conds: map[[2]string]api.Condition{}}
}

func (h *health) set(name, subject, severity, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]string{name, subject}
	c, ok := h.conds[k]
	if !ok {
		c.Since = h.now().UTC()
	}
	c.Name, c.Subject, c.Severity, c.Message = name, subject, severity, msg
	h.conds[k] = c
}

func (h *health) clear(name, subject string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conds, [2]string{name, subject})
}

// sync makes the conditions called name on the given subjects exactly
// want (subject -> message): it sets those and clears the others.
func (h *health) sync(name, severity string, subjects []string, want map[string]string) {
	for _, sub := range subjects {
		if msg, ok := want[sub]; ok {
			h.set(name, sub, severity, msg)
		} else {
			h.clear(name, sub)
		}
	}
}

func (h *health) has(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.conds {
		if k[0] == name {
			return true
		}
	}
	return false
}

func (h *health) list() []api.Condition {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]api.Condition, 0, len(h.conds))
	for _, c := range h.conds {
		out = append(out, c)
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
