// SPDX-License-Identifier: Apache-2.0

// Package devicetest provides an in-memory field device for tests of code
// that drives devices.Device: it keeps an installed image and a staged one,
// boots images whose bytes say which version they are, and has knobs for the
// failures the daemon must survive. It records every call in order.
//
// For the TestInterop... tests of the drivers, NeedPeer finds a real peer
// program and Missing skips a test whose peer is absent (or fails it when
// CI=true).
package devicetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/fieldgate/fieldgate/devices"
)

// Device is a fake single-slot (or A/B) device. Its image format is simply
// "version=<v>\n" followed by anything; Image builds one. It is safe for
// concurrent use.
type Device struct {
	mu sync.Mutex

	// Knobs, set before use or under the test's own synchronisation.
	Caps        devices.Capabilities
	HardwareID  string
	FailAt      int64  // Transfer fails (transiently) after this many bytes; 0 = never
	FailTimes   int    // how many transfers fail before one succeeds; 0 with FailAt set = always
	BootFail    string // activated images of this version never come up
	WrongHash   bool   // Identify reports a wrong image hash
	Running     bool   // Interlock reports the process running
	Unreachable bool   // every call fails transiently
	// NeedResume makes Activate, Health, Commit and Revert fail
	// permanently unless Transfer or Resume gave the image since New or
	// the last Forget, like a driver that loses its state when the daemon
	// restarts (see devices.Resumer).
	NeedResume bool
	unhealthy  bool // Health fails (see SetUnhealthy)

	installed []byte // running image
	staged    []byte // transferred, not yet activated
	previous  []byte // A/B: the other slot
	booted    bool
	calls     []string
	known     *devices.Image // from Transfer or Resume; dropped by Forget
}

// New returns a device running an image of version v.
func New(hw, v string) *Device {
	return &Device{HardwareID: hw, installed: Image(v, 64), booted: true,
		Caps: devices.Capabilities{Slots: 1, ReadBack: true, Health: true, Interlock: true}}
}

var (
	_ devices.Device  = (*Device)(nil)
	_ devices.Resumer = (*Device)(nil)
)

// Image returns an image of version v padded to at least size bytes.
func Image(v string, size int) []byte {
	b := []byte("version=" + v + "\n")
	for len(b) < size {
		b = append(b, byte(len(b)))
	}
	return b
}

func version(img []byte) (string, bool) {
	line, _, ok := bytes.Cut(img, []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte("version=")) {
		return "", false
	}
	return string(line[len("version="):]), true
}

// Calls returns the methods called so far, in order.
func (d *Device) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// Installed returns the running image.
func (d *Device) Installed() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.installed...)
}

func (d *Device) call(name string) error {
	d.calls = append(d.calls, name)
	if d.Unreachable {
		return devices.Transient(name, errors.New("device does not answer"))
	}
	return nil
}

// Forget drops what the driver side learned from Transfer or Resume, as a
// daemon restart does; the device keeps its images.
func (d *Device) Forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.known = nil
}

// need fails op when NeedResume is set and the image is unknown.
func (d *Device) need(op string) error {
	if d.NeedResume && d.known == nil {
		return devices.Permanent(op, errors.New("the transferred image is unknown: no Transfer or Resume since the restart"))
	}
	return nil
}

// Resume implements devices.Resumer: it checks that r holds img (size and
// sha256, when given) and remembers img.
func (d *Device) Resume(img devices.Image, r io.Reader) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, "resume") // no I/O with the device: Unreachable does not apply
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return devices.Permanent("resume", err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != img.Size || (img.SHA256 != "" && sum != img.SHA256) {
		return devices.Permanent("resume", fmt.Errorf("got %d bytes with sha256 %s, want %d with %s", n, sum, img.Size, img.SHA256))
	}
	d.known = &img
	return nil
}

func (d *Device) Capabilities() devices.Capabilities { return d.Caps }

func (d *Device) Identify(ctx context.Context) (devices.Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("identify"); err != nil {
		return devices.Identity{}, err
	}
	if !d.booted {
		return devices.Identity{}, devices.Transient("identify", errors.New("device stays in its bootloader"))
	}
	v, _ := version(d.installed)
	sum := sha256.Sum256(d.installed)
	if d.WrongHash {
		sum[0] ^= 0xff
	}
	return devices.Identity{Model: "fake", HardwareID: d.HardwareID, Version: v, ImageSHA256: hex.EncodeToString(sum[:])}, nil
}

func (d *Device) Interlock(ctx context.Context) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("interlock"); err != nil {
		return false, err
	}
	return d.Running, nil
}

func (d *Device) Backup(ctx context.Context, w io.Writer) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("backup"); err != nil {
		return 0, err
	}
	if !d.Caps.ReadBack {
		return 0, fmt.Errorf("backup: %w", devices.ErrUnsupported)
	}
	n, err := w.Write(d.installed)
	return int64(n), err
}

func (d *Device) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("transfer"); err != nil {
		return err
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, r)
	if err != nil {
		return devices.Transient("transfer", err)
	}
	if n != img.Size {
		return devices.Permanent("transfer", fmt.Errorf("read %d bytes, image says %d", n, img.Size))
	}
	if d.FailAt > 0 && n > d.FailAt {
		if d.FailTimes > 0 {
			d.FailTimes--
			if d.FailTimes == 0 {
				d.FailAt = 0
			}
		}
		if progress != nil {
			progress(d.FailAt, n)
		}
		return devices.Transient("transfer", fmt.Errorf("line dropped at byte %d", d.FailAt))
	}
	if progress != nil {
		progress(n, n)
	}
	d.staged = buf.Bytes()
	d.known = &img
	return nil
}

func (d *Device) Activate(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("activate"); err != nil {
		return err
	}
	if err := d.need("activate"); err != nil {
		return err
	}
	if d.staged == nil {
		return devices.Permanent("activate", errors.New("nothing staged"))
	}
	d.previous, d.installed, d.staged = d.installed, d.staged, nil
	d.unhealthy = false
	v, ok := version(d.installed)
	d.booted = ok && (d.BootFail == "" || v != d.BootFail)
	return nil
}

func (d *Device) Health(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("health"); err != nil {
		return err
	}
	if err := d.need("health"); err != nil {
		return err
	}
	if !d.booted || d.unhealthy {
		return devices.Transient("health", errors.New("not running"))
	}
	return nil
}

// SetUnhealthy makes Health fail (or pass again) from now on. It is safe to
// call while the device is in use.
func (d *Device) SetUnhealthy(v bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unhealthy = v
}

func (d *Device) Commit(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("commit"); err != nil {
		return err
	}
	return d.need("commit")
}

func (d *Device) Revert(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.call("revert"); err != nil {
		return err
	}
	if err := d.need("revert"); err != nil {
		return err
	}
	if d.Caps.Slots < 2 {
		return fmt.Errorf("revert: %w", devices.ErrUnsupported)
	}
	if d.previous == nil {
		return devices.Permanent("revert", errors.New("no previous slot"))
	}
	d.installed, d.previous, d.booted = d.previous, nil, true
	d.unhealthy = false
	return nil
}

func (d *Device) Close() error { return nil }

// String describes the device for test logs.
func (d *Device) String() string {
	v, _ := version(d.Installed())
	return fmt.Sprintf("devicetest.Device{%s %s calls=%s}", d.HardwareID, v, strings.Join(d.Calls(), ","))
}
