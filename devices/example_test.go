// SPDX-License-Identifier: Apache-2.0

package devices_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/fieldgate/fieldgate/devices"
)

// benchDevice is a single-slot device on the bench, enough to show the
// contract from the daemon's side. (The contract's tests import no test
// kit; devices/devicetest has the full fake with failure knobs.)
type benchDevice struct {
	hardwareID       string
	version          string // running
	image            []byte // running
	stagedVersion    string
	staged           []byte
	bootFail         string // a version that never comes up
	inBootloader     bool
	acknowledgeChunk int64
}

var _ devices.Device = (*benchDevice)(nil)

func (d *benchDevice) Capabilities() devices.Capabilities {
	return devices.Capabilities{Slots: 1, ReadBack: true}
}

func (d *benchDevice) Identify(ctx context.Context) (devices.Identity, error) {
	if d.inBootloader {
		return devices.Identity{}, devices.Transient("identify", errors.New("device stays in its bootloader"))
	}
	sum := sha256.Sum256(d.image)
	return devices.Identity{HardwareID: d.hardwareID, Version: d.version, ImageSHA256: hex.EncodeToString(sum[:])}, nil
}

func (d *benchDevice) Interlock(ctx context.Context) (bool, error) {
	return false, fmt.Errorf("interlock: %w", devices.ErrUnsupported)
}

func (d *benchDevice) Backup(ctx context.Context, w io.Writer) (int64, error) {
	n, err := w.Write(d.image)
	return int64(n), err
}

func (d *benchDevice) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	var buf bytes.Buffer
	for buf.Len() < int(img.Size) {
		if _, err := io.CopyN(&buf, r, min(d.acknowledgeChunk, img.Size-int64(buf.Len()))); err != nil {
			return devices.Transient("transfer", err)
		}
		if progress != nil {
			progress(int64(buf.Len()), img.Size)
		}
	}
	d.staged, d.stagedVersion = buf.Bytes(), img.Version
	return nil
}

func (d *benchDevice) Activate(ctx context.Context) error {
	if d.staged == nil {
		return devices.Permanent("activate", errors.New("nothing staged"))
	}
	d.image, d.version, d.staged = d.staged, d.stagedVersion, nil
	d.inBootloader = d.version == d.bootFail
	return nil
}

func (d *benchDevice) Health(ctx context.Context) error { return nil }
func (d *benchDevice) Commit(ctx context.Context) error { return nil } // one slot: already permanent
func (d *benchDevice) Revert(ctx context.Context) error {
	return fmt.Errorf("revert: %w", devices.ErrUnsupported)
}
func (d *benchDevice) Close() error { return nil }

// This example drives a device through one update the way the daemon does:
// identify, read a backup back, push the verified image, boot it, check what
// the device now runs, and commit.
func Example() {
	ctx := context.Background()
	var dev devices.Device = &benchDevice{hardwareID: "acme-io16-rev3", version: "2.3.0", image: []byte("acme io16 firmware 2.3.0"), acknowledgeChunk: 1024}
	defer dev.Close()
	caps := dev.Capabilities()
	fmt.Printf("slots %d, readback %v\n", caps.Slots, caps.ReadBack)

	before, err := dev.Identify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s runs %s\n", before.HardwareID, before.Version)

	// A single-slot device is rolled back by pushing its backup again, so
	// the backup must be a copy of what it runs.
	var backup bytes.Buffer
	h := sha256.New()
	n, err := dev.Backup(ctx, io.MultiWriter(&backup, h))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("backup of %d bytes matches the running image: %v\n", n, hex.EncodeToString(h.Sum(nil)) == before.ImageSHA256)

	fw := bytes.Repeat([]byte("acme io16 firmware 2.4.1 "), 200) // the verified blob from tuf.Client.Fetch
	sum := sha256.Sum256(fw)
	img := devices.Image{Name: "acme-io16/fw-2.4.1.bin", Version: "2.4.1", Size: int64(len(fw)), SHA256: hex.EncodeToString(sum[:])}
	if err := dev.Transfer(ctx, img, bytes.NewReader(fw), func(done, total int64) {
		fmt.Printf("  %d/%d\n", done, total)
	}); err != nil {
		log.Fatal(err)
	}
	if err := dev.Activate(ctx); err != nil {
		log.Fatal(err)
	}

	after, err := dev.Identify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if after.Version != img.Version || after.ImageSHA256 != img.SHA256 {
		log.Fatalf("device reports %s sha256 %s, want %s sha256 %s", after.Version, after.ImageSHA256, img.Version, img.SHA256)
	}
	if caps.Health {
		if err := dev.Health(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := dev.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s runs %s, committed\n", after.HardwareID, after.Version)

	// Output:
	// slots 1, readback true
	// acme-io16-rev3 runs 2.3.0
	// backup of 24 bytes matches the running image: true
	//   1024/5000
	//   2048/5000
	//   3072/5000
	//   4096/5000
	//   5000/5000
	// acme-io16-rev3 runs 2.4.1, committed
}

// When the new image does not come up, a single-slot device (no Revert) is
// rolled back by pushing the backup the gateway read before the update.
// Device errors say whether a retry may help.
func Example_rollback() {
	ctx := context.Background()
	var dev devices.Device = &benchDevice{hardwareID: "acme-io16-rev3", version: "2.3.0", image: []byte("acme io16 firmware 2.3.0"),
		bootFail: "2.4.1", acknowledgeChunk: 1024}
	defer dev.Close()

	var backup bytes.Buffer
	if _, err := dev.Backup(ctx, &backup); err != nil {
		log.Fatal(err)
	}
	fw := []byte("acme io16 firmware 2.4.1")
	if err := dev.Transfer(ctx, devices.Image{Name: "acme-io16/fw-2.4.1.bin", Version: "2.4.1", Size: int64(len(fw))}, bytes.NewReader(fw), nil); err != nil {
		log.Fatal(err)
	}
	if err := dev.Activate(ctx); err != nil {
		log.Fatal(err)
	}
	_, err := dev.Identify(ctx)
	fmt.Printf("identify after activate: %v (transient: %v)\n", err, devices.IsTransient(err))

	err = dev.Revert(ctx)
	fmt.Println("revert unsupported:", errors.Is(err, devices.ErrUnsupported))
	old := devices.Image{Name: "backup", Version: "2.3.0", Size: int64(backup.Len())}
	if err := dev.Transfer(ctx, old, bytes.NewReader(backup.Bytes()), nil); err != nil {
		log.Fatal(err)
	}
	if err := dev.Activate(ctx); err != nil {
		log.Fatal(err)
	}
	id, err := dev.Identify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("runs", id.Version, "again")

	// Output:
	// identify after activate: identify (transient): device stays in its bootloader (transient: true)
	// revert unsupported: true
	// runs 2.3.0 again
}
