package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/tuf"
)

// phaseTimeout bounds every phase except transfer, whose deadline follows
// from the image size and the line rate.
const phaseTimeout = 3 * time.Minute

// A worker drives one device step from its current phase to a terminal
// phase, or until it must wait. The loop starts at most one per device.

func (d *Daemon) startWorker(ctx context.Context, jobID, dev string) {
	d.mu.Lock()
	d.running[dev] = jobID
	d.mu.Unlock()
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		defer func() {
			d.mu.Lock()
			delete(d.running, dev)
			d.mu.Unlock()
			d.kick()
		}()
		d.work(ctx, jobID, dev)
	}()
}

func (d *Daemon) busy(dev string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.running[dev]
	return ok
}

func (d *Daemon) jobBusy(jobID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.running {
		if j == jobID {
			return true
		}
	}
	return false
}

func (d *Daemon) runningCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.running)
}

// segmentBusy returns a running device on segment seg, or "".
func (d *Daemon) segmentBusy(seg string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for dev := range d.running {
		if d.devCfg[dev].Segment == seg {
			return dev
		}
	}
	return ""
}

// work runs phases until the step is terminal. After the daemon's context
// ends it starts no new phase: the phase in flight finishes under its own
// deadline (transfers abort and are resumed, counted, at the next start).
// A step found in the middle of a phase was interrupted (a crash, or a
// transition that could not be written): the interruption is counted
// durably before the phase runs again, so a phase that keeps failing, or a
// store that keeps refusing writes, cannot loop on the device.
func (d *Daemon) work(ctx context.Context, jobID, dev string) {
	log := d.log.With("job", jobID, "device", dev)
	first := true
	for ctx.Err() == nil {
		j, err := d.st.Job(jobID)
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
			if !d.interrupted(ctx, j, i) {
				return
			}
			continue
		}
		if !d.step(ctx, j, i) {
			return
		}
	}
}

// interrupted counts the interruption of step i's phase and moves it on:
// the same phase again, or rollback or failed once its counter is spent.
// It returns false when the worker should stop.
func (d *Daemon) interrupted(ctx context.Context, j store.Job, i int) bool {
	s := j.Devices[i]
	why := "resumed after interruption in " + s.Phase
	d.log.Warn("resuming interrupted step", "job", j.ID, "device", s.Device, "phase", s.Phase,
		"attempts", s.Attempts, "restarts", s.Restarts, "rollbacks", s.Rollbacks)
	next, mut := s.Phase, func(c *change) { c.step.Restarts++ }
	if s.Phase != stepBackup && s.Phase != stepTransfer {
		d.resumeDevice(j, s.Device)
	}
	switch s.Phase {
	case stepBackup: // read-only: run it again
		if s.Restarts >= maxBackups {
			return d.advance(j.ID, s.Device, stepFailed, notStarted(fmt.Sprintf("backup interrupted %d times", s.Restarts)), nil) == nil
		}
	case stepTransfer: // whatever was written, the device may hold part of it
		mut = func(c *change) { c.step.Restarts++; c.step.Attempts++; c.step.Wrote = true }
		if s.Attempts >= maxAttempts {
			return d.toRollback(ctx, j, i, why+" (attempts spent)")
		}
	case stepRollback:
		if s.Rollbacks >= maxRollbacks {
			return d.fail(ctx, j, i, fmt.Sprintf("rollback interrupted %d times (after: %s)", s.Rollbacks, s.Error))
		}
		return d.toRollback(ctx, j, i, s.Error)
	default: // activate, verify, soak
		if s.Restarts >= maxRestarts {
			return d.toRollback(ctx, j, i, why+" (restarts spent)")
		}
	}
	return d.advance(j.ID, s.Device, next, why, mut) == nil
}

// resumeDevice tells a device opened after a restart which image its job
// transferred (devices.Resumer), so that activating, testing, confirming
// or reverting acts on that image and not on whatever a slot holds now.
func (d *Daemon) resumeDevice(j store.Job, id string) {
	r, ok := d.devs[id].(devices.Resumer)
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
		d.log.Warn("resume: the device could not be told its job's image", "job", j.ID, "device", id, "err", err)
	}
}

