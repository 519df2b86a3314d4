package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Rollback returns devices to the version they ran before their last
// committed update, on an operator's signed command. For each device it
// stages a recovery job that pushes the image the gateway read back (or
// held) before that update, in the device's window, and holds the update's
// target back so that it is not offered to the device again. Returning to
// the gateway's own backup is recovery, not a downgrade: the anti-rollback
// floor is left as it is.
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
		dev, from, image, held string
	}
	var plans []plan
	for _, dev := range devs {
		if _, ok := d.devCfg[dev]; !ok {
			return nil, fmt.Errorf("rollback %s: %w: no such device", dev, ErrRefused)
		}
		if busy[dev] {
			return nil, fmt.Errorf("rollback %s: %w: the device is in an open job (cancel it first)", dev, ErrRefused)
		}
		p := plan{dev: dev}
		for i := len(jobs) - 1; i >= 0 && p.from == ""; i-- {
			for _, s := range jobs[i].Devices {
				if s.Device == dev && s.Phase == stepCommitted && s.From != "" {
					p.from, p.image, p.held = s.From, s.Backup, jobs[i].SHA256
					break
				}
			}
		}
		if p.from == "" {
			return nil, fmt.Errorf("rollback %s: %w: no committed update to roll back", dev, ErrRefused)
		}
		if p.image == "" {
			return nil, fmt.Errorf("rollback %s: %w: the gateway holds no image of version %s (the device could not be read back)", dev, ErrRefused, p.from)
		}
		plans = append(plans, p)
	}
	var ids []string
	for _, p := range plans {
		id, err := d.createRecovery(p.dev, p.from, p.image, p.held, actor, command)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	d.kick()
	return ids, nil
}

// createRecovery stages the recovery job of one device.
func (d *Daemon) createRecovery(dev, version, image, held, actor, command string) (string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", fmt.Errorf("rollback %s: backup image: %w", dev, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("rollback %s: backup image: %w", dev, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	grp := d.groups[d.devCfg[dev].Group]
	now := d.now().UTC()
	j := store.Job{
		ID: fmt.Sprintf("rollback-%s-%.8s", dev, sum), Target: "recovery of " + dev + " to " + version,
		SHA256: sum, Hashes: map[string]string{"sha256": sum}, Length: n, Version: version,
		Blob: image, Phase: jobScheduled, Group: grp.Name, Window: grp.Window,
		Policy:  config.ApprovalAuto, // the signed command is the approval
		Created: now, Updated: now,
	}
	base := j.ID
	err = d.st.Update(func(tx *store.Tx) error {
		for k := 2; ; k++ {
			if _, err := tx.Job(j.ID); errors.Is(err, store.ErrNotFound) {
				break
			}
			j.ID = fmt.Sprintf("%s-%d", base, k)
		}
		rec, _ := tx.Device(dev)
		rec.ID = dev
		if !slices.Contains(rec.Held, held) {
			rec.Held = append(rec.Held, held)
		}
		if err := tx.PutDevice(rec); err != nil {
			return err
		}
		j.Devices = []store.Step{{Device: dev, Phase: stepPending, From: rec.Version}}
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return d.recordTx(tx, j, 0, "job-recovery-scheduled", map[string]string{
			"version": version, "held": held, "actor": actor, "command": command})
	})
	if err != nil {
		return "", err
	}
	d.log.Info("recovery job scheduled", "job", j.ID, "device", dev, "version", version, "actor", actor)
	return j.ID, nil
}
