// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/devices/tftp"
)

// runSim runs a sim device until the test ends.
func runSim(t *testing.T, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil on cancel", err)
		}
	})
}

func tftpSpec(t *testing.T, kind string, faults ...string) Spec {
	return Spec{ID: "plc1", Kind: kind, HardwareID: "acme-plc", Version: "1.0.0",
		StateDir: t.TempDir(), Address: "127.0.0.1:0", Faults: faults,
		Options: map[string]string{"image_size": "5000", "boot_delay": "10ms"}}
}

func startTFTPServer(t *testing.T, spec Spec) *TFTPDevice {
	t.Helper()
	d, err := NewTFTPServer(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, d.Run)
	return d
}

func image(hw, version string, size int) (devices.Image, []byte) {
	b := MakeImage(hw, version, size)
	sum := sha256.Sum256(b)
	return devices.Image{Name: "acme/" + version + "/fw.bin", Version: version, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, b
}

func openTFTP(t *testing.T, addr string) *tftp.Device {
	t.Helper()
	cfg := devices.Config{ID: "plc1", Protocol: "tftp", Address: addr,
		Options: map[string]string{"timeout": "200ms", "boot_timeout": "5s", "poll_interval": "20ms"}}
	if err := tftp.Driver().Check(cfg); err != nil {
		t.Fatal(err)
	}
	d, err := tftp.NewDevice(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTFTPServerUpdateAndRestart(t *testing.T) {
	ctx := context.Background()
	spec := tftpSpec(t, "tftp-server")
	sim := startTFTPServer(t, spec)
	d := openTFTP(t, sim.Addr())

	id, err := d.Identify(ctx)
	if err != nil || id.Version != "1.0.0" || id.HardwareID != "acme-plc" {
		t.Fatalf("Identify() = %+v, %v; want version 1.0.0 of acme-plc", id, err)
	}
	var backup bytes.Buffer
	if n, err := d.Backup(ctx, &backup); err != nil || !bytes.Equal(backup.Bytes(), MakeImage("acme-plc", "1.0.0", 5000)) {
		t.Fatalf("Backup() = %d, %v; want the factory image", n, err)
	}
	img, b := image("acme-plc", "2.0.0", 300_000)
	var last int64
	if err := d.Transfer(ctx, img, bytes.NewReader(b), func(done, total int64) { last = done }); err != nil {
		t.Fatalf("Transfer() = %v", err)
	}
	if last != img.Size {
		t.Errorf("progress ended at %d, want %d", last, img.Size)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if err := d.Health(ctx); err != nil {
		t.Fatalf("Health() = %v", err)
	}
	if id, _ := d.Identify(ctx); id.Version != "2.0.0" || id.ImageSHA256 != img.SHA256 {
		t.Fatalf("Identify() after update = %+v, want version 2.0.0 sha %s", id, img.SHA256)
	}

	// A restarted device keeps its firmware.
	spec2 := spec
	sim2 := startTFTPServer(t, spec2)
	if id, err := openTFTP(t, sim2.Addr()).Identify(ctx); err != nil || id.Version != "2.0.0" {
		t.Fatalf("Identify() after restart = %+v, %v; want 2.0.0", id, err)
	}
}

func TestTFTPServerFaults(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		faults  []string
		hw      string
		step    string // where it fails
		wantMsg string
	}{
		{"wrong hardware does not boot", nil, "other-hw", "activate", "did not boot"},
		{"boot-fail", []string{"boot-fail"}, "acme-plc", "activate", "did not boot"},
		{"corrupt read-back", []string{"corrupt-readback"}, "acme-plc", "transfer", "reports sha256"},
		{"read-back refused", []string{"no-readback"}, "acme-plc", "transfer", "access violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := startTFTPServer(t, tftpSpec(t, "tftp-server", tt.faults...))
			d := openTFTP(t, sim.Addr())
			img, b := image(tt.hw, "2.0.0", 10_000)
			err := d.Transfer(ctx, img, bytes.NewReader(b), nil)
			if tt.step == "activate" {
				if err != nil {
					t.Fatalf("Transfer() = %v", err)
				}
				err = d.Activate(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) || devices.IsTransient(err) {
				t.Fatalf("%s = %v, want a permanent error containing %q", tt.step, err, tt.wantMsg)
			}
			if id, _ := d.Identify(ctx); tt.step == "activate" && id.Version != "1.0.0" {
				t.Errorf("Identify() after failed boot = %s, want the old 1.0.0", id.Version)
			}
		})
	}
}

func TestTFTPServerRefusesOtherFiles(t *testing.T) {
	sim := startTFTPServer(t, tftpSpec(t, "tftp-server"))
	c := tftp.Client{Timeout: 100 * time.Millisecond}
	err := c.Put(context.Background(), sim.Addr(), "version", strings.NewReader("x"), 1, nil)
	var re *tftp.RemoteError
	if !errors.As(err, &re) || re.Code != tftp.ErrCodeAccess {
		t.Fatalf("Put(version) = %v, want access violation", err)
	}
}

func openPull(t *testing.T, addr string) *tftp.PullDevice {
	t.Helper()
	cfg := devices.Config{ID: "rtu1", Protocol: "tftp-pull", Address: addr,
		Options: map[string]string{"listen": "127.0.0.1:0", "timeout": "200ms", "boot_timeout": "5s", "poll_interval": "20ms", "fetch_timeout": "20s"}}
	if err := tftp.PullDriver().Check(cfg); err != nil {
		t.Fatal(err)
	}
	d, err := tftp.NewPullDevice(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTFTPPullUpdate(t *testing.T) {
	ctx := context.Background()
	spec := tftpSpec(t, "tftp-pull")
	sim, err := NewTFTPPull(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, sim.Run)
	d := openPull(t, sim.Addr())
	if id, err := d.Identify(ctx); err != nil || id.Version != "1.0.0" {
		t.Fatalf("Identify() = %+v, %v; want 1.0.0", id, err)
	}
	img, b := image("acme-plc", "3.1.0", 200_000)
	if err := d.Transfer(ctx, img, bytes.NewReader(b), nil); err != nil {
		t.Fatalf("Transfer() = %v", err)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if id, _ := d.Identify(ctx); id.Version != "3.1.0" {
		t.Fatalf("Identify() after pull = %s, want 3.1.0", id.Version)
	}
	stored, _ := os.ReadFile(filepath.Join(spec.StateDir, "tftp-firmware.bin"))
	if !bytes.Equal(stored, b) {
		t.Fatalf("device stored %d bytes, want the %d-byte image", len(stored), len(b))
	}

	// The source must match the announced hash before anything is served.
	bad := img
	bad.SHA256 = strings.Repeat("ab", 32)
	if err := d.Transfer(ctx, bad, bytes.NewReader(b), nil); err == nil || !strings.Contains(err.Error(), "source has") {
		t.Fatalf("Transfer(wrong sha) = %v, want a source hash error", err)
	}
}

func TestTFTPPullWrongHash(t *testing.T) {
	sim, err := NewTFTPPull(tftpSpec(t, "tftp-pull", "wrong-hash"), nil)
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, sim.Run)
	img, b := image("acme-plc", "3.1.0", 20_000)
	err = openPull(t, sim.Addr()).Transfer(context.Background(), img, bytes.NewReader(b), nil)
	if err == nil || !strings.Contains(err.Error(), "reports sha256 0000") || devices.IsTransient(err) {
		t.Fatalf("Transfer() = %v, want a permanent 'reports sha256' error", err)
	}
}

// TestInteropTFTPServerSim drives the simulated device with Debian's
// tftp-hpa client: put a new image, then read the version file.
func TestInteropTFTPServerSim(t *testing.T) {
	bin := devicetest.NeedPeer(t, "tftp", "tftp-hpa")
	sim := startTFTPServer(t, tftpSpec(t, "tftp-server"))
	host, port, _ := strings.Cut(sim.Addr(), ":")
	dir := t.TempDir()
	_, b := image("acme-plc", "4.0.0", 123_457)
	src := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-m", "binary", host, port, "-c", "put", src, "firmware.bin").CombinedOutput(); err != nil {
		t.Fatalf("tftp put: %v: %s", err, out)
	}
	ver := filepath.Join(dir, "version")
	if out, err := exec.CommandContext(ctx, bin, "-m", "binary", host, port, "-c", "get", "version", ver).CombinedOutput(); err != nil {
		t.Fatalf("tftp get version: %v: %s", err, out)
	}
	rec, _ := os.ReadFile(ver)
	id, state, err := tftp.ParseIdentity(string(rec))
	if err != nil || id.Version != "4.0.0" || state != tftp.StateRunning {
		t.Fatalf("version file %q = %+v %s %v, want version 4.0.0 running", rec, id, state, err)
	}
}

// TestTFTPRollbackByRepush is the daemon's rollback of a single-slot TFTP
// device: with boot-fail the new image does not boot, and re-pushing the
// factory image (the daemon's backup, handed over without a sha256)
// brings the old version back.
func TestTFTPRollbackByRepush(t *testing.T) {
	ctx := context.Background()
	type dev interface {
		Transfer(context.Context, devices.Image, io.Reader, devices.Progress) error
		Activate(context.Context) error
		Identify(context.Context) (devices.Identity, error)
	}
	tests := []struct {
		kind string
		open func(t *testing.T, spec Spec) dev
	}{
		{"tftp-server", func(t *testing.T, spec Spec) dev { return openTFTP(t, startTFTPServer(t, spec).Addr()) }},
		{"tftp-pull", func(t *testing.T, spec Spec) dev {
			s, err := NewTFTPPull(spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			runSim(t, s.Run)
			return openPull(t, s.Addr())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			spec := tftpSpec(t, tt.kind, "boot-fail")
			d := tt.open(t, spec)
			img, b := image("acme-plc", "2.0.0", 6000)
			if err := d.Transfer(ctx, img, bytes.NewReader(b), nil); err != nil {
				t.Fatalf("Transfer(2.0.0) = %v", err)
			}
			if err := d.Activate(ctx); err == nil || !strings.Contains(err.Error(), "did not boot") {
				t.Fatalf("Activate(2.0.0) with boot-fail = %v, want 'did not boot'", err)
			}
			backup := MakeImage("acme-plc", "1.0.0", 5000)
			restore := devices.Image{Name: "backup", Version: "1.0.0", Size: int64(len(backup))}
			if err := d.Transfer(ctx, restore, bytes.NewReader(backup), nil); err != nil {
				t.Fatalf("Transfer(backup without sha256) = %v, want nil", err)
			}
			if err := d.Activate(ctx); err != nil {
				t.Fatalf("Activate(backup) = %v, want nil: the factory image boots despite boot-fail", err)
			}
			if id, err := d.Identify(ctx); err != nil || id.Version != "1.0.0" {
				t.Errorf("Identify() after the restore = %+v, %v; want 1.0.0", id, err)
			}
		})
	}
}
