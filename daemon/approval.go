// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Approval kinds.
const (
	ApprovalLocal  = "local"
	ApprovalRemote = "remote"
)

// Approval is a request to approve a job. Every binding field must match
// the job exactly: an approval given for another image, another set of
// devices or another window is refused.
type Approval struct {
	Job     string
	Kind    string // ApprovalLocal or ApprovalRemote
	Actor   string // the signing key's name, or who pressed/typed locally
	SHA256  string
	Devices []string
	Window  string    // the job's window name; "" when the approval names an occurrence instead
	From    time.Time // optional: the window occurrence approved; the step may start only
	Until   time.Time // between From and Until, which must lie within an opening of the job's window
	Expires time.Time // zero: the group's approval_ttl from now
	Command string    // remote command id, for the audit trail
}

// ErrRefused is wrapped by every refused approval or command.
var ErrRefused = errors.New("refused")

// approved reports whether j's policy is satisfied by unexpired approvals
// and, in a group with require_tested, valid test reports cover it.
func (m *machine) approved(j store.Job) (bool, string) {
	now := m.now()
	has := func(kind string) bool {
		return slices.ContainsFunc(j.Approvals, func(a store.Approval) bool {
			inOccurrence := a.From.IsZero() || (!now.Before(a.From) && now.Before(a.Until))
			return a.Kind == kind && now.Before(a.Expires) && inOccurrence
		})
	}
	if why := m.untested(j); why != "" {
		return false, "awaiting a staging test: " + why
	}
	var need []string
	switch j.Policy {
	case config.ApprovalAuto, "":
		return true, ""
	case config.ApprovalLocal:
		need = []string{ApprovalLocal}
	case config.ApprovalRemote:
		need = []string{ApprovalRemote}
	case config.ApprovalDual:
		need = []string{ApprovalRemote, ApprovalLocal}
	default:
		return false, "unknown approval policy " + j.Policy
	}
	var missing []string
	for _, k := range need {
		if !has(k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return false, "awaiting " + strings.Join(missing, " and ") + " approval"
	}
	return true, ""
}

// Approve records an approval after checking that it binds this job's
// image, device set and window and has not expired. A refusal is audited.
func (d *Daemon) Approve(a Approval) error {
	err := d.approve(a)
	if err != nil {
		d.audit(store.Event{Type: "approval-refused", Job: a.Job, Actor: a.Actor,
			Detail: map[string]any{"kind": a.Kind, "reason": err.Error(), "command": a.Command}})
		return err
	}
	d.m.kick()
	return nil
}

func (d *Daemon) approve(a Approval) error {
	j, err := d.st.Job(a.Job)
	if err != nil {
		return fmt.Errorf("approve %s: %w: no such job", a.Job, ErrRefused)
	}
	if a.Kind != ApprovalLocal && a.Kind != ApprovalRemote {
		return fmt.Errorf("approve %s: %w: unknown approval kind %q", a.Job, ErrRefused, a.Kind)
	}
	if jobTerminal(j.Phase) || j.Phase == jobRunning {
		return fmt.Errorf("approve %s: %w: job is %s", a.Job, ErrRefused, j.Phase)
	}
	if a.SHA256 != j.SHA256 {
		return fmt.Errorf("approve %s: %w: approval is for image %s, job pushes %s", a.Job, ErrRefused, a.SHA256, j.SHA256)
	}
	var devs []string
	for _, s := range j.Devices {
		devs = append(devs, s.Device)
	}
	want, got := slices.Sorted(slices.Values(devs)), slices.Sorted(slices.Values(a.Devices))
	if !slices.Equal(want, got) {
		return fmt.Errorf("approve %s: %w: approval is for devices %v, job updates %v", a.Job, ErrRefused, got, want)
	}
	if why := d.m.untested(j); why != "" {
		return fmt.Errorf("approve %s: %w: %s", a.Job, ErrRefused, why)
	}
	if a.Window == "" && a.From.IsZero() {
		return fmt.Errorf("approve %s: %w: approval names no window", a.Job, ErrRefused)
	}
	if a.Window != "" && a.Window != j.Window {
		return fmt.Errorf("approve %s: %w: approval is for window %q, job runs in %q", a.Job, ErrRefused, a.Window, j.Window)
	}
	if !a.From.IsZero() {
		w := d.windows[j.Window]
		open, closes := w.OpenAt(a.From)
		if !open || !a.Until.After(a.From) || a.Until.After(closes) {
			return fmt.Errorf("approve %s: %w: approved interval %s/%s is not within an opening of window %s",
				a.Job, ErrRefused, a.From.UTC().Format(time.RFC3339), a.Until.UTC().Format(time.RFC3339), j.Window)
		}
	}
	now := d.now().UTC()
	if a.Expires.IsZero() {
		a.Expires = now.Add(d.groups[j.Group].ApprovalTTL)
	}
	if !now.Before(a.Expires) {
		return fmt.Errorf("approve %s: %w: approval expired at %s", a.Job, ErrRefused, a.Expires.UTC().Format(time.RFC3339))
	}
	rec := store.Approval{Kind: a.Kind, Actor: a.Actor, SHA256: a.SHA256, Devices: got, Window: j.Window,
		From: a.From.UTC(), Until: a.Until.UTC(), At: now, Expires: a.Expires.UTC(), Command: a.Command}
	return d.st.Update(func(tx *store.Tx) error {
		j, err := tx.Job(a.Job)
		if err != nil {
			return err
		}
		j.Approvals = append(j.Approvals, rec)
		j.Updated = now
		if err := tx.PutJob(j); err != nil {
			return err
		}
		if _, err := d.rep.audit(tx, store.Event{Type: "approval", Job: j.ID, Actor: a.Actor, Detail: map[string]any{
			"kind": a.Kind, "sha256": a.SHA256, "devices": strings.Join(got, ","), "window": a.Window,
			"expires": rec.Expires.Format(time.RFC3339), "command": a.Command}}); err != nil {
			return err
		}
		_, err = tx.Enqueue(d.rep.topic("jobs", j.ID), d.rep.jobDoc(j, d.m.waiting(j)), true)
		return err
	})
}

// ApproveLocal approves, on behalf of a person at the gateway, the job
// given (or, with "", the oldest job awaiting a local approval whose window
// is open now: what a long press of the approve button does). The binding
// is the job's own: the person sees it on the console or the LEDs.
func (d *Daemon) ApproveLocal(jobID, actor string) (string, error) {
	jobs, err := d.st.Jobs()
	if err != nil {
		return "", err
	}
	for _, j := range jobs {
		if jobID != "" && j.ID != jobID {
			continue
		}
		if jobID == "" {
			if j.Phase != jobAwaitingApproval || (j.Policy != config.ApprovalLocal && j.Policy != config.ApprovalDual) {
				continue
			}
			if open, _ := d.windows[j.Window].OpenAt(d.now()); !open {
				continue
			}
		}
		var devs []string
		for _, s := range j.Devices {
			devs = append(devs, s.Device)
		}
		return j.ID, d.Approve(Approval{Job: j.ID, Kind: ApprovalLocal, Actor: actor, SHA256: j.SHA256, Devices: devs, Window: j.Window})
	}
	if jobID != "" {
		return "", fmt.Errorf("approve %s: %w: no such job", jobID, ErrRefused)
	}
	return "", fmt.Errorf("approve: %w: no job awaits a local approval in an open window", ErrRefused)
}

// Cancel cancels a job that has not finished: pending devices are skipped;
// a device already being updated finishes its step to a definite state.
func (d *Daemon) Cancel(jobID, actor string) error {
	j, err := d.st.Job(jobID)
	if err != nil {
		return fmt.Errorf("cancel %s: %w: no such job", jobID, ErrRefused)
	}
	if jobTerminal(j.Phase) {
		return fmt.Errorf("cancel %s: %w: job already %s", jobID, ErrRefused, j.Phase)
	}
	return d.m.skipPending(j, jobCancelled, "cancelled by "+actor)
}

// Defer postpones a job's pending devices until t.
func (d *Daemon) Defer(jobID, actor string, t time.Time) error {
	j, err := d.st.Job(jobID)
	if err != nil || jobTerminal(j.Phase) {
		return fmt.Errorf("defer %s: %w: no open job", jobID, ErrRefused)
	}
	_, err = d.m.setJob(jobID, j.Phase, "deferred by "+actor+" until "+t.UTC().Format(time.RFC3339),
		func(_ *store.Tx, j *store.Job) error { j.NotBefore = t.UTC(); return nil })
	return err
}

// Stop is the emergency stop: no new device step starts until Resume. A
// write already in flight finishes its step, so no device is left half
// written. The stop is durable across restarts.
func (d *Daemon) Stop(actor string) error { return d.setStop(actor, actor, "emergency-stop") }

// Resume lifts the emergency stop.
func (d *Daemon) Resume(actor string) error { return d.setStop(actor, "", "emergency-stop-lifted") }

func (d *Daemon) setStop(actor, flag, event string) error {
	err := d.st.Update(func(tx *store.Tx) error {
		if err := tx.SetFlag("stop", flag); err != nil {
			return err
		}
		_, err := d.rep.audit(tx, store.Event{Type: event, Actor: actor})
		return err
	})
	if err != nil {
		d.m.storeFailed("", err)
		return err
	}
	if flag != "" {
		d.log.Warn("emergency stop: no new device step starts", "actor", actor)
	} else {
		d.log.Info("emergency stop lifted", "actor", actor)
	}
	d.m.kick()
	return nil
}

func (m *machine) stopped() bool {
	v, err := m.st.Flag("stop")
	return err != nil || v != "" // an unreadable flag counts as stopped
}