// toRollback moves step i into rollback, counting the entry; a recovery
// job has nothing to roll back to and ends failed instead.
func (d *Daemon) toRollback(ctx context.Context, j store.Job, i int, why string) bool {
	if j.Kind == jobKindRecovery {
		return d.fail(ctx, j, i, why)
	}
	return d.advance(j.ID, j.Devices[i].Device, stepRollback, why, func(c *change) {
		c.step.Rollbacks++
		c.step.Wrote = true
	}) == nil
}

// fail ends step i failed after the device may have been written: it reads
// the device's version back and records what the device says it runs, or,
// when it says nothing, that the device needs recovery. The old version is
// never assumed.
func (d *Daemon) fail(ctx context.Context, j store.Job, i int, why string) bool {
	s := j.Devices[i]
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), phaseTimeout)
	id, err := d.devs[s.Device].Identify(rctx)
	cancel()
	d.noteReach(s.Device, err)
	return d.advance(j.ID, s.Device, stepFailed, why, func(c *change) {
		if err == nil && id.Version != "" {
			c.rec.Version, c.rec.ImageSHA256, c.rec.Recovery = id.Version, id.ImageSHA256, ""
			c.rec.LastSeen = d.now().UTC()
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
func (d *Daemon) step(ctx context.Context, j store.Job, i int) bool {
	s := j.Devices[i]
	dev := d.devs[s.Device]
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), phaseTimeout)
	defer cancel()
	// The watchdog counts a phase past its bound as a hung daemon; phases
	// that wait on purpose (interlock, soak) poll and are bounded by the
	// window instead.
	switch s.Phase {
	case stepBackup, stepVerify, stepRollback:
		defer d.live.phase(s.Device, time.Now().Add(phaseTimeout))()
	case stepTransfer:
		defer d.live.phase(s.Device, time.Now().Add(2*estimate(d.devCfg[s.Device].Baud, j.Length)))()
	}
	next := func(phase, why string, mut func(*change)) bool {
		return d.advance(j.ID, s.Device, phase, why, mut) == nil
	}
	switch s.Phase {
	case stepPending:
		// Nothing unverified reaches a device: re-hash the blob now.
		if err := tuf.VerifyFile(j.Blob, d.target(j)); err != nil {
			d.health.set(condVerify, j.Target, "error", err.Error())
			return next(stepFailed, notStarted("image failed re-verification before the push: "+err.Error()), nil)
		}
		return next(stepBackup, "", nil)

	case stepBackup:
		if j.Kind == jobKindRecovery || !dev.Capabilities().ReadBack {
			// A device being recovered holds nothing worth keeping; one
			// that cannot read back relies on the images the gateway holds.
			return next(stepTransfer, "", func(c *change) { c.step.Attempts++ })
		}
		rec, _ := d.st.Device(s.Device)
		b, err := d.backup(pctx, dev, s.Device, rec)
		switch {
		case err == nil:
			return next(stepTransfer, "", func(c *change) {
				c.step.Backup = b.Path
				c.step.Attempts++
				c.rec.Backups = d.keepBackup(c.rec.Backups, b)
			})
		case errors.Is(err, syscall.ENOSPC):
			// Nothing was written to the device: wait for space, not fail.
			d.health.set(condDisk, "", "error", "no space for the backup of "+s.Device+": "+err.Error())
			d.backOff(s.Device, time.Minute)
			next(stepPending, "waiting for space for the backup: "+err.Error(), nil)
			return false
		case errors.Is(err, errNoVersion):
			return d.fail(ctx, j, i, "backup: "+err.Error())
		}
		return next(stepFailed, notStarted("backup: "+err.Error()), nil)

	case stepTransfer:
		tctx, cancel := context.WithTimeout(ctx, 2*estimate(d.devCfg[s.Device].Baud, j.Length))
		defer cancel()
		err := d.push(tctx, dev, j, s.Device)
		if ctx.Err() != nil {
			return false // shutting down: the next start counts the interruption
		}
		if err != nil {
			d.noteReach(s.Device, err)
			wrote := s.Wrote || !devices.IsUntouched(err)
			if devices.IsTransient(err) && s.Attempts < maxAttempts {
				return next(stepTransfer, err.Error(), func(c *change) { c.step.Attempts++; c.step.Wrote = wrote })
			}
			if !wrote {
				return next(stepFailed, notStarted("transfer: "+err.Error()), nil)
			}
			return d.toRollback(ctx, j, i, "transfer: "+err.Error())
		}
		return next(stepActivate, "", func(c *change) { c.step.Wrote = true })

	case stepActivate:
		if why := d.waitInterlock(ctx, j, s.Device); why != "" {
			if ctx.Err() != nil {
				return false
			}
			return d.toRollback(ctx, j, i, why)
		}
		if err := dev.Activate(pctx); err != nil {
			return d.toRollback(ctx, j, i, "activate: "+err.Error())
		}
		return next(stepVerify, "", nil)

	case stepVerify:
		if _, err := d.verify(pctx, s.Device, j); err != nil {
			d.health.set(condDevice, s.Device, "warning", err.Error())
			return d.toRollback(ctx, j, i, "verify: "+err.Error())
		}
		d.health.clear(condDevice, s.Device)
		soak := d.groups[j.Group].Soak
		return next(stepSoak, "", func(c *change) { c.step.SoakUntil = d.now().Add(soak).UTC() })

	case stepSoak:
		if err := d.soak(ctx, dev, s.SoakUntil); err != nil {
			if ctx.Err() != nil {
				return false // the soak continues after restart until SoakUntil
			}
			return d.toRollback(ctx, j, i, "soak: "+err.Error())
		}
		id, err := d.verify(pctx, s.Device, j)
		if err == nil {
			err = dev.Commit(pctx)
		}
		if err != nil {
			return d.toRollback(ctx, j, i, "commit: "+err.Error())
		}
		return next(stepCommitted, "", d.committed(j, id))

	case stepRollback:
		id, err := d.rollback(pctx, dev, j, s)
		if err != nil {
			return d.fail(ctx, j, i, "rollback: "+err.Error()+" (after: "+s.Error+")")
		}
		return next(stepRolledBack, s.Error, func(c *change) {
			c.rec.Version, c.rec.ImageSHA256, c.rec.Recovery = id.Version, id.ImageSHA256, ""
			c.rec.RolledBack = fmt.Sprintf("rolled back from %s to %s after: %s", j.Version, id.Version, s.Error)
		})
	}
	return false
}

// waitInterlock holds activation while the device's process runs. It
// returns "" when activation may go on, or why it may not.
func (d *Daemon) waitInterlock(ctx context.Context, j store.Job, id string) string {
	dev := d.devs[id]
	if !dev.Capabilities().Interlock {
		return ""
	}
	for {
		running, err := dev.Interlock(ctx)
		if err == nil && !running {
			d.blocked.Delete(id)
			return ""
		}
		why := "blocked by interlock: process running"
		if err != nil {
			why = "interlock unreadable: " + err.Error()
		}
		d.blocked.Store(id, why)
		d.publishDevice(id)
		if open, _ := d.windows[j.Window].OpenAt(d.now()); !open {
			return why + " until the window closed"
		}
		select {
		case <-ctx.Done():
			return "shutting down"
		case <-time.After(d.pollInterval):
		}
	}
}

// soak probes the device's health until the deadline.
func (d *Daemon) soak(ctx context.Context, dev devices.Device, until time.Time) error {
	for {
		if dev.Capabilities().Health {
			pctx, cancel := context.WithTimeout(ctx, phaseTimeout)
			err := dev.Health(pctx)
			cancel()
			if err != nil {
				return err
			}
		}
		left := until.Sub(d.now())
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, d.pollInterval)):
		}
	}
}

