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
)

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
