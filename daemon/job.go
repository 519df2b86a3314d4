package daemon

// This file is the job state machine: every phase a job or a device step
// can be in, and the functions that move them. Phase names are persisted and
// published; never change their meaning.
//
// Job:
//
//	awaiting-approval ──▶ scheduled ──▶ running ──▶ succeeded | partially-failed | failed
//	                                        │
//	                                        └──▶ halted (canary or failure limit) | cancelled
//
// Device step (one worker goroutine per running step):
//
//	pending ──(approved, window fits, interlock clear, segment free)──▶ backup ──▶ transfer
//	   ──▶ activate ──▶ verify ──▶ soak ──▶ committed
//	failures before anything was written ──▶ failed ("not-started: …")
//	failures after the push ──▶ rollback ──▶ rolled-back | failed
//
// Each transition is written (with its audit record and reports) in one
// transaction before the side effect of the phase it enters runs, so after a
// kill -9 the daemon runs the persisted phase again. A worker that finds its
// step in the middle of a phase (crash, or a transition it could not write)
// first counts the interruption durably, and runs the phase only if that
// write succeeded: Attempts counts entries into transfer, Restarts resumed
// phases, Rollbacks entries into rollback. Past their limits the step rolls
// back, or ends failed: no loop outlives its counter.
//
// A step that ends failed or rolled-back, or is skipped because its job was
// halted or cancelled, holds the (device, target): no job is staged for it
// again until a newer target is published or a person retries. A failed
// step whose device does not then report a version leaves the device
// needing recovery (fieldgatectl recover), never with its old version.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/tuf"
)

// Job phases.
const (
	jobAwaitingApproval = "awaiting-approval"
	jobScheduled        = "scheduled" // approved; waits for its window
	jobRunning          = "running"
	jobSucceeded        = "succeeded"
	jobPartial          = "partially-failed"
	jobHalted           = "halted" // canary failed or too many failures: the rest was not touched
	jobFailed           = "failed"
	jobCancelled        = "cancelled"
)

// Step phases.
const (
	stepPending    = "pending"
	stepBackup     = "backup"
	stepTransfer   = "transfer"
	stepActivate   = "activate"
	stepVerify     = "verify"
	stepSoak       = "soak"
	stepCommitted  = "committed"
	stepRollback   = "rollback"
	stepRolledBack = "rolled-back"
	stepFailed     = "failed"
	stepSkipped    = "skipped"
)

// Limits of one step: transfers, resumptions of an interrupted phase, runs
// of the read-only backup, and entries into rollback.
const (
	maxAttempts  = 3
	maxRestarts  = 3
	maxBackups   = 10
	maxRollbacks = 5
)

// Job kinds.
const (
	jobKindUpdate   = ""
	jobKindRecovery = "recovery" // returns a device to an image the gateway holds
)

// notStarted is the reason of a step that ended before anything was written.
func notStarted(why string) string { return "not-started: " + why }

func jobTerminal(p string) bool {
	switch p {
	case jobSucceeded, jobPartial, jobHalted, jobFailed, jobCancelled:
		return true
	}
	return false
}

func stepTerminal(p string) bool {
	switch p {
	case stepCommitted, stepRolledBack, stepFailed, stepSkipped:
		return true
	}
	return false
}

// severityRank orders jobs: more severe first.
func severityRank(s string) int {
	switch s {
	case "critical":
		return 4
	case "high":
		return 3
	case "medium":
		return 2
	case "low":
		return 1
	}
	return 0
}

// createJob records a job for target t (already downloaded to blob) and
// the devices of one group: scheduled, or awaiting approval if the group's
// policy requires one.
func (d *Daemon) createJob(t tuf.Target, blob string, group config.Group, devs []string) error {
	now := d.now().UTC()
	phase := jobScheduled
	if group.Approval != config.ApprovalAuto {
		phase = jobAwaitingApproval
	}
	j := store.Job{
		ID: fmt.Sprintf("%s-%.8s-%s", t.Meta.Version, t.SHA256(), group.Name), Target: t.Name, SHA256: t.SHA256(),
		Hashes: t.Hashes, Length: t.Length, Version: t.Meta.Version, Counter: t.Meta.SecurityCounter,
		Severity: t.Meta.Severity, Protocol: t.Meta.Protocol, Blob: blob, Phase: phase,
		Group: group.Name, Window: group.Window, Policy: group.Approval,
		Created: now, Updated: now,
	}
	base := j.ID
	return d.st.Update(func(tx *store.Tx) error {
		for n := 2; ; n++ { // a device may need the same target again after a recovery
			if _, err := tx.Job(j.ID); errors.Is(err, store.ErrNotFound) {
				break
			}
			j.ID = fmt.Sprintf("%s-%d", base, n)
		}
		for _, id := range devs {
			rec, _ := tx.Device(id)
			j.Devices = append(j.Devices, store.Step{Device: id, Phase: stepPending, From: rec.Version})
		}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		d.log.Info("job staged", "job", j.ID, "target", j.Target, "devices", devs, "phase", phase)
		return d.recordTx(tx, j, -1, "job-"+phase, map[string]any{
			"target": j.Target, "sha256": j.SHA256, "version": j.Version, "severity": j.Severity, "policy": j.Policy})
	})
}

