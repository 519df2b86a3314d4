// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// TestHandoverRollsBackATrialThatNeverCameUp walks the start sequence
// systemd produces when a new binary dies before READY.
func TestHandoverRollsBackATrialThatNeverCameUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		packaged := "/usr/bin/fieldgated"
		trial := binaryPath(dir, "t1")
		os.MkdirAll(filepath.Dir(trial), 0o755)
		os.WriteFile(trial, []byte("#!/bin/sh\nexit 3\n"), 0o755)
		if err := saveSelfState(dir, SelfState{Trial: "t1", TrialVer: "9.9.9"}); err != nil {
			t.Fatal(err)
		}

		// First start after staging: hand over to the trial.
		if got, err := Handover(dir, packaged, "1.0.0"); err != nil || got != trial {
			t.Fatalf("Handover (first start) = %q, %v; want the trial %q", got, err, trial)
		}
		// The trial itself runs without handing over again.
		if got, _ := Handover(dir, trial, "9.9.9"); got != "" {
			t.Fatalf("Handover (as the trial) = %q, want \"\"", got)
		}
		// It died before confirming; systemd starts the packaged binary again.
		got, err := Handover(dir, packaged, "1.0.0")
		if err != nil || got != "" {
			t.Fatalf("Handover (after the trial died) = %q, %v; want to run the packaged binary", got, err)
		}
		s, _ := LoadSelfState(dir)
		if s.Trial != "" || !slices.Contains(s.Bad, "t1") || s.RolledBack != "9.9.9" {
			t.Errorf("state after rollback = %+v, want no trial, t1 marked bad, rollback of 9.9.9 to report", s)
		}
		// And it is never tried again.
		if got, _ := Handover(dir, packaged, "1.0.0"); got != "" {
			t.Errorf("Handover after rollback = %q, want \"\"", got)
		}
	})
}

func TestHandoverRunsTheCommittedBinary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cur := binaryPath(dir, "c1")
		os.MkdirAll(filepath.Dir(cur), 0o755)
		os.WriteFile(cur, []byte("x"), 0o755)
		saveSelfState(dir, SelfState{Current: "c1", CurrentVer: "2.0.0"})
		if got, _ := Handover(dir, "/usr/bin/fieldgated", "1.5.0"); got != cur {
			t.Errorf("Handover = %q, want the committed %q", got, cur)
		}
		if got, _ := Handover(dir, cur, "2.0.0"); got != "" {
			t.Errorf("Handover as the committed binary = %q, want \"\"", got)
		}
		// A package upgrade to 2.1.0 replaced /usr/bin/fieldgated: it wins.
		if got, _ := Handover(dir, "/usr/bin/fieldgated", "2.1.0"); got != "" {
			t.Errorf("Handover from a newer packaged binary = %q, want \"\"", got)
		}
	})
}

// TestSelfUpdateHoldShowsAndRetries: a self-update that did not come up is
// held (a health entry that survives restarts, since it is read from the
// self-update state), and a person's retry forgets it.
func TestSelfUpdateHoldShowsAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		dir := r.d.cfg.Gateway.StateDir
		if err := saveSelfState(dir, SelfState{Bad: []string{"t1"}}); err != nil {
			t.Fatal(err)
		}
		r.d.checkHealth()
		if !slices.ContainsFunc(r.d.health.list(), func(c api.Condition) bool { return c.Name == condHeld.name && c.Subject == selfSubject }) {
			t.Fatalf("health = %v, want %s on %s", r.d.health.list(), condHeld, selfSubject)
		}
		if _, err := r.d.Retry(selfSubject, "console", ""); err != nil {
			t.Fatalf("Retry(%s): %v", selfSubject, err)
		}
		if s, _ := LoadSelfState(dir); len(s.Bad) != 0 {
			t.Errorf("self-update state after retry = %+v, want nothing held", s)
		}
		r.d.checkHealth()
		if r.d.health.has(condHeld) {
			t.Errorf("health after retry = %v, want no %s", r.d.health.list(), condHeld)
		}
		if _, err := r.d.Retry(selfSubject, "console", ""); !errors.Is(err, ErrRefused) {
			t.Errorf("second Retry = %v, want ErrRefused (nothing held)", err)
		}
	})
}
