// SPDX-License-Identifier: Apache-2.0

package smp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/smp"
)

const hw = "acme-mcu-rev1"

// quiet discards logs; FIELDGATE_TEST_LOG=1 sends DEBUG logs to stderr.
var quiet = func() *slog.Logger {
	if os.Getenv("FIELDGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}()

type rig struct {
	kind  string
	spec  sim.Spec
	dev   *sim.SMPDevice
	stop  func()
	drv   devices.Device
	addr  string
	extra map[string]string
}

// startSim runs a simulated SMP device of kind until the test ends (or
// r.stop), with faults, and opens a driver to it.
func startSim(t *testing.T, kind string, faults []string, opts map[string]string) *rig {
	t.Helper()
	return startSimBaud(t, kind, 0, faults, opts)
}

func startSimBaud(t testing.TB, kind string, baud int, faults []string, opts map[string]string) *rig {
	t.Helper()
	r := &rig{kind: kind, extra: opts, spec: sim.Spec{
		ID: "mcu1", Kind: kind, HardwareID: hw, Version: "1.0.0",
		StateDir: t.TempDir(), Address: "127.0.0.1:0", Faults: faults,
		Options: map[string]string{"boot_delay": "50ms", "buf_size": "512"}, Baud: baud,
	}}
	if kind == sim.KindSMPSerial {
		r.spec.Address = filepath.Join(t.TempDir(), "ttySMP")
	}
	r.restart(t)
	return r
}

func (r *rig) restart(t testing.TB) {
	t.Helper()
	if r.stop != nil {
		r.stop()
	}
	d, err := sim.NewSMPDevice(r.spec, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("sim Run: %v", err)
	}
	r.dev = d
	r.spec.Address = d.Addr() // a restart keeps the port
	r.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim Run() = %v, want nil on cancel", err)
		}
		r.stop = nil
	}
	t.Cleanup(func() {
		if r.stop != nil {
			r.stop()
		}
	})
	if r.drv == nil {
		r.addr = d.Addr()
		r.drv = openDriver(t, r.kind, r.addr, r.extra)
	}
}

