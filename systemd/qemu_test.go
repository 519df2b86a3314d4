// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The ARM builds are proven on this (usually amd64) machine by running them
// under qemu-user-static: each binary's --version, fieldgated's
// --check-config on the shipped example, and one complete simulated update
// by fieldgate-demo with every fieldgate binary emulated (the repository,
// the simulated serial devices, the daemon and fieldgatectl); only the demo
// driver itself runs natively.

func TestInteropQEMUARM(t *testing.T)   { testQEMU(t, "arm", "qemu-arm-static") }
func TestInteropQEMUARM64(t *testing.T) { testQEMU(t, "arm64", "qemu-aarch64-static") }

func testQEMU(t *testing.T, goarch, emulator string) {
	if testing.Short() {
		t.Skip("cross-builds every binary and runs an emulated update")
	}
	qemu := needPeer(t, emulator, "qemu-user-static")
	t.Parallel()
	const version = "qemu-test"
	bin := t.TempDir()
	crossBuild(t, goarch, bin, version, fieldgateBinaries...)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args[0] = filepath.Join(bin, args[0])
		out, err := exec.CommandContext(ctx, qemu, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", emulator, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The same release build the packages ship: fieldgated for armv7 stays
	// within its goal on every run, not only under make footprint.
	if goarch == "arm" {
		fi, err := os.Stat(filepath.Join(bin, "fieldgated"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("fieldgated for linux/arm (v7): %d bytes stripped", fi.Size())
		if fi.Size() > maxDaemonSizeARM {
			t.Errorf("fieldgated for linux/arm (v7) is %d bytes stripped, goal ≤ %d (12 MiB)", fi.Size(), maxDaemonSizeARM)
		}
	}

	t.Run("version", func(t *testing.T) {
		for _, b := range fieldgateBinaries {
			if out := run(t, b, "--version"); !strings.Contains(out, version) {
				t.Errorf("%s --version = %q, want it to contain %q", b, out, version)
			}
		}
	})

	t.Run("check-config", func(t *testing.T) {
		// The example names /etc/fieldgate/root.json, which the check
		// reads: point it at the first root of a new repository.
		raw, err := os.ReadFile("../daemon/config/example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		repo := filepath.Join(t.TempDir(), "repo")
		run(t, "fieldgate-repo", "init", repo, "--insecure-plaintext-keys")
		example := filepath.Join(t.TempDir(), "example.yaml")
		root := filepath.Join(repo, "repository", "metadata", "1.root.json")
		if err := os.WriteFile(example, bytes.Replace(raw, []byte("/etc/fieldgate/root.json"), []byte(root), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := run(t, "fieldgated", "--check-config", example); !strings.Contains(out, ": ok") {
			t.Errorf("fieldgated --check-config %s = %q, want ok", example, out)
		}
		// A broken configuration must fail under emulation too.
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte("gateway:\n  idd: gw1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(qemu, filepath.Join(bin, "fieldgated"), "--check-config", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "idd") {
			t.Errorf("fieldgated --check-config on a misspelt key = %v %q, want an error naming idd", err, out)
		}
	})

	t.Run("update", func(t *testing.T) {
		// The demo driver is the lead's command; it is run, not imported
		// (nothing imports a command).
		demo := filepath.Join(t.TempDir(), "fieldgate-demo")
		build := exec.Command("go", "build", "-o", demo, "../cmd/fieldgate-demo")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build fieldgate-demo: %v\n%s", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, demo, "-bin", bin, "-work", filepath.Join(t.TempDir(), "work"),
			"-emulator", qemu, "-timeout", "150s")
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		if err != nil || !strings.Contains(out.String(), "demo finished") {
			t.Fatalf("fieldgate-demo under %s: %v\n%s", emulator, err, out.String())
		}
		t.Logf("simulated update with every binary under %s: %v", emulator, time.Since(start).Round(time.Second))
		if testing.Verbose() {
			t.Log(out.String())
		}
	})
}
