// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
)

// recMeter records what the daemon tells its Meter.
type recMeter struct {
	mu        sync.Mutex
	transfers []meteredTransfer
	refreshes []error
}

type meteredTransfer struct {
	protocol string
	bytes    int64
	err      error
}

func (m *recMeter) Transfer(protocol string, bytes int64, _ time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.transfers = append(m.transfers, meteredTransfer{protocol, bytes, err})
}

func (m *recMeter) Refresh(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshes = append(m.refreshes, err)
}

// TestMeterAndCountsFollowAJob runs a job over two devices, one of whose
// lines drops once, and checks what the daemon told its Meter and what
// Counts reads afterwards.
func TestMeterAndCountsFollowAJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a", "b")
		m := &recMeter{}
		r.d.meter, r.d.m.meter = m, m
		const size = 300
		r.devs["a"].FailAt, r.devs["a"].FailTimes = 100, 1
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", size))
		r.cycle(context.Background())
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Fatalf("job phase = %q (%s), want %q", j.Phase, j.Reason, jobSucceeded)
		}

		var ok, failed int
		for _, tr := range m.transfers {
			if tr.protocol != "fake" {
				t.Errorf("Transfer(protocol %q), want the device's protocol fake", tr.protocol)
			}
			switch {
			case tr.err == nil && tr.bytes == size:
				ok++
			case tr.err != nil && tr.bytes < size:
				failed++
			default:
				t.Errorf("Transfer(%d bytes, err %v): want %d bytes when it succeeded, fewer when it failed", tr.bytes, tr.err, size)
			}
		}
		if ok != 2 || failed != 1 {
			t.Errorf("Transfer calls = %d ok, %d failed, want 2 and 1 (device a's line dropped once)", ok, failed)
		}
		if len(m.refreshes) != 1 || m.refreshes[0] != nil {
			t.Errorf("Refresh calls = %v, want one without error", m.refreshes)
		}

		c, err := r.d.Counts()
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Jobs) != len(jobPhases) || c.Jobs[string(jobSucceeded)] != 1 || c.Jobs[string(jobRunning)] != 0 {
			t.Errorf("Counts().Jobs = %v, want every phase, 1 succeeded", c.Jobs)
		}
		if len(c.Steps) != len(stepPhases) || c.Steps[string(stepCommitted)] != 2 || c.Steps[string(stepPending)] != 0 {
			t.Errorf("Counts().Steps = %v, want every phase, 2 committed", c.Steps)
		}
		if n, err := r.st.VerifyAudit(); err != nil || c.AuditRecords != uint64(n) {
			t.Errorf("Counts().AuditRecords = %d, want the %d records VerifyAudit walks (%v)", c.AuditRecords, n, err)
		}
		// Nothing drains the outbox in this rig.
		if depth, _ := r.st.Depth(); c.OutboxDepth != depth || depth == 0 || c.OutboxAcked != 0 {
			t.Errorf("Counts() outbox depth %d, acked %d; want %d and 0", c.OutboxDepth, c.OutboxAcked, depth)
		}
		if c.LastRefresh.IsZero() || c.LastRefresh.After(c.At) {
			t.Errorf("Counts().LastRefresh = %v at %v, want the refresh's time", c.LastRefresh, c.At)
		}
		if c.StoreBytes <= 0 || c.DiskTotal == 0 || c.DiskFree > c.DiskTotal {
			t.Errorf("Counts() store %d bytes, disk %d free of %d: want sizes", c.StoreBytes, c.DiskFree, c.DiskTotal)
		}
	})
}

// errSource fails every refresh and fetch with err.
type errSource struct{ err error }

func (e errSource) Refresh(context.Context) (*tuf.Snapshot, error) { return nil, e.err }
func (e errSource) Fetch(context.Context, tuf.Target, func(int64, int64)) (string, error) {
	return "", e.err
}

// TestMeterSeesAFailedRefresh checks that a refresh that fails reaches the
// Meter with its error.
func TestMeterSeesAFailedRefresh(t *testing.T) {
	r := newRig(t, false, "a")
	m := &recMeter{}
	r.d.meter = m
	r.d.src = errSource{errors.New("repository unreachable")}
	r.d.refresh(context.Background())
	if len(m.refreshes) != 1 || m.refreshes[0] == nil {
		t.Errorf("Refresh calls = %v, want one with the error", m.refreshes)
	}
	c, err := r.d.Counts()
	if err != nil || !c.LastRefresh.IsZero() {
		t.Errorf("Counts() = last refresh %v, %v; want none after a failed refresh", c.LastRefresh, err)
	}
}
