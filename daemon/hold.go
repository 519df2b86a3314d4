// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"errors"
	"fmt"
	"slices"

	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/tuf"
)

// Holds: an update that ended failed, rolled back or cancelled on a device
// is held there (see holdTx): no job is staged for that (device, target)
// again on its own, so a failure is flashed once, not at every refresh.
// Two things lift a hold: a newer target for the device (releaseOlderHolds)
// and a person (Retry, on site or by a signed remote command). Both are
// audited.

// releaseOlderHolds lifts the holds of device id on versions older than t,
// the newer target now offered to it.
func (m *machine) releaseOlderHolds(id string, t tuf.Target) {
	rec, err := m.st.Device(id)
	if err != nil || len(rec.Holds) == 0 {
		return
	}
	var lifted []store.Hold
	err = m.st.Update(func(tx *store.Tx) error {
		rec, err := tx.Device(id)
		if err != nil {
			return err
		}
		lifted = nil
		rec.Holds = slices.DeleteFunc(rec.Holds, func(h store.Hold) bool {
			older := h.Version != "" && tuf.ValidVersion(h.Version) == nil && tuf.CompareVersions(t.Meta.Version, h.Version) > 0
			if older {
				lifted = append(lifted, h)
			}
			return older
		})
		if len(lifted) == 0 {
			return nil
		}
		for _, h := range lifted {
			if _, err := m.rep.audit(tx, store.Event{Type: "hold-released", Device: id, Detail: map[string]any{
				"target": h.Target, "version": h.Version, "sha256": h.SHA256, "reason": "newer target " + t.Name + " published"}}); err != nil {
				return err
			}
		}
		return tx.PutDevice(rec)
	})
	if err != nil {
		m.storeFailed("", err)
	}
}

// Retry lifts holds on a person's word: what names a device lifts all of
// that device's holds; what names a job lifts the hold of that job's
// target on each of its devices. The next staging (right away, from the
// metadata the gateway holds) may then run the update once more. It
// returns the devices whose holds were lifted.
func (d *Daemon) Retry(what, actor, command string) ([]string, error) {
	var devs []string
	var sha string
	if what == selfSubject {
		return d.retrySelf(actor, command)
	}
	if _, ok := d.devCfg[what]; ok {
		devs = []string{what}
	} else if j, err := d.st.Job(what); err == nil {
		for _, s := range j.Devices {
			devs = append(devs, s.Device)
		}
		sha = j.SHA256
	} else {
		return nil, fmt.Errorf("retry %s: %w: no such device or job", what, ErrRefused)
	}
	var lifted []string
	err := d.st.Update(func(tx *store.Tx) error {
		lifted = nil
		for _, id := range devs {
			rec, err := tx.Device(id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			var gone []store.Hold
			rec.Holds = slices.DeleteFunc(rec.Holds, func(h store.Hold) bool {
				if sha == "" || h.SHA256 == sha {
					gone = append(gone, h)
					return true
				}
				return false
			})
			if len(gone) == 0 {
				continue
			}
			for _, h := range gone {
				if _, err := d.rep.audit(tx, store.Event{Type: "hold-released", Device: id, Actor: actor, Detail: map[string]any{
					"target": h.Target, "version": h.Version, "sha256": h.SHA256, "reason": "retry", "command": command}}); err != nil {
					return err
				}
			}
			if err := tx.PutDevice(rec); err != nil {
				return err
			}
			lifted = append(lifted, id)
		}
		return nil
	})
	if err != nil {
		d.m.storeFailed("", err)
		return nil, err
	}
	if len(lifted) == 0 {
		return nil, fmt.Errorf("retry %s: %w: nothing is held", what, ErrRefused)
	}
	d.log.Info("holds lifted", "devices", lifted, "actor", actor)
	d.askRestage()
	return lifted, nil
}

// selfSubject names the gateway's own fieldgated where a device id would
// stand (health subjects, retry).
const selfSubject = "fieldgated"

// retrySelf forgets the self-updates of fieldgated that did not come up,
// so that the next refresh may try the newest one once more.
func (d *Daemon) retrySelf(actor, command string) ([]string, error) {
	dir := d.cfg.Gateway.StateDir
	s, err := LoadSelfState(dir)
	if err != nil {
		return nil, err
	}
	if len(s.Bad) == 0 {
		return nil, fmt.Errorf("retry %s: %w: no self-update is held", selfSubject, ErrRefused)
	}
	bad := s.Bad
	s.Bad = nil
	if err := saveSelfState(dir, s); err != nil {
		return nil, err
	}
	for _, sha := range bad {
		d.audit(store.Event{Type: "hold-released", Actor: actor, Detail: map[string]any{
			"target": selfSubject, "sha256": sha, "reason": "retry", "command": command}})
	}
	d.log.Info("self-update holds lifted", "count", len(bad), "actor", actor)
	d.Wake()
	return []string{selfSubject}, nil
}
