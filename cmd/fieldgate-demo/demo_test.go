// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// buildAll builds the four binaries once per test binary run.
func buildAll(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "../fieldgated", "../fieldgatectl", "../fieldgate-repo", "../fieldgate-sim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func output(t *testing.T) io.Writer {
	if testing.Verbose() {
		return os.Stdout
	}
	return io.Discard
}

// TestEndToEnd runs the whole path with the real binaries: a signed
// repository, the daemon, simulated serial devices over ptys, and MQTT.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs every binary")
	}
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: 2, Approval: "local"})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, id := range []string{"io16-a", "io16-b"} {
		d := res.Devices[id]
		if d.Version != newVersion {
			t.Errorf("device %s reports version %q over MQTT, want %q", id, d.Version, newVersion)
		}
		if d.KnownGood != newVersion || d.Floor != 3 {
			t.Errorf("device %s known_good=%q floor=%d, want %q and 3 (raised by the commit)", id, d.KnownGood, d.Floor, newVersion)
		}
		if !slices.Contains(res.Seen[id], "transfer") || !slices.Contains(res.Seen[id], "verify") {
			t.Errorf("device %s states seen = %v, want transfer and verify among them", id, res.Seen[id])
		}
	}
	if !strings.Contains(res.Status, "approved (local) by button approve") {
		t.Errorf("fieldgatectl status does not show the button's local approval:\n%s", res.Status)
	}
	if !strings.Contains(res.Status, newVersion) || !strings.Contains(res.Status, "succeeded") {
		t.Errorf("fieldgatectl status does not show the new version and a succeeded job:\n%s", res.Status)
	}
}

// TestEndToEndTamperedTarget alters the target's bytes after signing:
// nothing may reach a device, and status must say why.
func TestEndToEndTamperedTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs every binary")
	}
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rejected := func(r *Result) bool {
		for _, c := range r.Gateway.Health {
			if c.Name == "verification-failed" && strings.Contains(r.Devices["io16-a"].LastError, "rejected") {
				return true
			}
		}
		return false
	}
	res, err := Run(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: 1, Tamper: true, Until: rejected})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	d := res.Devices["io16-a"]
	if d.Version != oldVersion {
		t.Errorf("device version = %q after a tampered target, want %q", d.Version, oldVersion)
	}
	for _, s := range res.Seen["io16-a"] {
		if s != "idle" {
			t.Errorf("device went through state %q with a tampered target: something reached it", s)
		}
	}
	t.Logf("device last_error: %s", d.LastError)
	if !strings.Contains(res.Status, "verification-failed") {
		t.Errorf("fieldgatectl status does not show verification-failed:\n%s", res.Status)
	}
}

// TestEndToEndOfflineBundle updates a device from an offline bundle on a
// gateway without an uplink to the repository.
func TestEndToEndOfflineBundle(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs every binary")
	}
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: 1, Offline: true})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d := res.Devices["io16-a"]; d.Version != newVersion {
		t.Errorf("device version = %q after an offline import, want %q", d.Version, newVersion)
	}
}
