// SPDX-License-Identifier: Apache-2.0

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
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/tuf"
)

// machine is the job state machine: it stages jobs, schedules their device
// steps, runs one worker per running step and writes every transition. It
// owns only what a transition needs; the Daemon around it refreshes,
// reports and takes commands, and calls into it.
type machine struct {
	st      *store.Store
	cfg     *config.Config
	devs    map[string]devices.Device
	devCfg  map[string]config.Device
	groups  map[string]config.Group
	windows map[string]*Window
	backups string // directory of device backups
	now     func() time.Time
	log     *slog.Logger
	rep     *reporter
	live    *live
	health  *health
	pulse   *liveness
	errlog  *ratelimit
	meter   Meter
	kicks   chan struct{} // the loop schedules again
	// admits reports whether the rollout of a job's target, as last
	// verified, still admits this gateway; nil admits every job.
	admits func(store.Job) (bool, string)
	// priority ranks a device by its advisory priority (0 act … 3 none),
	// for the order of jobs; nil ranks every device alike.
	priority func(dev string) int

	pollInterval time.Duration // interlock and soak probes

	workers sync.WaitGroup
	mu      sync.Mutex         // guards the fields below
	running map[string]string  // device id -> job id of its running worker
	backoff map[string]backoff // device id ("" for jobs) -> when its worker may start again
}

// phase is a job's or a step's phase. The names are persisted and
// published: never change their meaning.
type phase = store.Phase

// Job phases.
const (
	jobAwaitingApproval phase = "awaiting-approval"
	jobScheduled        phase = "scheduled" // approved; waits for its window
	jobRunning          phase = "running"
	jobSucceeded        phase = "succeeded"
	jobPartial          phase = "partially-failed"
	jobHalted           phase = "halted" // canary failed or too many failures: the rest was not touched
	jobFailed           phase = "failed"
	jobCancelled        phase = "cancelled"
)

