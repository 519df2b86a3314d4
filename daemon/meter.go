// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"time"
)

// Meter is where the daemon records what it does, for a metrics exposition
// (daemon/metrics). The update loop and the device workers call it: an
// implementation is safe for concurrent use and does not block.
type Meter interface {
	// Transfer records one push of an image to a device over protocol:
	// the bytes the device acknowledged (all of them when err is nil) and
	// how long the push took.
	Transfer(protocol string, bytes int64, took time.Duration, err error)
	// Refresh records the outcome of one TUF metadata refresh.
	Refresh(err error)
}

type noMeter struct{}

func (noMeter) Transfer(string, int64, time.Duration, error) {}
func (noMeter) Refresh(error)                                {}

// Counts is the daemon's state of the moment in numbers, for a metrics
// scrape (Daemon.Counts).
type Counts struct {
	At    time.Time      // the daemon's clock when counted
	Jobs  map[string]int // the jobs the gateway keeps, by phase; every phase is listed
	Steps map[string]int // the device steps of those jobs, by phase; every phase is listed
	// OutboxDepth is the number of reports waiting for the broker.
	OutboxDepth int
	// OutboxAcked is the sequence number of the last report the broker
	// acknowledged: every report queued before it has left the outbox
	// (delivered, or compacted away in a long outage). It only grows.
	OutboxAcked uint64
	// LastRefresh is when metadata was last refreshed or an offline
	// bundle imported; zero before the first since the start.
	LastRefresh  time.Time
	AuditRecords uint64 // records the audit log keeps
	StoreBytes   int64  // size of the state database file
	// DiskFree and DiskTotal are the bytes available to fieldgated and
	// the size of the file system of the state directory.
	DiskFree, DiskTotal uint64
}

// jobPhases and stepPhases are every phase, so that a phase no job is in
// counts 0 rather than being missing.
var (
	jobPhases  = []phase{jobAwaitingApproval, jobScheduled, jobRunning, jobSucceeded, jobPartial, jobHalted, jobFailed, jobCancelled}
	stepPhases = []phase{stepPending, stepBackup, stepTransfer, stepActivate, stepVerify, stepSoak, stepCommitted, stepRollback, stepRolledBack, stepFailed, stepSkipped}
)

// Counts returns the daemon's numbers of the moment. It reads the stored
// jobs and the store's counters, and statfs(2)s the state directory: cheap
// enough for a scrape every few seconds. Safe for concurrent use.
func (d *Daemon) Counts() (Counts, error) {
	c := Counts{At: d.now(), Jobs: map[string]int{}, Steps: map[string]int{}}
	for _, p := range jobPhases {
		c.Jobs[string(p)] = 0
	}
	for _, p := range stepPhases {
		c.Steps[string(p)] = 0
	}
	jobs, err := d.st.Jobs()
	if err != nil {
		return c, err
	}
	for _, j := range jobs {
		c.Jobs[string(j.Phase)]++
		for _, s := range j.Devices {
			c.Steps[string(s.Phase)]++
		}
	}
	if c.OutboxDepth, err = d.st.Depth(); err != nil {
		return c, err
	}
	if c.OutboxAcked, err = d.st.Acked(); err != nil {
		return c, err
	}
	u, err := d.st.Usage()
	if err != nil {
		return c, err
	}
	c.AuditRecords, c.StoreBytes = u.AuditRecords, u.Bytes
	if c.DiskFree, c.DiskTotal, err = diskSpace(d.cfg.Gateway.StateDir); err != nil {
		return c, err
	}
	d.mu.Lock()
	c.LastRefresh = d.lastRefresh
	d.mu.Unlock()
	return c, nil
}