// runJobs approves, schedules and finishes jobs, most severe first, and
// starts a worker for every step that may run now. It runs on the loop
// goroutine only, which alone changes job-level phases.
func (d *Daemon) runJobs(ctx context.Context) {
	jobs, err := d.st.Jobs()
	if err != nil {
		d.log.Error("jobs", "err", err)
		return
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		ra, rb := severityRank(jobs[a].Severity), severityRank(jobs[b].Severity)
		if ra != rb {
			return ra > rb
		}
		return jobs[a].Created.Before(jobs[b].Created)
	})
	for _, j := range jobs {
		if jobTerminal(j.Phase) || ctx.Err() != nil {
			continue
		}
		if j.Phase == jobAwaitingApproval {
			if ok, _ := d.approved(j); !ok {
				continue
			}
			d.setJob(j.ID, jobScheduled, "approved", nil)
			j.Phase = jobScheduled
		}
		d.schedule(ctx, j)
	}
}

// schedule starts the steps of j that may run now, or ends j.
func (d *Daemon) schedule(ctx context.Context, j store.Job) {
	grp := d.groups[j.Group]
	canary := min(grp.Canary, len(j.Devices))
	var canaryDone, canaryFailed = true, false
	failures, open := 0, 0
	for i, s := range j.Devices {
		committed := s.Phase == stepCommitted
		failed := stepTerminal(s.Phase) && !committed && s.Phase != stepSkipped
		if i < canary {
			canaryDone = canaryDone && committed
			canaryFailed = canaryFailed || failed
		}
		if failed {
			failures++
		}
		if !stepTerminal(s.Phase) {
			open++
		}
	}
	if open == 0 {
		if !d.jobBusy(j.ID) {
			d.finish(j)
		}
		return
	}
	if (canaryFailed && len(j.Devices) > canary) || failures > grp.MaxFailures {
		if d.pendingSteps(j) > 0 {
			reason := fmt.Sprintf("%d device(s) failed (limit %d)", failures, grp.MaxFailures)
			if canaryFailed {
				reason = "canary did not commit"
			}
			d.halt(j, reason)
		}
		return
	}
	for i, s := range j.Devices {
		if stepTerminal(s.Phase) || d.busy(s.Device) || d.backingOff(s.Device) {
			continue
		}
		if s.Phase != stepPending {
			// Interrupted mid-phase (see resume): finish it whatever the
			// window or stop says, to reach a definite state.
			d.startWorker(ctx, j.ID, s.Device)
			continue
		}
		if i >= canary && !canaryDone {
			d.blocked.Store(s.Device, "waiting for the canary")
			continue
		}
		if ok, why := d.mayStart(ctx, j, s.Device); !ok {
			d.blocked.Store(s.Device, why)
			continue
		}
		d.blocked.Delete(s.Device)
		if j.Phase != jobRunning {
			d.setJob(j.ID, jobRunning, "", nil)
			j.Phase = jobRunning
		}
		d.startWorker(ctx, j.ID, s.Device)
	}
}

func (d *Daemon) pendingSteps(j store.Job) int {
	n := 0
	for _, s := range j.Devices {
		if s.Phase == stepPending {
			n++
		}
	}
	return n
}