// Step phases.
const (
	stepPending    phase = "pending"
	stepBackup     phase = "backup"
	stepTransfer   phase = "transfer"
	stepActivate   phase = "activate"
	stepVerify     phase = "verify"
	stepSoak       phase = "soak"
	stepCommitted  phase = "committed"
	stepRollback   phase = "rollback"
	stepRolledBack phase = "rolled-back"
	stepFailed     phase = "failed"
	stepSkipped    phase = "skipped"
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

func jobTerminal(p phase) bool {
	switch p {
	case jobSucceeded, jobPartial, jobHalted, jobFailed, jobCancelled:
		return true
	}
	return false
}

func stepTerminal(p phase) bool {
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

// orderJobs sorts jobs in the order they are scheduled: by the most urgent
// advisory priority of their devices (act, attend, track, none: rank gives
// a device's, lower first; nil ranks every device alike), then by the
// target's signed severity, then oldest first.
func orderJobs(jobs []store.Job, rank func(dev string) int) {
	urgency := func(j store.Job) int {
		best := 3
		if rank != nil {
			for _, s := range j.Devices {
				best = min(best, rank(s.Device))
			}
		}
		return best
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		if ua, ub := urgency(jobs[a]), urgency(jobs[b]); ua != ub {
			return ua < ub
		}
		ra, rb := severityRank(jobs[a].Severity), severityRank(jobs[b].Severity)
		if ra != rb {
			return ra > rb
		}
		return jobs[a].Created.Before(jobs[b].Created)
	})
}

// createJob records a job for target t (already downloaded to blob) and
// the devices of one group: scheduled, or awaiting approval if the group's
// policy requires one.
func (m *machine) createJob(t tuf.Target, blob string, group config.Group, devs []string) error {
	now := m.now().UTC()
	ph := jobScheduled
	if group.Approval != config.ApprovalAuto || len(group.RequireTested) > 0 {
		ph = jobAwaitingApproval
	}
	j := store.Job{
		ID: fmt.Sprintf("%s-%.8s-%s", t.Meta.Version, t.SHA256(), group.Name), Target: t.Name, SHA256: t.SHA256(),
		Hashes: t.Hashes, Length: t.Length, Version: t.Meta.Version, Counter: t.Meta.SecurityCounter,
		Severity: t.Meta.Severity, Protocol: t.Meta.Protocol, Blob: blob, Phase: ph,
		Group: group.Name, Window: group.Window, Policy: group.Approval,
		Created: now, Updated: now,
	}
	base := j.ID
	return m.st.Update(func(tx *store.Tx) error {
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
		m.log.Info("job staged", "job", j.ID, "target", j.Target, "devices", devs, "phase", ph)
		return m.recordTx(tx, j, -1, "job-"+string(ph), map[string]any{
			"target": j.Target, "sha256": j.SHA256, "version": j.Version, "severity": j.Severity, "policy": j.Policy})
	})
}

// runJobs approves, schedules and finishes jobs, most severe first, and
// starts a worker for every step that may run now. It runs on the loop
// goroutine only, which alone changes job-level phases.
func (m *machine) runJobs(ctx context.Context) {
	jobs, err := m.st.Jobs()
	if err != nil {
		m.log.Error("jobs", "err", err)
		return
	}
	orderJobs(jobs, m.priority)
	for _, j := range jobs {
		if jobTerminal(j.Phase) || ctx.Err() != nil {
			continue
		}
		if j.Phase == jobAwaitingApproval {
			if ok, _ := m.approved(j); !ok {
				continue
			}
			m.setJob(j.ID, jobScheduled, "approved", nil)
			j.Phase = jobScheduled
		}
		m.schedule(ctx, j)
	}
}

// schedule starts the steps of j that may run now, or ends j.
func (m *machine) schedule(ctx context.Context, j store.Job) {
	grp := m.groups[j.Group]
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
		if !m.jobBusy(j.ID) {
			m.finish(j)
		}
		return
	}
	if (canaryFailed && len(j.Devices) > canary) || failures > grp.MaxFailures {
		if m.pendingSteps(j) > 0 {
			reason := fmt.Sprintf("%d device(s) failed (limit %d)", failures, grp.MaxFailures)
			if canaryFailed {
				reason = "canary did not commit"
			}
			m.halt(j, reason)
		}
		return
	}
	for i, s := range j.Devices {
		if stepTerminal(s.Phase) || m.busy(s.Device) || m.backingOff(s.Device) {
			continue
		}
		if s.Phase != stepPending {
			// Interrupted mid-phase (see work): finish it whatever the
			// window or stop says, to reach a definite state.
			m.startWorker(ctx, j.ID, s.Device)
			continue
		}
		if ok, why := m.rolloutAdmits(j); !ok {
			// Halted (or narrowed) by newly signed metadata: a running
			// step finished above; a pending one waits until widened.
			m.live.block(s.Device, block{blockRollout, "rollout halted: " + why})
			continue
		}
		if i >= canary && !canaryDone {
			m.live.block(s.Device, block{blockCanary, "waiting for the canary"})
			continue
		}
		if ok, b := m.mayStart(ctx, j, s.Device); !ok {
			m.live.block(s.Device, b)
			continue
		}
		m.live.unblock(s.Device)
		if j.Phase != jobRunning {
			m.setJob(j.ID, jobRunning, "", nil)
			j.Phase = jobRunning
		}
		m.startWorker(ctx, j.ID, s.Device)
	}
}

// rolloutAdmits reports whether pending steps of j may start as far as the
// rollout of its target is concerned. A recovery job returns a device to an
// image the gateway holds, whatever a rollout says.
func (m *machine) rolloutAdmits(j store.Job) (bool, string) {
	if m.admits == nil || j.Kind == jobKindRecovery {
		return true, ""
	}
	return m.admits(j)
}

func (m *machine) pendingSteps(j store.Job) int {
	n := 0
	for _, s := range j.Devices {
		if s.Phase == stepPending {
			n++
		}
	}
	return n
}

