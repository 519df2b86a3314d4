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
func (d *Daemon) work(ctx context.Context, jobID, dev string) {
	log := d.log.With("job", jobID, "device", dev)
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
		if !d.step(ctx, j, i) {
			return
		}
	}
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
	next := func(phase, errText string, mut func(*store.Step)) bool {
		_, err := d.setStep(j.ID, s.Device, phase, errText, mut)
		return err == nil
	}
	switch s.Phase {
	case stepPending:
		// Nothing unverified reaches a device: re-hash the blob now.
		if err := tuf.VerifyFile(j.Blob, d.target(j)); err != nil {
			d.health.set(condVerify, j.Target, "error", err.Error())
			return next(stepFailed, "image failed re-verification before the push: "+err.Error(), nil)
		}
		return next(stepBackup, "", nil)

	case stepBackup:
		path, err := d.backup(pctx, dev, s.Device)
		if err != nil {
			return next(stepFailed, "backup: "+err.Error(), nil)
		}
		return next(stepTransfer, "", func(s *store.Step) { s.Backup = path; s.Attempts++ })

	case stepTransfer:
		tctx, cancel := context.WithTimeout(ctx, 2*estimate(d.devCfg[s.Device].Baud, j.Length))
		defer cancel()
		err := d.push(tctx, dev, j, s.Device)
		if ctx.Err() != nil {
			return false // shutting down: resume() counts the interruption
		}
		if err != nil {
			if devices.IsTransient(err) && s.Attempts < maxAttempts {
				return next(stepTransfer, err.Error(), func(s *store.Step) { s.Attempts++ })
			}
			return next(stepRollback, "transfer: "+err.Error(), nil)
		}
		return next(stepActivate, "", nil)

	case stepActivate:
		if why := d.waitInterlock(ctx, j, s.Device); why != "" {
			if ctx.Err() != nil {
				return false
			}
			return next(stepRollback, why, nil)
		}
		if err := dev.Activate(pctx); err != nil {
			return next(stepRollback, "activate: "+err.Error(), nil)
		}
		return next(stepVerify, "", nil)

	case stepVerify:
		if _, err := d.verify(pctx, s.Device, j); err != nil {
			d.health.set(condVerify, s.Device, "error", err.Error())
			return next(stepRollback, "verify: "+err.Error(), nil)
		}
		d.health.clear(condVerify, s.Device)
		soak := d.groups[j.Group].Soak
		return next(stepSoak, "", func(s *store.Step) { s.SoakUntil = d.now().Add(soak).UTC() })

	case stepSoak:
		if err := d.soak(ctx, dev, s.SoakUntil); err != nil {
			if ctx.Err() != nil {
				return false // the soak continues after restart until SoakUntil
			}
			return next(stepRollback, "soak: "+err.Error(), nil)
		}
		id, err := d.verify(pctx, s.Device, j)
		if err == nil {
			err = dev.Commit(pctx)
		}
		if err != nil {
			return next(stepRollback, "commit: "+err.Error(), nil)
		}
		return d.commit(j, s.Device, id)

	case stepRollback:
		err := d.rollback(pctx, dev, j, s)
		if err != nil {
			d.health.set(condRollback, s.Device, "error", "rollback failed: "+err.Error())
			return next(stepFailed, "rollback: "+err.Error()+" (after: "+s.Error+")", nil)
		}
		d.health.set(condRollback, s.Device, "warning", "rolled back to "+s.From+" after: "+s.Error)
		return next(stepRolledBack, s.Error, nil)
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

// backup reads the device's image back where the device can; otherwise the
// rollback relies on the image the gateway already holds for the device's
// known-good version (recorded at its last commit).
func (d *Daemon) backup(ctx context.Context, dev devices.Device, id string) (string, error) {
	if !dev.Capabilities().ReadBack {
		return "", nil
	}
	tmp, err := os.CreateTemp(d.backups, id+"-*.partial")
	if err != nil {
		return "", err
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
		return "", err
	}
	path := filepath.Join(d.backups, fmt.Sprintf("%s-%s.bin", id, hex.EncodeToString(h.Sum(nil))))
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	d.log.Info("backup", "device", id, "bytes", n, "path", path)
	return path, syncDir(d.backups)
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
// devices revert their slot; single-slot devices get the backup re-pushed.
// Either way the device must then report its previous version. Returning
// to the gateway's own backup is recovery, not a downgrade: it is not
// subject to target selection or the security floor.
func (d *Daemon) rollback(ctx context.Context, dev devices.Device, j store.Job, s store.Step) error {
	if dev.Capabilities().Slots >= 2 {
		if err := dev.Revert(ctx); err != nil {
			return err
		}
	} else {
		path := s.Backup
		if path == "" {
			rec, _ := d.st.Device(s.Device)
			path = rec.KnownGoodBlob
		}
		if path == "" {
			return errors.New("no backup of the previous image and the device cannot read back")
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		img := devices.Image{Name: "backup", Version: s.From, Size: fi.Size()}
		if err := dev.Transfer(ctx, img, f, nil); err != nil {
			return err
		}
		if err := dev.Activate(ctx); err != nil {
			return err
		}
	}
	id, err := dev.Identify(ctx)
	if err != nil {
		return fmt.Errorf("after rollback: %w", err)
	}
	if id.Version == "" || id.Version != s.From {
		return fmt.Errorf("after rollback device reports version %q, want %q", id.Version, s.From)
	}
	return nil
}

// commit records a verified update: the device's new version becomes its
// known-good state and the anti-rollback floor rises to the target's
// security counter, in the same transaction as the step's transition.
func (d *Daemon) commit(j store.Job, dev string, id devices.Identity) bool {
	err := d.st.Update(func(tx *store.Tx) error {
		j, err := tx.Job(j.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(j.Devices, func(s store.Step) bool { return s.Device == dev })
		j.Devices[i].Phase, j.Devices[i].Error = stepCommitted, ""
		j.Updated = d.now().UTC()
		rec, _ := tx.Device(dev)
		rec.ID = dev
		rec.Version, rec.ImageSHA256 = id.Version, id.ImageSHA256
		rec.KnownGood, rec.KnownGoodBlob = id.Version, j.Blob
		rec.LastSeen, rec.LastError = j.Updated, ""
		if j.Counter > rec.Floor {
			rec.Floor = j.Counter
		}
		if err := tx.PutDevice(rec); err != nil {
			return err
		}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return d.recordTx(tx, j, i, "step-committed", map[string]string{"version": id.Version, "floor": fmt.Sprint(rec.Floor)})
	})
	if err != nil {
		d.auditFailed(err)
		return false
	}
	d.log.Info("committed", "job", j.ID, "device", dev, "version", id.Version)
	return true
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
