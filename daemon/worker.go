// SPDX-License-Identifier: Apache-2.0

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
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// This file holds the side effects of a device step on the device: the
// backup, the push, the read-back, the rollback, the soak and the wait for
// the interlock. Which of them runs, and what is recorded after it, is the
// state machine's business (job.go).

// phaseTimeout bounds every phase except transfer, whose deadline follows
// from the image size and the line rate.
const phaseTimeout = 3 * time.Minute

// waitInterlock holds activation while the device's process runs. It
// returns "" when activation may go on, or why it may not.
func (m *machine) waitInterlock(ctx context.Context, j store.Job, id string) string {
	dev := m.devs[id]
	if !dev.Capabilities().Interlock {
		return ""
	}
	for {
		running, err := dev.Interlock(ctx)
		if err == nil && !running {
			m.live.unblock(id)
			return ""
		}
		why := "blocked by interlock: process running"
		if err != nil {
			why = "interlock unreadable: " + err.Error()
		}
		m.live.block(id, block{blockInterlock, why})
		if open, _ := m.windows[j.Window].OpenAt(m.now()); !open {
			return why + " until the window closed"
		}
		select {
		case <-ctx.Done():
			return "shutting down"
		case <-time.After(m.pollInterval):
		}
	}
}

// soak probes the device's health until the deadline.
func (m *machine) soak(ctx context.Context, dev devices.Device, until time.Time) error {
	for {
		if dev.Capabilities().Health {
			pctx, cancel := context.WithTimeout(ctx, phaseTimeout)
			err := dev.Health(pctx)
			cancel()
			if err != nil {
				return err
			}
		}
		left := until.Sub(m.now())
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, m.pollInterval)):
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
func (m *machine) backup(ctx context.Context, dev devices.Device, id string, known store.Device) (store.Backup, error) {
	ident, err := dev.Identify(ctx)
	m.noteReach(id, err)
	if err != nil {
		return store.Backup{}, fmt.Errorf("identify before the backup: %w", err)
	}
	switch {
	case ident.Version == "":
		return store.Backup{}, errNoVersion
	case ident.Version != known.Version:
		return store.Backup{}, fmt.Errorf("device reports version %q, the gateway recorded %q: not taking a backup it cannot vouch for", ident.Version, known.Version)
	}
	tmp, err := atomicfile.Create(m.backups, 0o600)
	if err != nil {
		return store.Backup{}, err
	}
	defer tmp.Abort()
	h := sha256.New()
	n, err := dev.Backup(ctx, io.MultiWriter(tmp, h))
	if err != nil {
		return store.Backup{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	for _, want := range []string{ident.ImageSHA256, known.ImageSHA256} {
		if want != "" && want != sum {
			return store.Backup{}, fmt.Errorf("backup of %d bytes has sha256 %s, the device's image has %s: not a copy of what it runs", n, sum, want)
		}
	}
	name := fmt.Sprintf("%s-%s.bin", id, sum)
	if err := tmp.Commit(name); err != nil {
		return store.Backup{}, err
	}
	path := filepath.Join(m.backups, name)
	m.log.Info("backup", "device", id, "version", ident.Version, "bytes", n, "sha256", sum)
	return store.Backup{Version: ident.Version, SHA256: sum, Size: n, Path: path, Taken: m.now().UTC()}, nil
}

// keepBackups is how many images of a device the gateway keeps track of.
const keepBackups = 4

// keepBackup adds b to a device's images (replacing one with the same
// sha256) and drops the oldest beyond keepBackups, removing the files of
// dropped backups the gateway read back itself.
func (m *machine) keepBackup(list []store.Backup, b store.Backup) []store.Backup {
	list = slices.DeleteFunc(slices.Clone(list), func(o store.Backup) bool { return o.SHA256 == b.SHA256 })
	list = append(list, b)
	for len(list) > keepBackups {
		old := list[0]
		list = list[1:]
		if filepath.Dir(old.Path) == m.backups && !slices.ContainsFunc(list, func(o store.Backup) bool { return o.Path == old.Path }) {
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
func (m *machine) push(ctx context.Context, dev devices.Device, j store.Job, id string) error {
	f, err := os.Open(j.Blob)
	if err != nil {
		return devices.Permanent("transfer", err)
	}
	defer f.Close()
	img := devices.Image{Name: j.Target, Version: j.Version, Size: j.Length, SHA256: j.SHA256}
	var last time.Time
	var acked atomic.Int64 // a pull-mode driver reports from its server's goroutine
	start := time.Now()
	err = dev.Transfer(ctx, img, io.LimitReader(f, j.Length), func(done, total int64) {
		acked.Store(done)
		m.live.setProgress(id, done, total)
		if time.Since(last) > 2*time.Second || done == total {
			last = time.Now()
			m.kick() // the loop's next turn publishes it
		}
	})
	m.live.endProgress(id)
	n := acked.Load()
	if err == nil {
		n = j.Length
	}
	m.meter.Transfer(m.devCfg[id].Protocol, n, time.Since(start), err)
	return err
}

// verify reads the device back: version and, where the device reports it,
// image hash; then the device's health probe.
func (m *machine) verify(ctx context.Context, dev string, j store.Job) (devices.Identity, error) {
	id, err := m.devs[dev].Identify(ctx)
	if err != nil {
		return id, err
	}
	if want := m.devCfg[dev].HardwareID; id.HardwareID != "" && id.HardwareID != want {
		return id, fmt.Errorf("device reports hardware id %q, configured %q", id.HardwareID, want)
	}
	if id.Version != j.Version {
		return id, fmt.Errorf("device reports version %q, want %q", id.Version, j.Version)
	}
	if id.ImageSHA256 != "" && id.ImageSHA256 != j.SHA256 {
		return id, fmt.Errorf("device reports sha256 %s, want %s", id.ImageSHA256, j.SHA256)
	}
	if m.devs[dev].Capabilities().Health {
		if err := m.devs[dev].Health(ctx); err != nil {
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
func (m *machine) rollback(ctx context.Context, dev devices.Device, j store.Job, s store.Step) (devices.Identity, error) {
	want := ""
	if dev.Capabilities().Slots >= 2 {
		if err := dev.Revert(ctx); err != nil {
			return devices.Identity{}, err
		}
	} else {
		rec, err := m.st.Device(s.Device)
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
	m.noteReach(s.Device, err)
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

// noteReach raises device-unreachable when a device did not answer
// (a transient error), and clears it when it did.
func (m *machine) noteReach(id string, err error) {
	switch {
	case err == nil:
		m.health.clear(condUnreachable, id)
	case devices.IsTransient(err):
		m.health.set(condUnreachable, id, err.Error())
	}
}
