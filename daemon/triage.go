// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"errors"
	"fmt"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Site triage: an engineer records a verdict on an advisory for a device,
// on site (fieldgatectl triage, over the control socket) or by a signed
// remote command (action triage). Verdicts are stored (they survive
// restarts), every change is audited (triage-recorded, triage-removed)
// with who made it, and advisory.ApplyVerdicts applies them when the
// device's advisories are evaluated, evaluating them again when a new
// revision of the advisory arrives.

// advisoryState is what triage needs from the advisory matching
// (advisories.go) to pin a verdict: the device's current matches,
// verdicts not applied, so that the verdict keeps the revision and the
// findings the engineer decided on. Without it a verdict is recorded
// unpinned, and then holds for every revision. The loop evaluates and
// publishes the device's advisories again on its next turn, which a
// change of verdicts starts at once (kick).
type advisoryState interface {
	currentMatches(device string) []advisory.Match
}

// RecordVerdict implements control.Triage: it validates v, pins it to the
// advisory's current match for the device, stores it (replacing the
// verdict with the same device, advisory and CVE) and audits
// triage-recorded. command is the remote command's id, "" on site.
func (d *Daemon) RecordVerdict(v advisory.Verdict, actor, command string) (advisory.Verdict, error) {
	now := d.now().UTC()
	v.Actor, v.At, v.Revision, v.Basis = actor, now, "", nil
	if err := v.Validate(now); err != nil {
		return v, fmt.Errorf("triage: %w: %v", ErrRefused, err)
	}
	if _, ok := d.devCfg[v.Device]; !ok {
		return v, fmt.Errorf("triage %s: %w: no such device", v.Device, ErrRefused)
	}
	if as, ok := any(d).(advisoryState); ok {
		for _, m := range as.currentMatches(v.Device) {
			if m.Advisory == v.Advisory {
				v = v.Pin(m)
			}
		}
	}
	err := d.st.Update(func(tx *store.Tx) error {
		old, err := tx.PutVerdict(v)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err = d.rep.audit(tx, store.Event{Type: "triage-recorded", Device: v.Device, Actor: actor, Detail: map[string]any{
			"advisory": v.Advisory, "cve": v.CVE, "verdict": string(v.Kind), "justification": v.Justification,
			"until": v.Until, "control": v.Control, "note": v.Note, "revision": v.Revision,
			"replaced": string(old.Kind), "command": command}})
		return err
	})
	if err != nil {
		d.m.auditFailed(err)
		return v, fmt.Errorf("triage %s %s: %w", v.Device, v.Advisory, err)
	}
	d.log.Info("triage verdict recorded", "device", v.Device, "advisory", v.Advisory, "cve", v.CVE, "verdict", v.Kind, "actor", actor)
	d.m.kick()
	return v, nil
}

// RemoveVerdict implements control.Triage: it removes the verdict of
// device on adv and cve ("" for the one on the whole advisory) and audits
// triage-removed.
func (d *Daemon) RemoveVerdict(device, adv, cve, actor, command string) error {
	err := d.st.Update(func(tx *store.Tx) error {
		old, err := tx.DeleteVerdict(device, adv, cve)
		if errors.Is(err, store.ErrNotFound) {
			what := "the whole advisory"
			if cve != "" {
				what = cve
			}
			return fmt.Errorf("triage %s %s: %w: no verdict on %s", device, adv, ErrRefused, what)
		}
		if err != nil {
			return err
		}
		_, err = d.rep.audit(tx, store.Event{Type: "triage-removed", Device: device, Actor: actor, Detail: map[string]any{
			"advisory": adv, "cve": cve, "verdict": string(old.Kind), "command": command}})
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrRefused) {
			d.m.auditFailed(err)
		}
		return err
	}
	d.log.Info("triage verdict removed", "device", device, "advisory", adv, "cve", cve, "actor", actor)
	d.m.kick()
	return nil
}

// Verdicts implements control.Triage: every stored verdict, by device,
// advisory and CVE.
func (d *Daemon) Verdicts() ([]advisory.Verdict, error) { return d.st.Verdicts("") }

var _ control.Triage = (*Daemon)(nil)
