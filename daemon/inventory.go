// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fieldgate/fieldgate/daemon/store"
)

// inventory identifies every device, records a device's first-seen state
// as its known-good state, and raises drift when a version changed that no
// job installed.
func (d *Daemon) inventory(ctx context.Context) {
	busy := d.devicesInOpenJobs()
	for _, id := range d.order {
		if ctx.Err() != nil {
			return
		}
		if busy[id] {
			continue // a job owns the device's conversation and its record
		}
		ident, err := d.devs[id].Identify(ctx)
		now := d.now().UTC()
		if err != nil {
			d.health.set(condUnreachable, id, err.Error())
			d.log.Warn("identify", "device", id, "err", err)
			d.st.UpdateDevice(id, func(r *store.Device) error { r.LastError = "identify: " + err.Error(); return nil })
			continue
		}
		d.health.clear(condUnreachable, id)
		mismatch := ""
		if want := d.devCfg[id].HardwareID; ident.HardwareID != "" && ident.HardwareID != want {
			mismatch = fmt.Sprintf("device reports hardware id %q, configured %q", ident.HardwareID, want)
			d.health.set(condMismatch, id, mismatch+": no update is offered to it")
		} else {
			d.health.clear(condMismatch, id)
		}
		var drift, first, lost, recovered bool
		var prev string
		_, err = d.st.UpdateDevice(id, func(r *store.Device) error {
			if r.FirstSeen.IsZero() {
				first = true
				r.FirstSeen, r.KnownGood = now, ident.Version
			} else if r.Version != "" && ident.Version != "" && r.Version != ident.Version {
				drift, prev = true, r.Version
			}
			switch {
			case ident.Version == "" && r.Recovery == "":
				r.Recovery = "device reports no running version"
				lost = true
			case ident.Version != "" && r.Recovery != "":
				r.Recovery, recovered = "", true
			}
			r.Version, r.ImageSHA256, r.LastSeen, r.LastError, r.Mismatch = ident.Version, ident.ImageSHA256, now, "", mismatch
			r.Identity, _ = json.Marshal(ident)
			return nil
		})
		if err != nil {
			d.log.Error("inventory", "device", id, "err", err)
			continue
		}
		if first || recovered || drift {
			// The last staging skipped a device it could not order a
			// version for (or saw another version): an offline bundle
			// imported before the device answered is not offered again
			// by any refresh, so stage again from what is verified.
			d.askRestage()
		}
		switch {
		case lost:
			d.log.Warn("device reports no running version: it needs recovery", "device", id)
			d.audit(store.Event{Type: "device-needs-recovery", Device: id, Detail: map[string]any{"reason": "device reports no running version"}})
		case recovered:
			d.log.Info("device reports a version again", "device", id, "version", ident.Version)
			d.audit(store.Event{Type: "device-recovered", Device: id, Detail: map[string]any{"version": ident.Version}})
		case first:
			d.audit(store.Event{Type: "device-first-seen", Device: id, Detail: map[string]any{"version": ident.Version, "known_good": ident.Version}})
		case drift:
			d.log.Warn("drift: version changed without a job", "device", id, "from", prev, "to", ident.Version)
			d.audit(store.Event{Type: "device-drift", Device: id, Detail: map[string]any{"from": prev, "to": ident.Version}})
		}
	}
}
