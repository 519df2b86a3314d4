// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/tuf"
)

// Recovery jobs push an image the gateway holds (a verified backup, a
// committed target, or a signed target a person names) to one device, in
// the device's window, with no backup taken first: the device either
// holds something unknown (Recover) or is being returned to its previous
// version on command (Rollback). Returning to the gateway's own image is
// recovery, not a downgrade: the anti-rollback floor is left as it is.

// Rollback returns devices to the version they ran before their last
// committed update, on an operator's signed command. For each device it
// stages a recovery job with the newest verified image of that version,
// and holds the update's target back so that it is not offered to the
// device again.
func (d *Daemon) Rollback(devs []string, actor, command string) ([]string, error) {
	if len(devs) == 0 {
		return nil, fmt.Errorf("rollback: %w: no devices named", ErrRefused)
	}
	busy := d.devicesInOpenJobs()
	jobs, err := d.st.Jobs()
	if err != nil {
		return nil, err
	}
	type plan struct {
		dev   string
		image store.Backup
		from  store.Job // the update rolled back
	}
	var plans []plan
	for _, dev := range devs {
		if _, ok := d.devCfg[dev]; !ok {
			return nil, fmt.Errorf("rollback %s: %w: no such device", dev, ErrRefused)
		}
		if busy[dev] {
			return nil, fmt.Errorf("rollback %s: %w: the device is in an open job (cancel it first)", dev, ErrRefused)
		}
		p, version := plan{dev: dev}, ""
		for i := len(jobs) - 1; i >= 0 && version == ""; i-- {
			if jobs[i].Kind != jobKindUpdate {
				continue
			}
			for _, s := range jobs[i].Devices {
				if s.Device == dev && s.Phase == stepCommitted && s.From != "" {
					version, p.from = s.From, jobs[i]
					break
				}
			}
		}
		if version == "" {
			return nil, fmt.Errorf("rollback %s: %w: no committed update to roll back", dev, ErrRefused)
		}
		rec, _ := d.st.Device(dev)
		if p.image, err = imageOf(rec, version); err != nil {
			return nil, fmt.Errorf("rollback %s: %w: %v", dev, ErrRefused, err)
		}
		plans = append(plans, p)
	}
	var ids []string
	for _, p := range plans {
		id, err := d.m.createRecovery(p.dev, p.image, &p.from, actor, command)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	d.m.kick()
	return ids, nil
}

// Recover stages a recovery job for device dev: image "" or "known-good"
// pushes the newest verified image of the device's known-good version;
// any other value names a signed target for the device's hardware in the
// metadata the gateway holds (downloaded and verified first; its security
// counter must not be below the device's floor).
func (d *Daemon) Recover(ctx context.Context, dev, image, actor, command string) (string, error) {
	cfg, ok := d.devCfg[dev]
	if !ok {
		return "", fmt.Errorf("recover %s: %w: no such device", dev, ErrRefused)
	}
	if d.devicesInOpenJobs()[dev] {
		return "", fmt.Errorf("recover %s: %w: the device is in an open job (cancel it first)", dev, ErrRefused)
	}
	rec, err := d.st.Device(dev)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	rec.ID = dev
	var b store.Backup
	if image == "" || image == "known-good" {
		if b, err = imageOf(rec, rec.KnownGood); err != nil {
			return "", fmt.Errorf("recover %s: %w: %v", dev, ErrRefused, err)
		}
	} else {
		d.mu.Lock()
		snap := d.snapshot
		d.mu.Unlock()
		var t tuf.Target
		found := false
		if snap != nil {
			for _, c := range snap.Targets {
				if c.Name == image && c.MetaErr == nil {
					t, found = c, true
				}
			}
		}
		switch {
		case !found:
			return "", fmt.Errorf("recover %s: %w: no signed target %q in the metadata the gateway holds", dev, ErrRefused, image)
		case !slices.Contains(t.Meta.Hardware, cfg.HardwareID):
			return "", fmt.Errorf("recover %s: %w: target %s is not for hardware %s", dev, ErrRefused, image, cfg.HardwareID)
		case t.Meta.SecurityCounter < rec.Floor:
			return "", fmt.Errorf("recover %s: %w: target %s has security counter %d, below the device's floor %d", dev, ErrRefused, image, t.Meta.SecurityCounter, rec.Floor)
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		path, err := d.fetch(fctx, t)
		cancel()
		if err != nil {
			return "", fmt.Errorf("recover %s: download %s: %w", dev, image, err)
		}
		b = store.Backup{Version: t.Meta.Version, SHA256: t.SHA256(), Size: t.Length, Path: path}
	}
	id, err := d.m.createRecovery(dev, b, nil, actor, command)
	if err == nil {
		d.m.kick()
	}
	return id, err
}

// createRecovery stages the recovery job of one device to image b; hold,
// if not nil, is the update whose target is held back from the device.
func (m *machine) createRecovery(dev string, b store.Backup, hold *store.Job, actor, command string) (string, error) {
	grp := m.groups[m.devCfg[dev].Group]
	now := m.now().UTC()
	j := store.Job{
		ID: fmt.Sprintf("recover-%s-%.8s", dev, b.SHA256), Kind: jobKindRecovery, Target: "recovery of " + dev + " to " + b.Version,
		SHA256: b.SHA256, Hashes: map[string]string{"sha256": b.SHA256}, Length: b.Size, Version: b.Version,
		Blob: b.Path, Phase: jobScheduled, Group: grp.Name, Window: grp.Window,
		Policy:  config.ApprovalAuto, // the person's command is the approval
		Created: now, Updated: now,
	}
	if hold != nil {
		j.ID = fmt.Sprintf("rollback-%s-%.8s", dev, b.SHA256)
	}
	base := j.ID
	err := m.st.Update(func(tx *store.Tx) error {
		for k := 2; ; k++ {
			if _, err := tx.Job(j.ID); errors.Is(err, store.ErrNotFound) {
				break
			}
			j.ID = fmt.Sprintf("%s-%d", base, k)
		}
		rec, err := tx.Device(dev)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		rec.ID = dev
		held := ""
		if hold != nil {
			m.holdTx(&rec, *hold, "rolled back by "+actor)
			held = hold.SHA256
		}
		if err := tx.PutDevice(rec); err != nil {
			return err
		}
		j.Devices = []store.Step{{Device: dev, Phase: stepPending, From: rec.Version}}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return m.recordTx(tx, j, 0, "job-recovery-scheduled", map[string]any{
			"version": b.Version, "sha256": b.SHA256, "held": held, "actor": actor, "command": command})
	})
	if err != nil {
		return "", err
	}
	m.log.Info("recovery job scheduled", "job", j.ID, "device", dev, "version", b.Version, "actor", actor)
	return j.ID, nil
}