// mayStart reports whether a device step may leave pending now.
func (m *machine) mayStart(ctx context.Context, j store.Job, id string) (bool, block) {
	now := m.now()
	switch {
	case m.stopped():
		return false, block{blockWaiting, "emergency stop is active"}
	case m.health.has(condAudit) || m.health.has(condStore):
		return false, block{blockWaiting, "state store unwritable"}
	case m.health.has(condDisk):
		return false, block{blockWaiting, "state directory almost full"}
	case m.health.has(condClock):
		return false, block{blockWaiting, "clock unsynced"}
	case now.Before(j.NotBefore):
		return false, block{blockWaiting, "deferred until " + j.NotBefore.UTC().Format(time.RFC3339)}
	}
	if ok, why := m.approved(j); !ok {
		return false, block{blockWaiting, why}
	}
	cfg := m.devCfg[id]
	w := m.windows[j.Window]
	est := estimate(cfg.Baud, j.Length) + m.groups[j.Group].Soak
	if !w.Fits(now, est) {
		return false, block{blockWaiting, fmt.Sprintf("window %s: next opening %s (step needs ~%s)", w.Name, w.NextOpening(now).UTC().Format(time.RFC3339), est.Round(time.Second))}
	}
	if n := m.runningCount(); n >= m.cfg.Gateway.MaxParallel {
		return false, block{blockWaiting, fmt.Sprintf("%d device(s) updating (max_parallel %d)", n, m.cfg.Gateway.MaxParallel)}
	}
	if other := m.segmentBusy(cfg.Segment); other != "" {
		return false, block{blockWaiting, fmt.Sprintf("segment %s busy with %s", cfg.Segment, other)}
	}
	if m.devs[id].Capabilities().Interlock {
		running, err := m.devs[id].Interlock(ctx)
		if err != nil {
			return false, block{blockInterlock, "interlock unreadable: " + err.Error()}
		}
		if running {
			return false, block{blockInterlock, "blocked by interlock: process running"}
		}
	}
	return true, block{}
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

func (m *machine) target(j store.Job) tuf.Target {
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
func (m *machine) advance(jobID, dev string, next phase, why string, mut func(*change)) error {
	err := m.st.Update(func(tx *store.Tx) error {
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
		j.Updated = m.now().UTC()
		if mut != nil {
			mut(&change{job: &j, step: s, rec: &rec})
		}
		if next == stepFailed || next == stepRolledBack {
			rec.LastError = why
			if j.Kind == jobKindUpdate {
				m.holdTx(&rec, j, string(next)+": "+why)
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
		return m.recordTx(tx, j, i, "step-"+string(next), detail)
	})
	if err != nil {
		m.storeFailed(dev, err)
		return err
	}
	m.storeOK(dev)
	m.log.Info("step", "job", jobID, "device", dev, "phase", next, "reason", why)
	if next == stepCommitted {
		m.testCommitted(jobID, dev)
	}
	return nil
}

// waiting is what job j as a whole waits for: an approval, if it awaits one.
func (m *machine) waiting(j store.Job) string {
	if j.Phase != jobAwaitingApproval {
		return ""
	}
	_, why := m.approved(j)
	return why
}

// recordTx records a transition of job j (and step i, if i >= 0) in tx.
func (m *machine) recordTx(tx *store.Tx, j store.Job, i int, typ string, detail map[string]any) error {
	return m.rep.record(tx, j, i, typ, detail, m.waiting(j))
}

// setJob writes job jobID's phase with a reason and audit record; mut, if
// not nil, changes the job (and through tx, device records) further in the
// same transaction.
func (m *machine) setJob(jobID string, ph phase, reason string, mut func(*store.Tx, *store.Job) error) (store.Job, error) {
	var j store.Job
	err := m.st.Update(func(tx *store.Tx) error {
		var err error
		if j, err = tx.Job(jobID); err != nil {
			return err
		}
		j.Phase, j.Reason, j.Updated = ph, reason, m.now().UTC()
		if mut != nil {
			if err := mut(tx, &j); err != nil {
				return err
			}
		}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return m.recordTx(tx, j, -1, "job-"+string(ph), map[string]any{"reason": reason})
	})
	if err != nil {
		m.auditFailed(err)
		return j, err
	}
	m.storeOK("")
	m.log.Info("job", "job", jobID, "phase", ph, "reason", reason)
	if jobTerminal(ph) {
		if _, err := m.st.PruneJobs(jobHistory, jobTerminal); err != nil {
			m.log.Warn("prune job history", "err", err)
		}
	}
	return j, nil
}

// jobHistory is how many finished jobs the store keeps (the audit log keeps
// them all); rollback by command looks for a device's last committed update
// among them.
const jobHistory = 200

// halt ends a job early: pending devices are skipped, running ones finish.
func (m *machine) halt(j store.Job, reason string) {
	m.skipPending(j, jobHalted, reason)
}

// holdTx records on rec that the target of j is not offered to the device
// again on its own.
func (m *machine) holdTx(rec *store.Device, j store.Job, reason string) {
	if rec.HeldSHA(j.SHA256) {
		return
	}
	rec.Holds = append(rec.Holds, store.Hold{SHA256: j.SHA256, Target: j.Target, Version: j.Version,
		Job: j.ID, Reason: reason, Since: m.now().UTC()})
}

// skipPending ends job j in phase with reason: its pending devices are
// skipped, and the job's target is held for each of them (the job was
// halted or cancelled: it is not staged again on its own).
func (m *machine) skipPending(j store.Job, ph phase, reason string) error {
	_, err := m.setJob(j.ID, ph, reason, func(tx *store.Tx, j *store.Job) error {
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
			m.holdTx(&rec, *j, string(ph)+": "+reason)
			if err := tx.PutDevice(rec); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// finish ends a job whose steps are all terminal.
func (m *machine) finish(j store.Job) {
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
		m.setJob(j.ID, jobSucceeded, "", nil)
	case ok == 0 && failed > 0:
		m.setJob(j.ID, jobFailed, "no device committed", nil)
	case failed == 0:
		m.setJob(j.ID, jobHalted, "devices skipped", nil)
	default:
		m.setJob(j.ID, jobPartial, fmt.Sprintf("%d of %d devices committed", ok, len(j.Devices)), nil)
	}
}

// auditFailed handles a job transition that could not be written: no
// device step starts until the store works again.
func (m *machine) auditFailed(err error) {
	m.storeFailed("", err)
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
func (m *machine) storeFailed(dev string, err error) {
	m.health.set(condStore, "", "state store unwritable: "+err.Error())
	m.mu.Lock()
	b := m.backoff[dev]
	b.delay = min(max(2*b.delay, minStoreBackoff), maxStoreBackoff)
	b.until = m.now().Add(b.delay)
	m.backoff[dev] = b
	m.mu.Unlock()
	if m.errlog.allow("store:"+dev, b.delay) {
		m.log.Error("state store write failed; no device step starts", "device", dev, "err", err, "retry_in", b.delay)
	}
}

// storeOK clears the backoff of dev after a successful write.
func (m *machine) storeOK(dev string) {
	m.health.clear(condStore, "")
	m.mu.Lock()
	delete(m.backoff, dev)
	m.mu.Unlock()
}

// backingOff reports whether dev waits out a backoff.
func (m *machine) backingOff(dev string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.backoff[dev]
	return ok && m.now().Before(b.until)
}

// backOff keeps dev's worker from starting for delay (e.g. no disk space
// for its backup).
func (m *machine) backOff(dev string, delay time.Duration) {
	m.mu.Lock()
	m.backoff[dev] = backoff{delay: delay, until: m.now().Add(delay)}
	m.mu.Unlock()
}

type backoff struct {
	delay time.Duration
	until time.Time
}

// work runs phases until the step is terminal. After the daemon's context
// ends it starts no new phase: the phase in flight finishes under its own
// deadline (transfers abort and are resumed, counted, at the next start).
// A step found in the middle of a phase was interrupted (a crash, or a
// transition that could not be written): the interruption is counted
// durably before the phase runs again, so a phase that keeps failing, or a
// store that keeps refusing writes, cannot loop on the device.
func (m *machine) work(ctx context.Context, jobID, dev string) {
	log := m.log.With("job", jobID, "device", dev)
	first := true
	for ctx.Err() == nil {
		j, err := m.st.Job(jobID)
		if err != nil {
			log.Error("worker", "err", err)
			return
		}
		i := slices.IndexFunc(j.Devices, func(s store.Step) bool { return s.Device == dev })
		if i < 0 || stepTerminal(j.Devices[i].Phase) {
			return
		}
		resumed := first && j.Devices[i].Phase != stepPending
		first = false
		if resumed {
			if !m.interrupted(ctx, j, i) {
				return
			}
			continue
		}
		if !m.step(ctx, j, i) {
			return
		}
	}
}

// interrupted counts the interruption of step i's phase and moves it on:
// the same phase again, or rollback or failed once its counter is spent.
// It returns false when the worker should stop.
func (m *machine) interrupted(ctx context.Context, j store.Job, i int) bool {
	s := j.Devices[i]
	why := "resumed after interruption in " + string(s.Phase)
	m.log.Warn("resuming interrupted step", "job", j.ID, "device", s.Device, "phase", s.Phase,
		"attempts", s.Attempts, "restarts", s.Restarts, "rollbacks", s.Rollbacks)
	next, mut := s.Phase, func(c *change) { c.step.Restarts++ }
	if s.Phase != stepBackup && s.Phase != stepTransfer {
		m.resumeDevice(j, s.Device)
	}
	switch s.Phase {
	case stepBackup: // read-only: run it again
		if s.Restarts >= maxBackups {
			return m.advance(j.ID, s.Device, stepFailed, notStarted(fmt.Sprintf("backup interrupted %d times", s.Restarts)), nil) == nil
		}
	case stepTransfer: // whatever was written, the device may hold part of it
		mut = func(c *change) { c.step.Restarts++; c.step.Attempts++; c.step.Wrote = true }
		if s.Attempts >= maxAttempts {
			return m.toRollback(ctx, j, i, why+" (attempts spent)")
		}
	case stepRollback:
		if s.Rollbacks >= maxRollbacks {
			return m.fail(ctx, j, i, fmt.Sprintf("rollback interrupted %d times (after: %s)", s.Rollbacks, s.Error))
		}
		return m.toRollback(ctx, j, i, s.Error)
	default: // activate, verify, soak
		if s.Restarts >= maxRestarts {
			return m.toRollback(ctx, j, i, why+" (restarts spent)")
		}
	}
	return m.advance(j.ID, s.Device, next, why, mut) == nil
}

// resumeDevice tells a device opened after a restart which image its job
// transferred (devices.Resumer), so that activating, testing, confirming
// or reverting acts on that image and not on whatever a slot holds now.
func (m *machine) resumeDevice(j store.Job, id string) {
	r, ok := m.devs[id].(devices.Resumer)
	if !ok {
		return
	}
	f, err := os.Open(j.Blob)
	if err == nil {
		defer f.Close()
		img := devices.Image{Name: j.Target, Version: j.Version, Size: j.Length, SHA256: j.SHA256}
		err = r.Resume(img, io.LimitReader(f, j.Length))
	}
	if err != nil {
		m.log.Warn("resume: the device could not be told its job's image", "job", j.ID, "device", id, "err", err)
	}
}

// toRollback moves step i into rollback, counting the entry; a recovery
// job has nothing to roll back to and ends failed instead.
func (m *machine) toRollback(ctx context.Context, j store.Job, i int, why string) bool {
	if j.Kind == jobKindRecovery {
		return m.fail(ctx, j, i, why)
	}
	return m.advance(j.ID, j.Devices[i].Device, stepRollback, why, func(c *change) {
		c.step.Rollbacks++
		c.step.Wrote = true
	}) == nil
}

// fail ends step i failed after the device may have been written: it reads
// the device's version back and records what the device says it runs, or,
// when it says nothing, that the device needs recovery. The old version is
// never assumed.
func (m *machine) fail(ctx context.Context, j store.Job, i int, why string) bool {
	s := j.Devices[i]
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), phaseTimeout)
	id, err := m.devs[s.Device].Identify(rctx)
	cancel()
	m.noteReach(s.Device, err)
	return m.advance(j.ID, s.Device, stepFailed, why, func(c *change) {
		if err == nil && id.Version != "" {
			c.rec.Version, c.rec.ImageSHA256, c.rec.Recovery = id.Version, id.ImageSHA256, ""
			c.rec.LastSeen = m.now().UTC()
			return
		}
		reason := "device reports no running version"
		if err != nil {
			reason = "device unreadable: " + err.Error()
		}
		c.rec.Version, c.rec.ImageSHA256 = "", ""
		c.rec.Recovery = why + "; " + reason
	}) == nil
}

// step performs the side effect of step i's phase and records the next
// phase. It returns false when the worker should stop.
func (m *machine) step(ctx context.Context, j store.Job, i int) bool {
	s := j.Devices[i]
	dev := m.devs[s.Device]
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), phaseTimeout)
	defer cancel()
	// The watchdog counts a phase past its bound as a hung daemon; phases
	// that wait on purpose (interlock, soak) poll and are bounded by the
	// window instead.
	switch s.Phase {
	case stepBackup, stepVerify, stepRollback:
		defer m.pulse.phase(s.Device, time.Now().Add(phaseTimeout))()
	case stepTransfer:
		defer m.pulse.phase(s.Device, time.Now().Add(2*estimate(m.devCfg[s.Device].Baud, j.Length)))()
	}
	next := func(ph phase, why string, mut func(*change)) bool {
		return m.advance(j.ID, s.Device, ph, why, mut) == nil
	}
	switch s.Phase {
	case stepPending:
		// Nothing unverified reaches a device: re-hash the blob now.
		if err := tuf.VerifyFile(j.Blob, m.target(j)); err != nil {
			m.health.set(condVerify, j.Target, err.Error())
			return next(stepFailed, notStarted("image failed re-verification before the push: "+err.Error()), nil)
		}
		return next(stepBackup, "", nil)

	case stepBackup:
		if j.Kind == jobKindRecovery || !dev.Capabilities().ReadBack {
			// A device being recovered holds nothing worth keeping; one
			// that cannot read back relies on the images the gateway holds.
			return next(stepTransfer, "", func(c *change) { c.step.Attempts++ })
		}
		rec, _ := m.st.Device(s.Device)
		b, err := m.backup(pctx, dev, s.Device, rec)
		switch {
		case err == nil:
			return next(stepTransfer, "", func(c *change) {
				c.step.Backup = b.Path
				c.step.Attempts++
				c.rec.Backups = m.keepBackup(c.rec.Backups, b)
			})
		case errors.Is(err, syscall.ENOSPC):
			// Nothing was written to the device: wait for space, not fail.
			m.health.set(condDisk, "", "no space for the backup of "+s.Device+": "+err.Error())
			m.backOff(s.Device, time.Minute)
			next(stepPending, "waiting for space for the backup: "+err.Error(), nil)
			return false
		case errors.Is(err, errNoVersion):
			return m.fail(ctx, j, i, "backup: "+err.Error())
		}
		return next(stepFailed, notStarted("backup: "+err.Error()), nil)

	case stepTransfer:
		tctx, cancel := context.WithTimeout(ctx, 2*estimate(m.devCfg[s.Device].Baud, j.Length))
		defer cancel()
		err := m.push(tctx, dev, j, s.Device)
		if ctx.Err() != nil {
			return false // shutting down: the next start counts the interruption
		}
		if err != nil {
			m.noteReach(s.Device, err)
			wrote := s.Wrote || !devices.IsUntouched(err)
			if devices.IsTransient(err) && s.Attempts < maxAttempts {
				return next(stepTransfer, err.Error(), func(c *change) { c.step.Attempts++; c.step.Wrote = wrote })
			}
			if !wrote {
				return next(stepFailed, notStarted("transfer: "+err.Error()), nil)
			}
			return m.toRollback(ctx, j, i, "transfer: "+err.Error())
		}
		return next(stepActivate, "", func(c *change) { c.step.Wrote = true })

	case stepActivate:
		if why := m.waitInterlock(ctx, j, s.Device); why != "" {
			if ctx.Err() != nil {
				return false
			}
			return m.toRollback(ctx, j, i, why)
		}
		if err := dev.Activate(pctx); err != nil {
			return m.toRollback(ctx, j, i, "activate: "+err.Error())
		}
		return next(stepVerify, "", nil)

	case stepVerify:
		if _, err := m.verify(pctx, s.Device, j); err != nil {
			m.health.set(condDevice, s.Device, err.Error())
			return m.toRollback(ctx, j, i, "verify: "+err.Error())
		}
		m.health.clear(condDevice, s.Device)
		soak := m.groups[j.Group].Soak
		return next(stepSoak, "", func(c *change) { c.step.SoakUntil = m.now().Add(soak).UTC() })

	case stepSoak:
		if err := m.soak(ctx, dev, s.SoakUntil); err != nil {
			if ctx.Err() != nil {
				return false // the soak continues after restart until SoakUntil
			}
			return m.toRollback(ctx, j, i, "soak: "+err.Error())
		}
		id, err := m.verify(pctx, s.Device, j)
		if err == nil {
			err = dev.Commit(pctx)
		}
		if err != nil {
			return m.toRollback(ctx, j, i, "commit: "+err.Error())
		}
		return next(stepCommitted, "", m.committed(j, id))

	case stepRollback:
		id, err := m.rollback(pctx, dev, j, s)
		if err != nil {
			return m.fail(ctx, j, i, "rollback: "+err.Error()+" (after: "+s.Error+")")
		}
		return next(stepRolledBack, s.Error, func(c *change) {
			c.rec.Version, c.rec.ImageSHA256, c.rec.Recovery = id.Version, id.ImageSHA256, ""
			c.rec.RolledBack = fmt.Sprintf("rolled back from %s to %s after: %s", j.Version, id.Version, s.Error)
		})
	}
	return false
}

// committed is the mutation of a verified update: the device's new version
// becomes its known-good state, the committed image is kept as an image of
// that version, and the anti-rollback floor rises to the target's security
// counter, in the same transaction as the step's transition.
func (m *machine) committed(j store.Job, id devices.Identity) func(*change) {
	return func(c *change) {
		r := c.rec
		r.Version, r.ImageSHA256 = id.Version, id.ImageSHA256
		r.KnownGood, r.KnownGoodBlob = id.Version, j.Blob
		r.LastSeen, r.LastError, r.Recovery, r.RolledBack = c.job.Updated, "", "", ""
		if j.Counter > r.Floor {
			r.Floor = j.Counter
		}
		if j.Blob != "" {
			r.Backups = m.keepBackup(r.Backups, store.Backup{Version: id.Version, SHA256: j.SHA256, Size: j.Length, Path: j.Blob, Taken: c.job.Updated})
		}
	}
}

// A worker drives one device step from its current phase to a terminal
// phase, or until it must wait. The loop starts at most one per device.

func (m *machine) startWorker(ctx context.Context, jobID, dev string) {
	m.mu.Lock()
	m.running[dev] = jobID
	m.mu.Unlock()
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		defer func() {
			m.mu.Lock()
			delete(m.running, dev)
			m.mu.Unlock()
			m.kick()
		}()
		m.work(ctx, jobID, dev)
	}()
}

func (m *machine) busy(dev string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.running[dev]
	return ok
}

func (m *machine) jobBusy(jobID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.running {
		if j == jobID {
			return true
		}
	}
	return false
}

func (m *machine) runningCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.running)
}

// segmentBusy returns a running device on segment seg, or "".
func (m *machine) segmentBusy(seg string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for dev := range m.running {
		if m.devCfg[dev].Segment == seg {
			return dev
		}
	}
	return ""
}
