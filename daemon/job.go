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
//	failures after the push ──▶ rollback ──▶ rolled-back | failed
//
// Each transition is written (with its audit record and reports) in one
// transaction before the side effect of the phase it enters runs, so after a
// kill -9 the daemon runs the persisted phase again. Attempts counts entries
// into transfer and resumptions of interrupted phases; past maxAttempts the
// step rolls back, and a rollback interrupted too often ends failed: no loop
// outlives its counter.

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

// maxAttempts bounds transfers (and resumptions) of one step.
const maxAttempts = 3

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
		return d.recordTx(tx, j, -1, "job-"+phase, map[string]string{
			"target": j.Target, "sha256": j.SHA256, "version": j.Version, "severity": j.Severity, "policy": j.Policy})
	})
}

// resume runs once at start: a step found in the middle of a phase was
// interrupted (crash, power loss); count that as an attempt so that a
// phase which kills the daemon cannot loop forever.
func (d *Daemon) resume() {
	jobs, err := d.st.Jobs()
	if err != nil {
		d.log.Error("resume", "err", err)
		return
	}
	for _, j := range jobs {
		if jobTerminal(j.Phase) {
			continue
		}
		for _, s := range j.Devices {
			if s.Phase == stepPending || stepTerminal(s.Phase) {
				continue
			}
			next := s.Phase
			switch {
			case s.Attempts >= maxAttempts+2:
				next = stepFailed
			case s.Attempts >= maxAttempts && s.Phase != stepRollback:
				next = stepRollback
			}
			d.log.Warn("resuming interrupted step", "job", j.ID, "device", s.Device, "phase", s.Phase, "next", next)
			d.setStep(j.ID, s.Device, next, "resumed after interruption in "+s.Phase, func(s *store.Step) { s.Attempts++ })
		}
	}
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
		if stepTerminal(s.Phase) || d.busy(s.Device) {
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
	case d.health.has(condAudit):
		return false, "audit log unwritable"
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

// setStep writes step dev of job jobID into phase next (with its audit
// record and reports) in one transaction; mut, if not nil, changes the step
// further. It reads the job inside the transaction, so workers of the same
// job never overwrite each other's steps.
func (d *Daemon) setStep(jobID, dev, next, errText string, mut func(*store.Step)) (store.Job, error) {
	var j store.Job
	err := d.st.Update(func(tx *store.Tx) error {
		var err error
		if j, err = tx.Job(jobID); err != nil {
			return err
		}
		i := slices.IndexFunc(j.Devices, func(s store.Step) bool { return s.Device == dev })
		if i < 0 {
			return fmt.Errorf("job %s has no device %s", jobID, dev)
		}
		s := &j.Devices[i]
		s.Phase, s.Error = next, errText
		if mut != nil {
			mut(s)
		}
		j.Updated = d.now().UTC()
		if err := tx.PutJob(j); err != nil {
			return err
		}
		detail := map[string]string{"attempts": fmt.Sprint(s.Attempts)}
		if errText != "" {
			detail["error"] = errText
		}
		if next == stepFailed || next == stepRolledBack {
			rec, _ := tx.Device(dev)
			rec.ID, rec.LastError = dev, errText
			if err := tx.PutDevice(rec); err != nil {
				return err
			}
		}
		return d.recordTx(tx, j, i, "step-"+next, detail)
	})
	if err != nil {
		d.auditFailed(err)
		return j, err
	}
	d.health.clear(condAudit, "")
	d.log.Info("step", "job", jobID, "device", dev, "phase", next, "error", errText)
	return j, nil
}

// setJob writes job jobID's phase with a reason and audit record; mut, if
// not nil, changes the job further in the same transaction.
func (d *Daemon) setJob(jobID, phase, reason string, mut func(*store.Job)) (store.Job, error) {
	var j store.Job
	err := d.st.Update(func(tx *store.Tx) error {
		var err error
		if j, err = tx.Job(jobID); err != nil {
			return err
		}
		j.Phase, j.Reason, j.Updated = phase, reason, d.now().UTC()
		if mut != nil {
			mut(&j)
		}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return d.recordTx(tx, j, -1, "job-"+phase, map[string]string{"reason": reason})
	})
	if err != nil {
		d.auditFailed(err)
		return j, err
	}
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

func (d *Daemon) skipPending(j store.Job, phase, reason string) {
	d.setJob(j.ID, phase, reason, func(j *store.Job) {
		for i := range j.Devices {
			if j.Devices[i].Phase == stepPending {
				j.Devices[i].Phase = stepSkipped
			}
		}
	})
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

// auditFailed handles a transition that could not be written: no device
// step starts until the store works again.
func (d *Daemon) auditFailed(err error) {
	d.health.set(condAudit, "", "error", err.Error())
	d.log.Error("state/audit write failed; no device step starts", "err", err)
}
