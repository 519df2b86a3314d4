// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/devices"
)

func TestDriverCheck(t *testing.T) {
	tests := []struct {
		name    string
		drv     devices.Driver
		cfg     devices.Config
		wantErr string // "" = valid
	}{
		{"push defaults", Driver(), devices.Config{ID: "p", Protocol: "tftp", Address: "10.0.0.5:69"}, ""},
		{"push unknown key", Driver(), devices.Config{ID: "p", Protocol: "tftp", Address: "10.0.0.5:69", Options: map[string]string{"blocksize": "1"}}, `device p (tftp): unknown option "blocksize" (known: blksize, boot_timeout, file, poll_interval, readback_file, retries, timeout, version_file, windowsize)`},
		{"push bad blksize", Driver(), devices.Config{ID: "p", Protocol: "tftp", Address: "10.0.0.5:69", Options: map[string]string{"blksize": "70000"}}, "blksize"},
		{"push no port", Driver(), devices.Config{ID: "p", Protocol: "tftp", Address: "10.0.0.5"}, "host:port"},
		{"pull ok", PullDriver(), devices.Config{ID: "q", Protocol: "tftp-pull", Address: "10.0.0.6:7000", Options: map[string]string{"listen": "10.0.0.1:69"}}, ""},
		{"pull needs listen", PullDriver(), devices.Config{ID: "q", Protocol: "tftp-pull", Address: "10.0.0.6:7000"}, "listen"},
		{"pull unspecified listen", PullDriver(), devices.Config{ID: "q", Protocol: "tftp-pull", Address: "10.0.0.6:7000", Options: map[string]string{"listen": "0.0.0.0:69"}}, "specific IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.drv.Check(tt.cfg)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Check(%v) = %v, want %q", tt.cfg.Options, err, tt.wantErr)
			}
		})
	}
}

func TestParseIdentity(t *testing.T) {
	id, state, err := ParseIdentity("hardware_id=acme version=2.1 image_sha256=AB state=running junk\n")
	if err != nil || id.Version != "2.1" || id.HardwareID != "acme" || id.ImageSHA256 != "ab" || state != StateRunning {
		t.Fatalf("ParseIdentity() = %+v, %q, %v", id, state, err)
	}
	if _, _, err := ParseIdentity("model=x"); err == nil {
		t.Fatal("ParseIdentity(no version) = nil error, want one")
	}
	back, st, _ := ParseIdentity(FormatIdentity(id, state))
	if back != id || st != state {
		t.Fatalf("round trip = %+v %q, want %+v %q", back, st, id, state)
	}
}

func TestParseFetch(t *testing.T) {
	f := Fetch{Server: "127.0.0.1:69", File: "fw.bin", Size: 10, SHA256: strings.Repeat("a", 64)}
	_, args, _ := strings.Cut(f.String(), " ")
	got, err := ParseFetch(args)
	if err != nil || got != f {
		t.Fatalf("ParseFetch(%q) = %+v, %v; want %+v", args, got, err, f)
	}
	for _, bad := range []string{"", "a b c", "host fw 1 abc", "h:1 fw -1 " + strings.Repeat("a", 64)} {
		if _, err := ParseFetch(bad); err == nil {
			t.Errorf("ParseFetch(%q) = nil error, want one", bad)
		}
	}
}

// FuzzControl feeds device-controlled text (identity records, FETCH
// arguments) to the parsers.
func FuzzControl(f *testing.F) {
	f.Add("hardware_id=a version=1 state=running")
	f.Add("127.0.0.1:69 fw.bin 10 " + strings.Repeat("a", 64))
	f.Add("version= =x ==")
	f.Fuzz(func(t *testing.T, s string) {
		if id, st, err := ParseIdentity(s); err == nil {
			if id.Version == "" {
				t.Fatalf("ParseIdentity(%q) accepted an empty version", s)
			}
			_ = FormatIdentity(id, st)
		}
		if fe, err := ParseFetch(s); err == nil && (fe.Size < 0 || len(fe.SHA256) != 64) {
			t.Fatalf("ParseFetch(%q) = %+v", s, fe)
		}
	})
}

// TestResumeAfterRestart: a Device opened after a daemon restart, told the
// job's image with Resume, waits in Activate for that version and fails
// Health while the device runs another one, as the Device that ran
// Transfer does. Without it, Activate returned at the first answer.
func TestResumeAfterRestart(t *testing.T) {
	old := func(context.Context) (devices.Identity, string, error) {
		return devices.Identity{Version: "1.0"}, StateRunning, nil
	}
	b := payload(3000)
	sum := sha256.Sum256(b)
	img := devices.Image{Name: "fw/2.0", Version: "2.0", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
	opts := map[string]string{"boot_timeout": "300ms", "poll_interval": "20ms", "version_file": "none"}
	push, err := NewDevice(devices.Config{ID: "p", Protocol: "tftp", Address: "127.0.0.1:69", Options: opts}, nil, old)
	if err != nil {
		t.Fatal(err)
	}
	pullOpts := map[string]string{"listen": "127.0.0.1:0", "boot_timeout": "300ms", "poll_interval": "20ms"}
	pull, err := NewPullDevice(devices.Config{ID: "q", Protocol: "tftp-pull", Address: "127.0.0.1:7000", Options: pullOpts}, nil, old, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []devices.Device{push, pull} {
		t.Run(fmt.Sprintf("%T", d), func(t *testing.T) {
			r, ok := d.(interface {
				Resume(devices.Image, io.Reader) error
			})
			if !ok {
				t.Fatalf("%T has no Resume method", d)
			}
			if err := r.Resume(img, bytes.NewReader(b[:100])); err == nil || devices.IsTransient(err) {
				t.Errorf("Resume(short image) = %v, want a permanent error", err)
			}
			bad := img
			bad.SHA256 = strings.Repeat("0", 64)
			if err := r.Resume(bad, bytes.NewReader(b)); err == nil || devices.IsTransient(err) {
				t.Errorf("Resume(wrong sha256) = %v, want a permanent error", err)
			}
			if err := r.Resume(img, bytes.NewReader(b)); err != nil {
				t.Fatalf("Resume() = %v", err)
			}
			if err := d.Activate(context.Background()); err == nil || !strings.Contains(err.Error(), "want 2.0") {
				t.Errorf("Activate() while the device runs 1.0 = %v, want an error naming 2.0", err)
			}
			if err := d.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "want 2.0") {
				t.Errorf("Health() while the device runs 1.0 = %v, want an error naming 2.0", err)
			}
		})
	}
}
