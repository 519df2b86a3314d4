// SPDX-License-Identifier: Apache-2.0

package daemon

// Self-update: the gateway's own software is a TUF target like any other,
// matched by gateway.hardware_id. A verified new binary is installed beside
// the running one under state_dir/self/<sha256>/fieldgated and tried by
// re-executing into it. The packaged /usr/bin/fieldgated (what systemd
// starts) hands over to the committed or trial binary at every start:
//
//	no trial, no current        → run as packaged
//	current = C                 → exec C
//	trial T, attempts 0         → record attempts 1, exec T
//	trial T, attempts ≥ 1       → T never confirmed (crashed or hung before
//	                              READY, so systemd restarted us): mark T bad,
//	                              roll back to the previous binary, report
//
// The trial binary confirms itself once it is up (READY): it becomes
// current. A bad sha256 is never tried again.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/internal/atomicfile"
	"github.com/fieldgate/fieldgate/tuf"
)

// ErrRestart is returned by Run when the daemon stopped to hand over to a
// newly installed binary; the caller re-executes through Handover.
var ErrRestart = errors.New("restart into the new fieldgated")

// SelfState is the durable state of self-update, in state_dir/self/state.json.
type SelfState struct {
	Current    string   `json:"current,omitempty"` // sha256 of the committed binary; "" = the packaged one
	CurrentVer string   `json:"current_version,omitempty"`
	Previous   string   `json:"previous,omitempty"`
	Trial      string   `json:"trial,omitempty"`
	TrialVer   string   `json:"trial_version,omitempty"`
	Attempts   int      `json:"attempts,omitempty"`
	Bad        []string `json:"bad,omitempty"`
	// RolledBack is set when a trial failed and is cleared once reported.
	RolledBack string `json:"rolled_back,omitempty"`
}

func selfDir(stateDir string) string { return filepath.Join(stateDir, "self") }

// LoadSelfState reads the self-update state (empty if none).
func LoadSelfState(stateDir string) (SelfState, error) {
	var s SelfState
	raw, err := os.ReadFile(filepath.Join(selfDir(stateDir), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(raw, &s)
}

func saveSelfState(stateDir string, s SelfState) error {
	dir := selfDir(stateDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(s, "", "  ")
	return atomicfile.Write(filepath.Join(dir, "state.json"), raw, 0o640)
}

// binaryPath is where the binary with this sha256 is installed.
func binaryPath(stateDir, sha string) string {
	return filepath.Join(selfDir(stateDir), sha, "fieldgated")
}

// Handover decides, at start, which binary should run. self is the path of
// the running executable and version its version. It returns the path to
// exec into, or "" to go on as this binary. A trial that never confirmed is
// rolled back here. A committed self-update older than (or as old as) the
// running binary is left alone: a package upgrade of /usr/bin/fieldgated
// wins over it.
func Handover(stateDir, self, version string) (string, error) {
	s, err := LoadSelfState(stateDir)
	if err != nil {
		return "", fmt.Errorf("self-update state: %w", err)
	}
	if s.Trial != "" {
		trial := binaryPath(stateDir, s.Trial)
		if self == trial {
			return "", nil // we are the trial: run, and confirm once up
		}
		if s.Attempts == 0 {
			s.Attempts = 1
			if err := saveSelfState(stateDir, s); err != nil {
				return "", err
			}
			return trial, nil
		}
		// The trial ran and never confirmed: roll back.
		s.Bad = append(s.Bad, s.Trial)
		s.RolledBack = s.TrialVer
		s.Trial, s.TrialVer, s.Attempts = "", "", 0
		if err := saveSelfState(stateDir, s); err != nil {
			return "", err
		}
	}
	if s.Current != "" {
		cur := binaryPath(stateDir, s.Current)
		if tuf.ValidVersion(version) == nil && tuf.ValidVersion(s.CurrentVer) == nil && tuf.CompareVersions(s.CurrentVer, version) <= 0 {
			return "", nil
		}
		if self != cur {
			if _, err := os.Stat(cur); err == nil {
				return cur, nil
			}
		}
	}
	return "", nil
}

// confirmSelf runs once the daemon is up: a trial binary becomes current,
// and a rollback recorded by Handover is reported.
func (d *Daemon) confirmSelf() {
	dir := d.cfg.Gateway.StateDir
	s, err := LoadSelfState(dir)
	if err != nil {
		d.log.Error("self-update state", "err", err)
		return
	}
	self, _ := os.Executable()
	switch {
	case s.Trial != "" && self == binaryPath(dir, s.Trial):
		s.Previous, s.Current, s.CurrentVer = s.Current, s.Trial, s.TrialVer
		s.Trial, s.TrialVer, s.Attempts = "", "", 0
		if err := saveSelfState(dir, s); err != nil {
			d.log.Error("self-update confirm", "err", err)
			return
		}
		d.audit(store.Event{Type: "self-update-committed", Detail: map[string]any{"version": d.version, "sha256": s.Current}})
	case s.RolledBack != "":
		v := s.RolledBack
		s.RolledBack = ""
		if err := saveSelfState(dir, s); err == nil {
			d.health.set(condRollback, "fieldgated", "self-update to "+v+" did not come up; rolled back to "+d.version)
			d.audit(store.Event{Type: "self-update-rolled-back", Detail: map[string]any{"failed_version": v, "running": d.version}})
		}
	}
}

// selfUpdate installs a newer signed fieldgated for this gateway when the
// self-update window is open and no device is being updated. It returns
// true when the daemon should stop and hand over.
func (d *Daemon) selfUpdate(ctx context.Context, snap *tuf.Snapshot) bool {
	g := d.cfg.Gateway
	if g.HardwareID == "" || g.SelfUpdateWindow == "" {
		return false
	}
	s, err := LoadSelfState(g.StateDir)
	if err != nil {
		return false
	}
	var candidates []tuf.Target
	for _, t := range snap.Targets {
		if !slices.Contains(s.Bad, t.SHA256()) {
			candidates = append(candidates, t)
		}
	}
	t, ok, _ := tuf.Select(candidates, g.HardwareID, d.version, 0)
	if !ok {
		return false
	}
	if open, _ := d.windows[g.SelfUpdateWindow].OpenAt(d.now()); !open || d.m.runningCount() > 0 || d.m.stopped() {
		return false
	}
	blob, err := d.fetch(ctx, t)
	if err == nil {
		err = tuf.VerifyFile(blob, t)
	}
	if err == nil {
		err = installBinary(blob, binaryPath(g.StateDir, t.SHA256()))
	}
	if err == nil {
		s.Trial, s.TrialVer, s.Attempts = t.SHA256(), t.Meta.Version, 0
		err = saveSelfState(g.StateDir, s)
	}
	if err != nil {
		d.log.Error("self-update", "target", t.Name, "err", err)
		d.audit(store.Event{Type: "self-update-failed", Detail: map[string]any{"target": t.Name, "error": err.Error()}})
		return false
	}
	d.audit(store.Event{Type: "self-update-staged", Detail: map[string]any{"version": t.Meta.Version, "sha256": t.SHA256()}})
	d.log.Info("self-update staged; restarting into it", "version", t.Meta.Version)
	return true
}

func installBinary(blob, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	in, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := atomicfile.Create(filepath.Dir(dst), 0o750)
	if err != nil {
		return err
	}
	defer out.Abort()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Commit(filepath.Base(dst))
}
