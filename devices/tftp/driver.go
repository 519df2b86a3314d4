// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/devices"
)

// IdentitySource reads a device's identity over another channel (Modbus
// 0x2B, SNMP, a console). The daemon composes one with NewDevice when the
// device does not serve a version file.
type IdentitySource func(ctx context.Context) (devices.Identity, string, error)

// Driver returns the "tftp" driver: the device runs a TFTP server on
// Config.Address (host:port) that accepts the image by WRQ and, where
// allowed, serves it back by RRQ. Identity comes from a version file read
// by RRQ (see ParseIdentity), or from an IdentitySource given to NewDevice.
func Driver() devices.Driver {
	return devices.Driver{
		Name: "tftp",
		Doc: "A device that runs a TFTP server (RFC 1350 with the blksize, tsize and windowsize options): " +
			"the gateway writes the image to it and, where the device allows, reads it back. " +
			"address is host:port of the device's server (port 69 is TFTP's). " +
			"Identity comes from a version file the device serves: key=value fields vendor, model, serial, hardware_id, version (required), image_sha256.",
		Options:   func(o *devices.Options) { readPush(o) },
		OptionDoc: pushDoc(),
		Check:     func(cfg devices.Config) error { _, err := parsePush(cfg); return err },
		Open: func(cfg devices.Config, log *slog.Logger) (devices.Device, error) {
			return NewDevice(cfg, log, nil)
		},
	}
}

type pushConfig struct {
	client       Client
	file         string
	readback     string
	versionFile  string
	bootTimeout  time.Duration
	pollInterval time.Duration
}

func hostPort(cfg devices.Config, errs *[]error) {
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		*errs = append(*errs, fmt.Errorf("address %q: want host:port: %w", cfg.Address, err))
	}
}

// readPush reads the options of the "tftp" driver from o; pushDoc says
// what each key means.
func readPush(o *devices.Options) pushConfig {
	return pushConfig{
		client: Client{
			Blksize:    o.Int("blksize", 1428, MinBlksize, MaxBlksize),
			Windowsize: o.Int("windowsize", 8, 1, MaxWindowsize),
			Timeout:    o.Duration("timeout", time.Second),
			Retries:    o.Int("retries", 5, 1, 100),
		},
		file:         o.String("file", "firmware.bin"),
		readback:     o.String("readback_file", ""),
		versionFile:  o.String("version_file", "version"),
		bootTimeout:  o.Duration("boot_timeout", 60*time.Second),
		pollInterval: o.Duration("poll_interval", 500*time.Millisecond),
	}
}

func pushDoc() map[string]string {
	return map[string]string{
		"blksize":       "block size to negotiate (RFC 2348); 1428 fits one 1500-byte Ethernet frame",
		"windowsize":    "blocks sent before an acknowledgement (RFC 7440); a server that ignores it falls back to lockstep",
		"timeout":       "retransmission interval before backoff",
		"retries":       "retransmissions of one packet before the transfer fails",
		"file":          "remote file name of the write request (WRQ); must not be empty",
		"readback_file": "file name read back (RRQ) for Backup and to verify a transfer; \"\" = the same as file, none = no read-back",
		"version_file":  "file read (RRQ) for the identity record; none = no identity over TFTP",
		"boot_timeout":  "how long Activate waits for the new version to be reported",
		"poll_interval": "pause between identity reads while the device boots",
	}
}

// parsePush reads and checks the options of the "tftp" driver.
func parsePush(cfg devices.Config) (pushConfig, error) {
	o := devices.ReadOptions(cfg.Options)
	pc := readPush(o)
	var errs []error
	if err := o.Err(); err != nil {
		errs = append(errs, err)
	}
	hostPort(cfg, &errs)
	if pc.file == "" {
		errs = append(errs, errors.New("option file: empty"))
	}
	switch pc.readback {
	case "":
		pc.readback = pc.file
	case "none":
		pc.readback = ""
	}
	if pc.versionFile == "none" {
		pc.versionFile = ""
	}
	if len(errs) > 0 {
		return pc, fmt.Errorf("device %s (tftp): %w", cfg.ID, errors.Join(errs...))
	}
	return pc, nil
}

// Device is a field device with a TFTP server. It is not safe for
// concurrent use.
type Device struct {
	cfg    devices.Config
	pc     pushConfig
	log    *slog.Logger
	ident  IdentitySource
	pushed *devices.Image
}

