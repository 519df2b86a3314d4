// SPDX-License-Identifier: Apache-2.0

package xmodem_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// startSim runs a simulated console device and returns its spec.
func startSim(t *testing.T, spec sim.Spec) sim.Spec {
	t.Helper()
	dir := t.TempDir()
	if spec.ID == "" {
		spec.ID = "dev1"
	}
	spec.Kind = sim.ConsoleKind
	if spec.HardwareID == "" {
		spec.HardwareID = "acme-io16-rev3"
	}
	if spec.Version == "" {
		spec.Version = "1.0.0"
	}
	if spec.StateDir == "" {
		spec.StateDir = filepath.Join(dir, "state")
	}
	spec.Address = filepath.Join(dir, "tty")
	if spec.Options == nil {
		spec.Options = map[string]string{"boot_delay": "10ms"}
	}
	runSim(t, spec)
	return spec
}

func runSim(t *testing.T, spec sim.Spec) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- sim.RunNotify(ctx, []sim.Spec{spec}, slog.New(slog.DiscardHandler), func(sim.Spec) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("sim.Run() = %v before the device was ready", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim.Run() = %v after cancel, want nil", err)
		}
	})
}

func open(t *testing.T, drv devices.Driver, spec sim.Spec, opts map[string]string) devices.Device {
	t.Helper()
	cfg := devices.Config{ID: spec.ID, Protocol: drv.Name, HardwareID: spec.HardwareID, Address: spec.Address, Baud: spec.Baud, Options: opts}
	if err := drv.Check(cfg); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	d, err := drv.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func imageOf(name string, b []byte, version string) devices.Image {
	sum := sha256.Sum256(b)
	return devices.Image{Name: name, Version: version, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

func TestDriverEndToEnd(t *testing.T) {
	for _, tt := range []struct {
		name string
		drv  devices.Driver
		baud int
	}{
		{"xmodem", xmodem.Driver(), 0},
		{"ymodem", xmodem.YmodemDriver(), 0},
		{"xmodem-115200", xmodem.Driver(), 115200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.baud != 0 {
				t.Skip("console at a real baud rate: line-paced, run without -short")
			}
			t.Parallel()
			spec := startSim(t, sim.Spec{Baud: tt.baud, Options: map[string]string{"boot_delay": "10ms", "image_size": "3000"}})
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			d := open(t, tt.drv, spec, map[string]string{"timeout": "2s"})

			id, err := d.Identify(ctx)
			if err != nil {
				t.Fatalf("Identify() = %v", err)
			}
			factory := sim.MakeImage(spec.HardwareID, "1.0.0", 3000)
			fsum := sha256.Sum256(factory)
			want := devices.Identity{Model: "fieldgate-sim-mcu", Serial: "SIM-dev1", HardwareID: spec.HardwareID, Version: "1.0.0", ImageSHA256: hex.EncodeToString(fsum[:])}
			if id != want {
				t.Fatalf("Identify() = %+v, want %+v", id, want)
			}

			var backup bytes.Buffer
			n, err := d.Backup(ctx, &backup)
			if err != nil || n != int64(len(factory)) || !bytes.Equal(backup.Bytes(), factory) {
				t.Fatalf("Backup() = %d, %v (equal %v), want %d bytes of the factory image", n, err, bytes.Equal(backup.Bytes(), factory), len(factory))
			}

			img := sim.MakeImage(spec.HardwareID, "2.0.0", 10000)
			var calls int
			var last int64
			err = d.Transfer(ctx, imageOf("fw.bin", img, "2.0.0"), bytes.NewReader(img), func(done, total int64) {
				calls++
				last = done
				if total != int64(len(img)) {
					t.Errorf("progress total = %d, want %d", total, len(img))
				}
			})
			if err != nil {
				t.Fatalf("Transfer() = %v", err)
			}
			if calls == 0 || last != int64(len(img)) {
				t.Errorf("progress: %d calls, last %d, want last %d", calls, last, len(img))
			}
			if err := d.Activate(ctx); err != nil {
				t.Fatalf("Activate() = %v", err)
			}
			if err := d.Health(ctx); err != nil {
				t.Fatalf("Health() = %v", err)
			}
			id, err = d.Identify(ctx)
			if err != nil || id.Version != "2.0.0" {
				t.Fatalf("Identify() after update = %+v, %v; want version 2.0.0", id, err)
			}
			if err := d.Commit(ctx); err != nil {
				t.Errorf("Commit() = %v, want nil", err)
			}
			if err := d.Revert(ctx); !errors.Is(err, devices.ErrUnsupported) {
				t.Errorf("Revert() = %v, want ErrUnsupported", err)
			}
		})
	}
}

func TestDriverBootFailAndRestore(t *testing.T) {
	t.Parallel() // its own simulator on its own pty
	spec := startSim(t, sim.Spec{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	d := open(t, xmodem.Driver(), spec, nil)
	var backup bytes.Buffer
	if _, err := d.Backup(ctx, &backup); err != nil {
		t.Fatalf("Backup() = %v", err)
	}
	// An image for other hardware transfers fine but does not boot.
	bad := sim.MakeImage("other-hw", "9.9.9", 5000)
	if err := d.Transfer(ctx, imageOf("bad.bin", bad, "9.9.9"), bytes.NewReader(bad), nil); err != nil {
		t.Fatalf("Transfer(other hw) = %v", err)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	err := d.Health(ctx)
	if err == nil || devices.IsTransient(err) || !strings.Contains(err.Error(), "runs no image") {
		t.Fatalf("Health() after a bad image = %v, want a permanent 'runs no image' error", err)
	}
	// Rollback = re-push the backup.
	b := backup.Bytes()
	if err := d.Transfer(ctx, imageOf("backup", b, "1.0.0"), bytes.NewReader(b), nil); err != nil {
		t.Fatalf("Transfer(backup) = %v", err)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if err := d.Health(ctx); err != nil {
		t.Fatalf("Health() after restoring the backup = %v", err)
	}
}

// TestDriverBootFailFaultRestore: with the simulator's boot-fail fault the
// factory image runs, a new version does not boot, and the re-pushed
// backup (handed over without a sha256, as the daemon does) runs again.
func TestDriverBootFailFaultRestore(t *testing.T) {
	t.Parallel() // its own simulator on its own pty
	spec := startSim(t, sim.Spec{Faults: []string{"boot-fail"}})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	d := open(t, xmodem.Driver(), spec, nil)
	if id, err := d.Identify(ctx); err != nil || id.Version != "1.0.0" {
		t.Fatalf("Identify() with boot-fail = %+v, %v; want the factory 1.0.0 running", id, err)
	}
	var backup bytes.Buffer
	if _, err := d.Backup(ctx, &backup); err != nil {
		t.Fatalf("Backup() = %v", err)
	}
	img := sim.MakeImage("acme-io16-rev3", "2.0.0", 5000)
	if err := d.Transfer(ctx, imageOf("fw", img, "2.0.0"), bytes.NewReader(img), nil); err != nil {
		t.Fatalf("Transfer(2.0.0) = %v", err)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if err := d.Health(ctx); err == nil || !strings.Contains(err.Error(), "runs no image") {
		t.Fatalf("Health() after 2.0.0 with boot-fail = %v, want 'runs no image'", err)
	}
	b := backup.Bytes()
	restore := devices.Image{Name: "backup", Version: "1.0.0", Size: int64(len(b))}
	if err := d.Transfer(ctx, restore, bytes.NewReader(b), nil); err != nil {
		t.Fatalf("Transfer(backup) = %v", err)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if id, err := d.Identify(ctx); err != nil || id.Version != "1.0.0" {
		t.Errorf("Identify() after restoring the backup = %+v, %v; want 1.0.0", id, err)
	}
}

func TestDriverStatePersists(t *testing.T) {
	dir := t.TempDir()
	spec := sim.Spec{StateDir: filepath.Join(dir, "state")}
	img := sim.MakeImage("acme-io16-rev3", "3.1.0", 4000)
	func() {
		s := startSimNoCleanupOrder(t, spec)
		defer s.stop()
		d := open(t, xmodem.Driver(), s.spec, nil)
		ctx := t.Context()
		if err := d.Transfer(ctx, imageOf("fw", img, "3.1.0"), bytes.NewReader(img), nil); err != nil {
			t.Fatalf("Transfer() = %v", err)
		}
		if err := d.Activate(ctx); err != nil {
			t.Fatalf("Activate() = %v", err)
		}
	}()
	s := startSimNoCleanupOrder(t, spec)
	defer s.stop()
	d := open(t, xmodem.Driver(), s.spec, nil)
	id, err := d.Identify(t.Context())
	if err != nil || id.Version != "3.1.0" {
		t.Fatalf("Identify() after a restart = %+v, %v; want version 3.1.0", id, err)
	}
}

type running struct {
	spec sim.Spec
	stop func()
}

func startSimNoCleanupOrder(t *testing.T, spec sim.Spec) running {
	t.Helper()
	spec.ID, spec.Kind, spec.HardwareID, spec.Version = "dev1", sim.ConsoleKind, "acme-io16-rev3", "1.0.0"
	spec.Address = filepath.Join(t.TempDir(), "tty")
	spec.Options = map[string]string{"boot_delay": "10ms"}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- sim.RunNotify(ctx, []sim.Spec{spec}, slog.New(slog.DiscardHandler), func(sim.Spec) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("sim.Run() = %v", err)
	}
	return running{spec, func() { cancel(); <-done }}
}

func TestDriverCheck(t *testing.T) {
	tests := []struct {
		name string
		cfg  devices.Config
		want string // substring of the error; "" = valid
	}{
		{"valid", devices.Config{ID: "a", Address: "/dev/ttyUSB0", Options: map[string]string{"prompt": "=> ", "timeout": "3s"}}, ""},
		{"unknown key", devices.Config{ID: "a", Address: "/dev/ttyUSB0", Options: map[string]string{"promt": "> "}}, "promt"},
		{"no address", devices.Config{ID: "a"}, "address"},
		{"bad duration", devices.Config{ID: "a", Address: "x", Options: map[string]string{"boot_timeout": "soon"}}, "boot_timeout"},
		{"bad retries", devices.Config{ID: "a", Address: "x", Options: map[string]string{"retries": "0"}}, "retries"},
		{"empty prompt", devices.Config{ID: "a", Address: "x", Options: map[string]string{"prompt": ""}}, "prompt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := xmodem.Driver().Check(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%+v) = %v, want nil", tt.cfg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check(%+v) = %v, want an error naming %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestDriverNoDevice(t *testing.T) {
	d := open(t, xmodem.Driver(), sim.Spec{ID: "x", Address: filepath.Join(t.TempDir(), "missing")}, nil)
	_, err := d.Identify(t.Context())
	if err == nil || !devices.IsTransient(err) {
		t.Fatalf("Identify() on a missing port = %v, want a transient error", err)
	}
}