func openDriver(t testing.TB, kind, addr string, extra map[string]string) devices.Device {
	t.Helper()
	opts := map[string]string{"timeout": "300ms", "retries": "3", "boot_timeout": "10s"}
	for k, v := range extra {
		opts[k] = v
	}
	drv := smp.UDPDriver()
	if kind == sim.KindSMPSerial {
		drv = smp.SerialDriver()
	}
	cfg := devices.Config{ID: "mcu1", Protocol: drv.Name, HardwareID: hw, Address: addr, Options: opts}
	dev, err := drv.Open(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func newImage(t testing.TB, version string, payload int) ([]byte, devices.Image) {
	t.Helper()
	b, err := sim.SMPImage(hw, version, payload)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, devices.Image{Name: "mcu/" + version, Version: version, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

func tlvHash(t testing.TB, img []byte) string {
	t.Helper()
	info, err := smp.ParseImage(img)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(info.Hash[:])
}

func identify(t *testing.T, d devices.Device) devices.Identity {
	t.Helper()
	id, err := d.Identify(context.Background())
	if err != nil {
		t.Fatalf("Identify() = %v", err)
	}
	return id
}

func transfer(t *testing.T, d devices.Device, b []byte, img devices.Image) {
	t.Helper()
	if err := d.Transfer(context.Background(), img, bytes.NewReader(b), nil); err != nil {
		t.Fatalf("Transfer(%s) = %v", img.Name, err)
	}
}

var kinds = []string{sim.KindSMPUDP, sim.KindSMPSerial}

// testKinds is kinds, or under -short only UDP: the serial transport's
// framing is covered by TestUpdateCommit/serial there, and every scenario
// runs over both without -short.
func testKinds() []string {
	if testing.Short() {
		return kinds[:1]
	}
	return kinds
}

func TestUpdateCommit(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	tests := []struct {
		name, kind string
		baud       int
	}{
		{"udp", sim.KindSMPUDP, 0},
		{"serial", sim.KindSMPSerial, 0},
		{"serial-921600", sim.KindSMPSerial, 921600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.baud != 0 {
				t.Skip("serial line at a real baud rate: line-paced, run without -short")
			}
			r := startSimBaud(t, tt.kind, tt.baud, []string{sim.FaultChatty}, nil)
			ctx := context.Background()
			old := identify(t, r.drv)
			if old.Version != "1.0.0" || old.HardwareID != hw || old.ImageSHA256 != "" {
				t.Fatalf("Identify() = %+v, want version 1.0.0 hardware %s and no sha256 (the factory image's file is unknown)", old, hw)
			}
			b, img := newImage(t, "1.1.0", 40000)
			transfer(t, r.drv, b, img)
			if err := r.drv.Activate(ctx); err != nil {
				t.Fatalf("Activate() = %v", err)
			}
			// The daemon compares ImageSHA256 with the target's sha256: the
			// file's, not MCUboot's TLV hash.
			if id := identify(t, r.drv); id.Version != "1.1.0" || id.ImageSHA256 != img.SHA256 || id.ImageSHA256 == tlvHash(t, b) {
				t.Fatalf("Identify() after Activate = %+v, want 1.1.0 with the file's sha256 %s", id, img.SHA256)
			}
			if err := r.drv.Health(ctx); err != nil {
				t.Fatalf("Health() = %v", err)
			}
			if err := r.drv.Commit(ctx); err != nil {
				t.Fatalf("Commit() = %v", err)
			}
			// A power cycle keeps the confirmed image.
			r.restart(t)
			if id := identify(t, r.drv); id.Version != "1.1.0" {
				t.Fatalf("Identify() after commit and restart = %+v, want 1.1.0", id)
			}
		})
	}
}

func TestRevert(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	for _, kind := range testKinds() {
		t.Run(kind, func(t *testing.T) {
			r := startSim(t, kind, nil, nil)
			ctx := context.Background()
			old := identify(t, r.drv)
			b, img := newImage(t, "1.1.0", 20000)
			transfer(t, r.drv, b, img)
			if err := r.drv.Activate(ctx); err != nil {
				t.Fatalf("Activate() = %v", err)
			}
			if err := r.drv.Revert(ctx); err != nil {
				t.Fatalf("Revert() = %v", err)
			}
			if id := identify(t, r.drv); id != old {
				t.Fatalf("Identify() after Revert = %+v, want %+v", id, old)
			}
		})
	}
}

func TestRevertAfterCommit(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	ctx := context.Background()
	old := identify(t, r.drv)
	b, img := newImage(t, "1.2.0", 20000)
	transfer(t, r.drv, b, img)
	for _, step := range []func(context.Context) error{r.drv.Activate, r.drv.Commit, r.drv.Revert} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if id := identify(t, r.drv); id != old {
		t.Fatalf("Identify() after Commit+Revert = %+v, want %+v", id, old)
	}
}

func TestRevertBeforeBoot(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	ctx := context.Background()
	b, img := newImage(t, "1.2.0", 2000)
	transfer(t, r.drv, b, img)
	// Mark the image for test through a second driver, then revert.
	if err := r.drv.Revert(ctx); err != nil {
		t.Fatalf("Revert() with nothing pending = %v", err)
	}
	if err := r.drv.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if err := r.drv.Revert(ctx); err != nil {
		t.Fatalf("Revert() = %v", err)
	}
	if id := identify(t, r.drv); id.Version != "1.0.0" {
		t.Fatalf("Identify() after Revert = %+v, want 1.0.0", id)
	}
}

func TestUnconfirmedRevertsOnReset(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	b, img := newImage(t, "1.1.0", 5000)
	transfer(t, r.drv, b, img)
	if err := r.drv.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.restart(t) // power cycle without confirm: MCUboot reverts
	if id := identify(t, r.drv); id.Version != "1.0.0" {
		t.Fatalf("Identify() after unconfirmed power cycle = %+v, want 1.0.0", id)
	}
}

func TestBootFailReverts(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	for _, kind := range testKinds() {
		t.Run(kind, func(t *testing.T) {
			r := startSim(t, kind, []string{sim.FaultBootFail}, nil)
			b, img := newImage(t, "1.1.0", 5000)
			transfer(t, r.drv, b, img)
			err := r.drv.Activate(context.Background())
			if !errors.Is(err, smp.ErrNotBooted) || devices.IsTransient(err) {
				t.Fatalf("Activate() with boot-fail = %v, want permanent ErrNotBooted", err)
			}
			if id := identify(t, r.drv); id.Version != "1.0.0" {
				t.Fatalf("Identify() after failed boot = %+v, want 1.0.0", id)
			}
		})
	}
}

func TestTransferResume(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	for _, kind := range testKinds() {
		t.Run(kind, func(t *testing.T) {
			r := startSim(t, kind, nil, nil)
			b, img := newImage(t, "1.1.0", 60000)
			ctx, cancel := context.WithCancel(context.Background())
			err := r.drv.Transfer(ctx, img, bytes.NewReader(b), func(done, total int64) {
				if done > total/2 {
					cancel()
				}
			})
			if !devices.IsTransient(err) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Transfer(interrupted) = %v, want transient context.Canceled", err)
			}
			rxBefore, _ := r.dev.Traffic()
			first := int64(-1)
			err = r.drv.Transfer(context.Background(), img, bytes.NewReader(b), func(done, total int64) {
				if first < 0 {
					first = done
				}
			})
			if err != nil {
				t.Fatalf("Transfer(resume) = %v", err)
			}
			rx, _ := r.dev.Traffic()
			if first <= img.Size/2 || rx-rxBefore > img.Size*3/4 {
				t.Errorf("Transfer(resume) first progress %d and %d bytes sent, want > %d and < %d", first, rx-rxBefore, img.Size/2, img.Size*3/4)
			}
		})
	}
}

func TestRebootMidUpload(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, []string{sim.FaultRebootMidUpload}, nil)
	b, img := newImage(t, "1.1.0", 30000)
	transfer(t, r.drv, b, img)
	if err := r.drv.Activate(context.Background()); err != nil {
		t.Fatalf("Activate() after an upload the device restarted = %v", err)
	}
}

func TestLossyReplies(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	if testing.Short() {
		t.Skip("waits out a reply timeout for every dropped reply: takes seconds, run without -short")
	}
	r := startSim(t, sim.KindSMPUDP, []string{sim.FaultDropReplies}, nil)
	ctx := context.Background()
	b, img := newImage(t, "1.1.0", 10000)
	transfer(t, r.drv, b, img)
	for _, step := range []func(context.Context) error{r.drv.Activate, r.drv.Health, r.drv.Commit} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWrongHash(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, []string{sim.FaultWrongHash}, nil)
	b, img := newImage(t, "1.1.0", 3000)
	err := r.drv.Transfer(context.Background(), img, bytes.NewReader(b), nil)
	if !errors.Is(err, smp.ErrHashMismatch) || devices.IsTransient(err) {
		t.Fatalf("Transfer() to a device reporting another hash = %v, want permanent ErrHashMismatch", err)
	}
}

func TestTransferRefusesBadImage(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	b, img := newImage(t, "1.1.0", 3000)
	b[smp.BuildHeaderSize+100] ^= 1 // body no longer matches the hash TLV
	sum := sha256.Sum256(b)
	img.SHA256 = hex.EncodeToString(sum[:])
	tests := []struct {
		name string
		img  devices.Image
	}{
		{"tlv mismatch", img},
		{"file hash mismatch", devices.Image{Name: "x", Version: "1.1.0", Size: img.Size, SHA256: "00"}},
		{"version mismatch", devices.Image{Name: "x", Version: "9.9.9", Size: img.Size}},
	}
	for _, tt := range tests {
		err := r.drv.Transfer(context.Background(), tt.img, bytes.NewReader(b), nil)
		if !errors.Is(err, smp.ErrBadImage) || devices.IsTransient(err) {
			t.Errorf("Transfer(%s) = %v, want permanent ErrBadImage", tt.name, err)
		}
	}
	if rx, _ := r.dev.Traffic(); rx != 0 {
		t.Errorf("Transfer(bad images) sent %d bytes, want none", rx)
	}
}

func TestIdentifyOSInfo(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	for _, tt := range []struct{ opt, want string }{{"config", "from-config"}, {"os-info", hw}} {
		cfg := devices.Config{ID: "mcu1", Protocol: smp.NameUDP, HardwareID: "from-config", Address: r.addr,
			Options: map[string]string{"hardware_id": tt.opt}}
		d, err := smp.UDPDriver().Open(cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if id := identify(t, d); id.HardwareID != tt.want {
			t.Errorf("Identify(hardware_id=%s) = %+v, want hardware id %s", tt.opt, id, tt.want)
		}
	}
}

func TestDeviceGone(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	for _, kind := range testKinds() {
		t.Run(kind, func(t *testing.T) {
			r := startSim(t, kind, nil, map[string]string{"timeout": "50ms", "retries": "1"})
			r.stop()
			_, err := r.drv.Identify(context.Background())
			if !devices.IsTransient(err) {
				t.Fatalf("Identify(no device) = %v, want a transient error", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	tests := []struct {
		drv     devices.Driver
		cfg     devices.Config
		wantErr bool
	}{
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "10.0.0.5"}, false},
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "10.0.0.5:1337", Options: map[string]string{"timeout": "1s", "hardware_id": "os-info"}}, false},
		{smp.UDPDriver(), devices.Config{ID: "a"}, true},
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "10.0.0.5:99999"}, true},
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "h", Options: map[string]string{"bogus": "1"}}, true},
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "h", Options: map[string]string{"timeout": "soon"}}, true},
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "h", Options: map[string]string{"max_packet": "10"}}, true},
		{smp.UDPDriver(), devices.Config{ID: "a", Address: "h", Options: map[string]string{"hardware_id": "guess"}}, true},
		{smp.SerialDriver(), devices.Config{ID: "a", Address: "/dev/ttyACM0", Baud: 115200}, false},
		{smp.SerialDriver(), devices.Config{ID: "a", Address: "/dev/ttyACM0", Baud: -1}, true},
	}
	for _, tt := range tests {
		err := tt.drv.Check(tt.cfg)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s.Check(%+v) = %v, want error %v", tt.drv.Name, tt.cfg, err, tt.wantErr)
		}
	}
}