// mayStart reports whether a device step may leave pending now.
func (d *Daemon) mayStart(ctx context.Context, j store.Job, id string) (bool, string) {
	now := d.now()
	switch {
	case d.stopped():
		return false, "emergency stop is active"
	case d.health.has(condAudit) || d.health.has(condStore):
		return false, "state store unwritable"
	case d.health.has(condDisk):
		return false, "state directory almost full"
	case d.health.has(condClock):
		return false, "clock unsynced"
	case now.Before(j.NotBefore):
		return false, "deferred until " + j.NotBefore.UTC().Format(time.RFC3339)
	}
	if ok, why := d.approved(j); !ok {
		return false, why
	}
	cfg := d.devCfg[id]
	w := d.windows[j.Window]
	est := estimate(cfg.Baud, j.Length) + d.groups[j.Group].Soak
	if !w.Fits(now, est) {
		return false, fmt.Sprintf("window %s: next opening %s (step needs ~%s)", w.Name, w.NextOpening(now).UTC().Format(time.RFC3339), est.Round(time.Second))
	}
	if n := d.runningCount(); n >= d.cfg.Gateway.MaxParallel {
		return false, fmt.Sprintf("%d device(s) updating (max_parallel %d)", n, d.cfg.Gateway.MaxParallel)
	}
	if other := d.segmentBusy(cfg.Segment); other != "" {
		return false, fmt.Sprintf("segment %s busy with %s", cfg.Segment, other)
	}
	if d.devs[id].Capabilities().Interlock {
		running, err := d.devs[id].Interlock(ctx)
		if err != nil {
			return false, "interlock unreadable: " + err.Error()
		}
		if running {
			return false, "blocked by interlock: process running"
		}
	}
	return true, ""
}

// estimate is a conservative duration of one device step: the transfer at
// 80 % of the line rate (8N1: 10 bits a byte) or 1 MB/s on a network, plus
// activation and verification.
func estimate(baud int, size int64) time.Duration {
	rate := float64(1 << 20)
	if baud > 0 {
		rate = float64(baud) / 10 * 0.8
	}
	return time.Duration(float64(size)/rate*float64(time.Second)) + 2*time.Minute
}

func (d *Daemon) target(j store.Job) tuf.Target {
	return tuf.Target{Name: j.Target, Length: j.Length, Hashes: j.Hashes}
}

// change is what a transition may alter beside the step's phase: the step,
// its job and the device's record, all written in the same transaction.
type change struct {
	job  *store.Job
	step *store.Step
	rec  *store.Device
}