// errNoVersion is returned by backup when the device runs no image it can
// name: what it holds is unknown, and it needs recovery.
var errNoVersion = errors.New("device reports no running version")

// backup reads the device's image back. The image is accepted only as what
// the gateway knows the device runs: the device must report the version
// the gateway recorded, and the image's sha256 must match what the device
// (or the inventory) reports for it. A fragment is never a backup.
func (d *Daemon) backup(ctx context.Context, dev devices.Device, id string, known store.Device) (store.Backup, error) {
	ident, err := dev.Identify(ctx)
	d.noteReach(id, err)
	if err != nil {
		return store.Backup{}, fmt.Errorf("identify before the backup: %w", err)
	}
	switch {
	case ident.Version == "":
		return store.Backup{}, errNoVersion
	case ident.Version != known.Version:
		return store.Backup{}, fmt.Errorf("device reports version %q, the gateway recorded %q: not taking a backup it cannot vouch for", ident.Version, known.Version)
	}
	tmp, err := os.CreateTemp(d.backups, id+"-*.partial")
	if err != nil {
		return store.Backup{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := dev.Backup(ctx, io.MultiWriter(tmp, h))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Backup{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	for _, want := range []string{ident.ImageSHA256, known.ImageSHA256} {
		if want != "" && want != sum {
			return store.Backup{}, fmt.Errorf("backup of %d bytes has sha256 %s, the device's image has %s: not a copy of what it runs", n, sum, want)
		}
	}
	path := filepath.Join(d.backups, fmt.Sprintf("%s-%s.bin", id, sum))
	if err := os.Rename(tmp.Name(), path); err != nil {
		return store.Backup{}, err
	}
	if err := syncDir(d.backups); err != nil {
		return store.Backup{}, err
	}
	d.log.Info("backup", "device", id, "version", ident.Version, "bytes", n, "sha256", sum)
	return store.Backup{Version: ident.Version, SHA256: sum, Size: n, Path: path, Taken: d.now().UTC()}, nil
}

// keepBackups is how many images of a device the gateway keeps track of.
const keepBackups = 4

// keepBackup adds b to a device's images (replacing one with the same
// sha256) and drops the oldest beyond keepBackups, removing the files of
// dropped backups the gateway read back itself.
func (d *Daemon) keepBackup(list []store.Backup, b store.Backup) []store.Backup {
	list = slices.DeleteFunc(slices.Clone(list), func(o store.Backup) bool { return o.SHA256 == b.SHA256 })
	list = append(list, b)
	for len(list) > keepBackups {
		old := list[0]
		list = list[1:]
		if filepath.Dir(old.Path) == d.backups && !slices.ContainsFunc(list, func(o store.Backup) bool { return o.Path == old.Path }) {
			os.Remove(old.Path)
		}
	}
	return list
}

// imageOf returns the newest image the gateway holds of version v of
// device rec whose file still hashes to what was recorded.
func imageOf(rec store.Device, v string) (store.Backup, error) {
	for i := len(rec.Backups) - 1; i >= 0; i-- {
		b := rec.Backups[i]
		if b.Version != v {
			continue
		}
		if sum, n, err := hashFile(b.Path); err == nil && sum == b.SHA256 && n == b.Size {
			return b, nil
		}
	}
	return store.Backup{}, fmt.Errorf("the gateway holds no verified image of version %q for device %s", v, rec.ID)
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// push streams the verified blob to the device, publishing progress.
func (d *Daemon) push(ctx context.Context, dev devices.Device, j store.Job, id string) error {
	f, err := os.Open(j.Blob)
	if err != nil {
		return devices.Permanent("transfer", err)
	}
	defer f.Close()
	img := devices.Image{Name: j.Target, Version: j.Version, Size: j.Length, SHA256: j.SHA256}
	var last time.Time
	err = dev.Transfer(ctx, img, io.LimitReader(f, j.Length), func(done, total int64) {
		d.progress.Store(id, api.Progress{Done: done, Total: total})
		if time.Since(last) > 2*time.Second || done == total {
			last = time.Now()
			d.publishDevice(id)
		}
	})
	d.progress.Delete(id)
	return err
}

// verify reads the device back: version and, where the device reports it,
// image hash; then the device's health probe.
func (d *Daemon) verify(ctx context.Context, dev string, j store.Job) (devices.Identity, error) {
	id, err := d.devs[dev].Identify(ctx)
	if err != nil {
		return id, err
	}
	if want := d.devCfg[dev].HardwareID; id.HardwareID != "" && id.HardwareID != want {
		return id, fmt.Errorf("device reports hardware id %q, configured %q", id.HardwareID, want)
	}
	if id.Version != j.Version {
		return id, fmt.Errorf("device reports version %q, want %q", id.Version, j.Version)
	}
	if id.ImageSHA256 != "" && id.ImageSHA256 != j.SHA256 {
		return id, fmt.Errorf("device reports sha256 %s, want %s", id.ImageSHA256, j.SHA256)
	}
	if d.devs[dev].Capabilities().Health {
		if err := d.devs[dev].Health(ctx); err != nil {
			return id, fmt.Errorf("health probe: %w", err)
		}
	}
	return id, nil
}

// rollback returns the device to the version it ran before the job: A/B
// devices revert their slot; single-slot devices get the newest verified
// image of that version re-pushed (read back by this job or an earlier
// one, or the target it last committed). Either way the device must then
// report that version, and the image's sha256 where it reports one.
// Returning to the gateway's own image is recovery, not a downgrade: it is
// not subject to target selection or the security floor.
func (d *Daemon) rollback(ctx context.Context, dev devices.Device, j store.Job, s store.Step) (devices.Identity, error) {
	want := ""
	if dev.Capabilities().Slots >= 2 {
		if err := dev.Revert(ctx); err != nil {
			return devices.Identity{}, err
		}
	} else {
		rec, err := d.st.Device(s.Device)
		if err != nil {
			return devices.Identity{}, err
		}
		b, err := imageOf(rec, s.From)
		if err != nil {
			return devices.Identity{}, err
		}
		f, err := os.Open(b.Path)
		if err != nil {
			return devices.Identity{}, err
		}
		defer f.Close()
		img := devices.Image{Name: "backup", Version: s.From, Size: b.Size, SHA256: b.SHA256}
		if err := dev.Transfer(ctx, img, f, nil); err != nil {
			return devices.Identity{}, err
		}
		if err := dev.Activate(ctx); err != nil {
			return devices.Identity{}, err
		}
		want = b.SHA256
	}
	id, err := dev.Identify(ctx)
	d.noteReach(s.Device, err)
	if err != nil {
		return id, fmt.Errorf("after rollback: %w", err)
	}
	if id.Version == "" || id.Version != s.From {
		return id, fmt.Errorf("after rollback device reports version %q, want %q", id.Version, s.From)
	}
	if want != "" && id.ImageSHA256 != "" && id.ImageSHA256 != want {
		return id, fmt.Errorf("after rollback device reports sha256 %s, want %s", id.ImageSHA256, want)
	}
	return id, nil
}

// committed is the mutation of a verified update: the device's new version
// becomes its known-good state, the committed image is kept as an image of
// that version, and the anti-rollback floor rises to the target's security
// counter, in the same transaction as the step's transition.
func (d *Daemon) committed(j store.Job, id devices.Identity) func(*change) {
	return func(c *change) {
		r := c.rec
		r.Version, r.ImageSHA256 = id.Version, id.ImageSHA256
		r.KnownGood, r.KnownGoodBlob = id.Version, j.Blob
		r.LastSeen, r.LastError, r.Recovery, r.RolledBack = c.job.Updated, "", "", ""
		if j.Counter > r.Floor {
			r.Floor = j.Counter
		}
		if j.Blob != "" {
			r.Backups = d.keepBackup(r.Backups, store.Backup{Version: id.Version, SHA256: j.SHA256, Size: j.Length, Path: j.Blob, Taken: c.job.Updated})
		}
	}
}

// noteReach raises device-unreachable when a device did not answer
// (a transient error), and clears it when it did.
func (d *Daemon) noteReach(id string, err error) {
	switch {
	case err == nil:
		d.health.clear(condUnreachable, id)
	case devices.IsTransient(err):
		d.health.set(condUnreachable, id, "warning", err.Error())
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