// A new driver (the daemon restarted) still reverts a test-booted image,
// and refuses to guess when a confirmed image runs.
func TestRevertAfterDaemonRestart(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	ctx := context.Background()
	b, img := newImage(t, "1.1.0", 5000)
	transfer(t, r.drv, b, img)
	if err := r.drv.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := openDriver(t, r.kind, r.addr, nil)
	if err := fresh.Revert(ctx); err != nil {
		t.Fatalf("Revert(new driver, unconfirmed image) = %v", err)
	}
	if id := identify(t, fresh); id.Version != "1.0.0" {
		t.Fatalf("Identify() after Revert = %+v, want 1.0.0", id)
	}
	fresh2 := openDriver(t, r.kind, r.addr, nil)
	if err := fresh2.Revert(ctx); err == nil || devices.IsTransient(err) {
		t.Fatalf("Revert(new driver, confirmed image) = %v, want a permanent error", err)
	}
	if id := identify(t, fresh2); id.Version != "1.0.0" {
		t.Fatalf("Identify() after refused Revert = %+v, want 1.0.0", id)
	}
}

// TestNoisyLine runs an update through a serial line that corrupts and
// drops bytes in both directions: broken frames fail their CRC (or base64)
// and are retransmitted.
func TestNoisyLine(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	if testing.Short() {
		t.Skip("retransmits frames over a faulty serial line simulation: takes seconds, run without -short")
	}
	r := startSim(t, sim.KindSMPSerial, []string{sim.FaultChatty}, nil)
	simEnd, err := os.OpenFile(r.addr, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := serialtest.MakeRaw(simEnd); err != nil {
		t.Fatal(err)
	}
	drvEnd, err := serialtest.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ttyNoisy")
	if err := drvEnd.Link(link); err != nil {
		t.Fatal(err)
	}
	line := serialtest.Connect(drvEnd, simEnd, serialtest.Config{
		AtoB: serialtest.Faults{CorruptEvery: 5000, DropEvery: 9001},
		BtoA: serialtest.Faults{CorruptEvery: 1500},
	})
	t.Cleanup(func() { line.Close(); drvEnd.Close() })
	d := openDriver(t, sim.KindSMPSerial, link, map[string]string{"retries": "10"})
	ctx := context.Background()
	b, img := newImage(t, "1.1.0", 12000)
	transfer(t, d, b, img)
	for _, step := range []func(context.Context) error{d.Activate, d.Health, d.Commit} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if id := identify(t, d); id.Version != "1.1.0" {
		t.Fatalf("Identify() after update over a noisy line = %+v, want 1.1.0", id)
	}
	if ab, ba := line.Bytes(); ab < 12000 || ba == 0 {
		t.Errorf("line carried %d/%d bytes, want the image through it", ab, ba)
	}
}

// resume tells a driver opened after a daemon restart the job's image, as
// the daemon does before it runs a step after Transfer again. A driver
// without Resume is left as it is: the steps that follow show what it lost.
func resume(t *testing.T, d devices.Device, b []byte, img devices.Image) {
	t.Helper()
	r, ok := d.(interface {
		Resume(devices.Image, io.Reader) error
	})
	if !ok {
		t.Errorf("%T has no Resume method", d)
		return
	}
	if err := r.Resume(img, bytes.NewReader(b)); err != nil {
		t.Fatalf("Resume(%s) = %v", img.Name, err)
	}
}

// TestResumeAfterDaemonRestart: the daemon restarts somewhere after
// Transfer, and a new driver, given only the job's image, runs the step
// again and the ones after it. After the test-boot reset MCUboot has
// swapped the slots: slot 1 holds the previous image, so the driver must
// know the new one by its hash, not by its slot. "same version" is a
// rebuild with the factory image's version, which only the hash tells
// apart.
func TestResumeAfterDaemonRestart(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	tests := []struct {
		name      string
		version   string
		activated bool // the first driver's Activate finished (swap done)
		again     bool // the new driver runs Activate again (it was interrupted)
	}{
		{"activate interrupted after the swap", "1.1.0", true, true},
		{"restart during soak", "1.1.0", true, false},
		{"restart before activate", "1.1.0", false, true},
		{"same version, activate interrupted", "1.0.0", true, true},
	}
	for _, kind := range testKinds() {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				r := startSim(t, kind, nil, nil)
				ctx := context.Background()
				b, img := newImage(t, tt.version, 20000+len(tt.name))
				transfer(t, r.drv, b, img)
				if tt.activated {
					if err := r.drv.Activate(ctx); err != nil {
						t.Fatalf("Activate() = %v", err)
					}
				}
				fresh := openDriver(t, r.kind, r.addr, nil)
				resume(t, fresh, b, img)
				if tt.again {
					if err := fresh.Activate(ctx); err != nil {
						t.Fatalf("Activate(new driver) = %v", err)
					}
				}
				if id := identify(t, fresh); id.Version != tt.version || id.ImageSHA256 != img.SHA256 {
					t.Fatalf("Identify(new driver) = %+v, want version %s with sha256 %s", id, tt.version, img.SHA256)
				}
				if err := fresh.Health(ctx); err != nil {
					t.Fatalf("Health(new driver) = %v", err)
				}
				if err := fresh.Commit(ctx); err != nil {
					t.Fatalf("Commit(new driver) = %v", err)
				}
				r.restart(t) // power cycle: only a confirmed image stays
				if id := identify(t, fresh); id.Version != tt.version || id.ImageSHA256 != img.SHA256 {
					t.Fatalf("Identify() after commit and power cycle = %+v, want version %s with sha256 %s", id, tt.version, img.SHA256)
				}
			})
		}
	}
}