// advance is the one writer of step transitions: it moves step dev of job
// jobID into phase next with reason why, lets mut (if not nil) change the
// step, job or device record further, records a hold when the step ends
// failed or rolled back, and writes all of it with its audit record and
// reports in one transaction. It reads the job inside the transaction, so
// workers of the same job never overwrite each other's steps. A failed
// write raises store-unwritable and backs the device off: its worker stops,
// and the next one counts the interruption before touching the device.
func (d *Daemon) advance(jobID, dev, next, why string, mut func(*change)) error {
	err := d.st.Update(func(tx *store.Tx) error {
		j, err := tx.Job(jobID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(j.Devices, func(s store.Step) bool { return s.Device == dev })
		if i < 0 {
			return fmt.Errorf("job %s has no device %s", jobID, dev)
		}
		rec, err := tx.Device(dev)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		rec.ID = dev
		s := &j.Devices[i]
		s.Phase, s.Error = next, why
		j.Updated = d.now().UTC()
		if mut != nil {
			mut(&change{job: &j, step: s, rec: &rec})
		}
		if next == stepFailed || next == stepRolledBack {
			rec.LastError = why
			if j.Kind == jobKindUpdate {
				d.holdTx(&rec, j, next+": "+why)
			}
		}
		if err := tx.PutDevice(rec); err != nil {
			return err
		}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		detail := map[string]any{"attempts": s.Attempts, "error": why}
		if next == stepCommitted {
			detail["version"], detail["floor"] = rec.Version, rec.Floor
		}
		if rec.Recovery != "" && stepTerminal(next) {
			detail["needs_recovery"] = true
		}
		return d.recordTx(tx, j, i, "step-"+next, detail)
	})
	if err != nil {
		d.storeFailed(dev, err)
		return err
	}
	d.storeOK(dev)
	d.log.Info("step", "job", jobID, "device", dev, "phase", next, "reason", why)
	return nil
}

// setJob writes job jobID's phase with a reason and audit record; mut, if
// not nil, changes the job (and through tx, device records) further in the
// same transaction.
func (d *Daemon) setJob(jobID, phase, reason string, mut func(*store.Tx, *store.Job) error) (store.Job, error) {
	var j store.Job
	err := d.st.Update(func(tx *store.Tx) error {
		var err error
		if j, err = tx.Job(jobID); err != nil {
			return err
		}
		j.Phase, j.Reason, j.Updated = phase, reason, d.now().UTC()
		if mut != nil {
			if err := mut(tx, &j); err != nil {
				return err
			}
		}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return d.recordTx(tx, j, -1, "job-"+phase, map[string]any{"reason": reason})
	})
	if err != nil {
		d.auditFailed(err)
		return j, err
	}
	d.storeOK("")
	d.log.Info("job", "job", jobID, "phase", phase, "reason", reason)
	if jobTerminal(phase) {
		if _, err := d.st.PruneJobs(jobHistory, jobTerminal); err != nil {
			d.log.Warn("prune job history", "err", err)
		}
	}
	return j, nil
}

// jobHistory is how many finished jobs the store keeps (the audit log keeps
// them all); rollback by command looks for a device's last committed update
// among them.
const jobHistory = 200

// halt ends a job early: pending devices are skipped, running ones finish.
func (d *Daemon) halt(j store.Job, reason string) {
	d.skipPending(j, jobHalted, reason)
}

// holdTx records on rec that the target of j is not offered to the device
// again on its own.
func (d *Daemon) holdTx(rec *store.Device, j store.Job, reason string) {
	if rec.HeldSHA(j.SHA256) {
		return
	}
	rec.Holds = append(rec.Holds, store.Hold{SHA256: j.SHA256, Target: j.Target, Version: j.Version,
		Job: j.ID, Reason: reason, Since: d.now().UTC()})
}

// skipPending ends job j in phase with reason: its pending devices are
// skipped, and the job's target is held for each of them (the job was
// halted or cancelled: it is not staged again on its own).
func (d *Daemon) skipPending(j store.Job, phase, reason string) error {
	_, err := d.setJob(j.ID, phase, reason, func(tx *store.Tx, j *store.Job) error {
		for i := range j.Devices {
			s := &j.Devices[i]
			if s.Phase != stepPending {
				continue
			}
			s.Phase = stepSkipped
			if j.Kind != jobKindUpdate {
				continue
			}
			rec, err := tx.Device(s.Device)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			rec.ID = s.Device
			d.holdTx(&rec, *j, phase+": "+reason)
			if err := tx.PutDevice(rec); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// finish ends a job whose steps are all terminal.
func (d *Daemon) finish(j store.Job) {
	ok, failed := 0, 0
	for _, s := range j.Devices {
		switch s.Phase {
		case stepCommitted:
			ok++
		case stepFailed, stepRolledBack:
			failed++
		}
	}
	switch {
	case ok == len(j.Devices):
		d.setJob(j.ID, jobSucceeded, "", nil)
	case ok == 0 && failed > 0:
		d.setJob(j.ID, jobFailed, "no device committed", nil)
	case failed == 0:
		d.setJob(j.ID, jobHalted, "devices skipped", nil)
	default:
		d.setJob(j.ID, jobPartial, fmt.Sprintf("%d of %d devices committed", ok, len(j.Devices)), nil)
	}
}

// auditFailed handles a job transition that could not be written: no
// device step starts until the store works again.
func (d *Daemon) auditFailed(err error) {
	d.storeFailed("", err)
}

// Backoff of a device whose transition could not be written.
const (
	minStoreBackoff = 5 * time.Second
	maxStoreBackoff = 5 * time.Minute
)

// storeFailed records a write that failed: store-unwritable is raised, no
// device step starts, and dev (if not "") gets no worker until its backoff
// (doubling from minStoreBackoff) has passed. The error is logged once per
// backoff, not once per attempt.
func (d *Daemon) storeFailed(dev string, err error) {
	d.health.set(condStore, "", "error", "state store unwritable: "+err.Error())
	d.mu.Lock()
	b := d.backoff[dev]
	b.delay = min(max(2*b.delay, minStoreBackoff), maxStoreBackoff)
	b.until = d.now().Add(b.delay)
	d.backoff[dev] = b
	d.mu.Unlock()
	if d.errlog.allow("store:"+dev, b.delay) {
		d.log.Error("state store write failed; no device step starts", "device", dev, "err", err, "retry_in", b.delay)
	}
}

// storeOK clears the backoff of dev after a successful write.
func (d *Daemon) storeOK(dev string) {
	d.health.clear(condStore, "")
	d.mu.Lock()
	delete(d.backoff, dev)
	d.mu.Unlock()
}

// backingOff reports whether dev waits out a backoff.
func (d *Daemon) backingOff(dev string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.backoff[dev]
	return ok && d.now().Before(b.until)
}

// backOff keeps dev's worker from starting for delay (e.g. no disk space
// for its backup).
func (d *Daemon) backOff(dev string, delay time.Duration) {
	d.mu.Lock()
	d.backoff[dev] = backoff{delay: delay, until: d.now().Add(delay)}
	d.mu.Unlock()
}

type backoff struct {
	delay time.Duration
	until time.Time
}