var (
	_ devices.Device  = (*Device)(nil)
	_ devices.Resumer = (*Device)(nil)
)

// NewDevice returns the "tftp" device for cfg. ident, if not nil, replaces
// the version file as the identity source. It does no I/O.
func NewDevice(cfg devices.Config, log *slog.Logger, ident IdentitySource) (*Device, error) {
	pc, err := parsePush(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("device", cfg.ID, "protocol", "tftp")
	pc.client.Log = log
	d := &Device{cfg: cfg, pc: pc, log: log, ident: ident}
	if d.ident == nil && pc.versionFile != "" {
		d.ident = d.readVersionFile
	}
	return d, nil
}

// Capabilities implements devices.Device.
func (d *Device) Capabilities() devices.Capabilities {
	return devices.Capabilities{Slots: 1, ReadBack: d.pc.readback != "", Health: d.ident != nil}
}

func (d *Device) readVersionFile(ctx context.Context) (devices.Identity, string, error) {
	var buf limitedBuffer
	buf.max = 4096
	if _, err := d.pc.client.Get(ctx, d.cfg.Address, d.pc.versionFile, &buf); err != nil {
		return devices.Identity{}, "", err
	}
	return ParseIdentity(buf.String())
}

// Identify implements devices.Device.
func (d *Device) Identify(ctx context.Context) (devices.Identity, error) {
	if d.ident == nil {
		return devices.Identity{}, devices.Permanent("identify", fmt.Errorf("device %s: no version_file and no identity source: %w", d.cfg.ID, devices.ErrUnsupported))
	}
	id, _, err := d.ident(ctx)
	if err != nil {
		return id, classify("identify", fmt.Errorf("identify %s: %w", d.cfg.ID, err))
	}
	return id, nil
}

// Interlock implements devices.Device: TFTP has no process state.
func (d *Device) Interlock(ctx context.Context) (bool, error) {
	return false, devices.Permanent("interlock", fmt.Errorf("tftp device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// Backup implements devices.Device by reading the image back (RRQ).
func (d *Device) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if d.pc.readback == "" {
		return 0, devices.Permanent("backup", fmt.Errorf("tftp device %s: readback_file=none: %w", d.cfg.ID, devices.ErrUnsupported))
	}
	n, err := d.pc.client.Get(ctx, d.cfg.Address, d.pc.readback, w)
	if err != nil {
		return n, classify("backup", fmt.Errorf("backup %s: %w", d.cfg.ID, err))
	}
	return n, nil
}

// Transfer implements devices.Device: WRQ of the image, hashed while it
// streams, then a read-back (RRQ) compared with the image's sha256 where
// the device allows it. An image without a sha256 (a backup being
// restored) is compared with the hash of the bytes sent.
func (d *Device) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	h := sha256.New()
	var prog func(int64)
	if progress != nil {
		prog = func(n int64) { progress(n, img.Size) }
	}
	d.log.Info("tftp push", "image", img.Name, "version", img.Version, "bytes", img.Size, "file", d.pc.file)
	err := d.pc.client.Put(ctx, d.cfg.Address, d.pc.file, io.TeeReader(r, h), img.Size, prog)
	if err != nil {
		return classify("transfer", fmt.Errorf("push %s to %s: %w", img.Name, d.cfg.ID, err))
	}
	got := hex.EncodeToString(h.Sum(nil))
	if img.SHA256 == "" {
		// No hash given (the daemon re-pushes its own backup in a
		// rollback): the read-back must match the bytes sent.
		img.SHA256 = got
	}
	if got != img.SHA256 {
		return devices.Permanent("transfer", fmt.Errorf("push %s to %s: source bytes have sha256 %s, want %s", img.Name, d.cfg.ID, got, img.SHA256))
	}
	d.pushed = &img
	if d.pc.readback == "" {
		return nil
	}
	rb := sha256.New()
	n, err := d.pc.client.Get(ctx, d.cfg.Address, d.pc.readback, rb)
	if err != nil {
		return classify("transfer", fmt.Errorf("read back %s from %s: %w", d.pc.readback, d.cfg.ID, err))
	}
	if got := hex.EncodeToString(rb.Sum(nil)); n != img.Size || got != img.SHA256 {
		return devices.Permanent("transfer", fmt.Errorf("device %s reports sha256 %s (%d bytes), want %s (%d bytes)", d.cfg.ID, got, n, img.SHA256, img.Size))
	}
	return nil
}

// Activate implements devices.Device. A TFTP device boots the image by
// itself once the upload completes; Activate waits until its identity
// reports the transferred version. Without an identity source it returns
// at once.
func (d *Device) Activate(ctx context.Context) error {
	if d.ident == nil {
		return nil
	}
	return waitBooted(ctx, "activate", d.cfg.ID, d.pushed, d.ident, d.pc.bootTimeout, d.pc.pollInterval, d.log)
}

// Resume implements devices.Resumer. Activate and Health compare the
// device's version with the transferred image's; a Device opened after a
// daemon restart does not know it, and Activate would then return at the
// first answer, whatever version runs.
func (d *Device) Resume(img devices.Image, r io.Reader) error {
	if err := checkImage(img, r); err != nil {
		return devices.Permanent("resume", fmt.Errorf("resume %s on %s: %w", img.Name, d.cfg.ID, err))
	}
	d.pushed = &img
	return nil
}

// checkImage reads r to its end and checks that it holds img: img.Size
// bytes with sha256 img.SHA256 (when given).
func checkImage(img devices.Image, r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, img.Size+1))
	if err != nil {
		return fmt.Errorf("read image: %w", err)
	}
	if n > img.Size {
		return fmt.Errorf("image is longer than %d bytes", img.Size)
	}
	if n != img.Size {
		return fmt.Errorf("image has %d bytes, want %d", n, img.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); img.SHA256 != "" && !strings.EqualFold(got, img.SHA256) {
		return fmt.Errorf("image has sha256 %s, want %s", got, img.SHA256)
	}
	return nil
}

// waitBooted polls ident until it reports want's version in state running.
func waitBooted(ctx context.Context, op, id string, want *devices.Image, ident IdentitySource, timeout, every time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last error
	for {
		got, state, err := ident(ctx)
		switch {
		case err != nil:
			last = err
		case state == StateBootFailed:
			return devices.Permanent(op, fmt.Errorf("device %s: image did not boot, still running %s", id, got.Version))
		case want == nil || got.Version == want.Version:
			log.Info("device booted", "version", got.Version)
			return nil
		default:
			last = fmt.Errorf("runs version %s, want %s", got.Version, want.Version)
		}
		select {
		case <-ctx.Done():
			return devices.Transient(op, fmt.Errorf("device %s not booted within %s: %w", id, timeout, last))
		case <-tick.C:
		}
	}
}

// Health implements devices.Device: the device answers and runs the
// transferred version.
func (d *Device) Health(ctx context.Context) error {
	if d.ident == nil {
		return devices.Permanent("health", fmt.Errorf("tftp device %s: %w", d.cfg.ID, devices.ErrUnsupported))
	}
	return health(ctx, d.cfg.ID, d.pushed, d.ident)
}

func health(ctx context.Context, id string, want *devices.Image, ident IdentitySource) error {
	got, state, err := ident(ctx)
	if err != nil {
		return classify("health", fmt.Errorf("health %s: %w", id, err))
	}
	if state == StateBootFailed {
		return devices.Permanent("health", fmt.Errorf("device %s reports state %s", id, state))
	}
	if want != nil && got.Version != want.Version {
		return devices.Permanent("health", fmt.Errorf("device %s runs version %s, want %s", id, got.Version, want.Version))
	}
	return nil
}

// Commit implements devices.Device: a single-slot image is permanent.
func (d *Device) Commit(ctx context.Context) error { return nil }

// Revert implements devices.Device: single slot; the daemon re-pushes the
// backup.
func (d *Device) Revert(ctx context.Context) error {
	return devices.Permanent("revert", fmt.Errorf("tftp device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// Close implements devices.Device.
func (d *Device) Close() error { return nil }

// classify marks network trouble and timeouts transient, and refusals and
// protocol violations permanent.
func classify(op string, err error) error {
	var re *RemoteError
	var ne net.Error
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return devices.Transient(op, err)
	case errors.As(err, &re):
		return devices.Permanent(op, err)
	case errors.Is(err, ErrProtocol):
		return devices.Permanent(op, err)
	case errors.As(err, &ne):
		return devices.Transient(op, err)
	}
	return devices.Permanent(op, err)
}

// limitedBuffer refuses to grow beyond max bytes.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("identity record longer than %d bytes", b.max)
	}
	return b.Buffer.Write(p)
}