// TestResumeRevertAfterCommit: a new driver told the job's image can
// revert a confirmed image (without it, it must refuse: see
// TestRevertAfterDaemonRestart).
func TestResumeRevertAfterCommit(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	ctx := context.Background()
	old := identify(t, r.drv)
	b, img := newImage(t, "1.2.0", 20000)
	transfer(t, r.drv, b, img)
	for _, step := range []func(context.Context) error{r.drv.Activate, r.drv.Commit} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fresh := openDriver(t, r.kind, r.addr, nil)
	resume(t, fresh, b, img)
	if err := fresh.Revert(ctx); err != nil {
		t.Fatalf("Revert(new driver after Resume) = %v", err)
	}
	if id := identify(t, fresh); id != old {
		t.Fatalf("Identify() after Revert = %+v, want %+v", id, old)
	}
}

// TestResumeCommitRefusesRevertedDevice: the device power-cycled during the
// soak and MCUboot went back to the previous image; the new image waits in
// slot 1. Commit must fail without confirming it (which would install it
// at the next reset).
func TestResumeCommitRefusesRevertedDevice(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	ctx := context.Background()
	b, img := newImage(t, "1.1.0", 20000)
	transfer(t, r.drv, b, img)
	if err := r.drv.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	r.restart(t) // unconfirmed: MCUboot reverts
	fresh := openDriver(t, r.kind, r.addr, nil)
	resume(t, fresh, b, img)
	if err := fresh.Commit(ctx); !errors.Is(err, smp.ErrHashMismatch) || devices.IsTransient(err) {
		t.Fatalf("Commit() on a device back on its previous image = %v, want permanent ErrHashMismatch", err)
	}
	r.restart(t)
	if id := identify(t, fresh); id.Version != "1.0.0" {
		t.Fatalf("Identify() after the refused Commit and a power cycle = %+v, want 1.0.0", id)
	}
}

// TestResumeRefusesOtherBytes: Resume checks that the bytes are the image.
func TestResumeRefusesOtherBytes(t *testing.T) {
	t.Parallel() // each test runs its own simulator (own state dir, own port or pty)
	r := startSim(t, sim.KindSMPUDP, nil, nil)
	b, img := newImage(t, "1.1.0", 3000)
	other, _ := newImage(t, "1.1.0", 3001)
	rs, ok := r.drv.(interface {
		Resume(devices.Image, io.Reader) error
	})
	if !ok {
		t.Fatalf("%T has no Resume method", r.drv)
	}
	for name, src := range map[string][]byte{"other image": other[:len(b)], "short": b[:100]} {
		if err := rs.Resume(img, bytes.NewReader(src)); err == nil || devices.IsTransient(err) {
			t.Errorf("Resume(%s) = %v, want a permanent error", name, err)
		}
	}
	if rx, _ := r.dev.Traffic(); rx != 0 {
		t.Errorf("Resume sent %d bytes to the device, want none", rx)
	}
}
