// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/fieldgate/fieldgate/devices"
)

// Driver names.
const (
	NameUDP    = "smp-udp"
	NameSerial = "smp-serial"
)

// Option keys accepted in devices.Config.Options; optionDoc says what
// each means, and Driver.Describe lists them with their defaults.
const (
	OptTimeout     = "timeout"
	OptRetries     = "retries"
	OptBootTimeout = "boot_timeout"
	OptMaxPacket   = "max_packet"
	OptHardwareID  = "hardware_id"
)

// DefaultBaud is the serial rate when Config.Baud is 0.
const DefaultBaud = 115200

// defaultBufSize is used when the device does not implement params.
const defaultBufSize = 384

// maxImage bounds what Transfer reads into memory: MCUboot slots are
// flash partitions of a few MiB at most.
const maxImage = 64 << 20

// bootPoll is the pause between image list polls while the device boots.
const bootPoll = 100 * time.Millisecond

type options struct {
	timeout     time.Duration
	retries     int
	bootTimeout time.Duration
	maxPacket   int
	hwFromOS    bool
}

func parseOptions(m map[string]string) (options, error) {
	r := devices.ReadOptions(m)
	o := readOptions(r)
	return o, r.Err()
}

// readOptions reads the options of both SMP drivers from r.
func readOptions(r *devices.Options) options {
	o := options{
		timeout:     r.Duration(OptTimeout, 2*time.Second),
		retries:     r.Int(OptRetries, 3, 0, math.MaxInt),
		bootTimeout: r.Duration(OptBootTimeout, 60*time.Second),
		hwFromOS:    r.OneOf(OptHardwareID, "config", "config", "os-info") == "os-info",
	}
	r.Func(OptMaxPacket, "0", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n != 0 && n < 64 {
			return errors.New("want 0 (the device's buf_size) or a whole number of at least 64")
		}
		o.maxPacket = n
		return nil
	})
	return o
}

// optionDoc describes the options of both SMP drivers.
func optionDoc() map[string]string {
	return map[string]string{
		OptTimeout:     "one request attempt; on serial lines plus the time the frames take at baud",
		OptRetries:     "retransmissions of a request after a timeout",
		OptBootTimeout: "how long to wait for the device to answer after a reset",
		OptMaxPacket:   "cap on the SMP packet size in bytes, below the device's buf_size (a smaller serial MTU); 0 = buf_size only, else at least 64",
		OptHardwareID:  "where Identify takes the hardware id from: config (the device's hardware_id) or os-info (the board name the device reports)",
	}
}

// UDPDriver returns the "smp-udp" driver: Config.Address is host[:port]
// (port 1337 by default).
func UDPDriver() devices.Driver {
	return devices.Driver{Name: NameUDP, Check: check(false), Open: open(false),
		Doc: "MCUmgr/SMP image management of MCUboot devices (Zephyr) over UDP. address is host[:port] (port 1337 by default). " +
			"Transfer uploads to the secondary slot, Activate marks it for test and resets, Commit confirms it; " +
			"Revert resets without confirming, so MCUboot boots the previous image.",
		Options: func(r *devices.Options) { readOptions(r) }, OptionDoc: optionDoc()}
}

// SerialDriver returns the "smp-serial" driver: Config.Address is the
// serial port, Config.Baud its rate (115200 by default).
func SerialDriver() devices.Driver {
	return devices.Driver{Name: NameSerial, Check: check(true), Open: open(true),
		Doc: "MCUmgr/SMP image management, as smp-udp, over a serial line (the SMP console framing, base64 with CRC16). " +
			"address is the serial port, baud its rate (default 115200).",
		Options: func(r *devices.Options) { readOptions(r) }, OptionDoc: optionDoc()}
}

func check(serial bool) func(devices.Config) error {
	return func(cfg devices.Config) error {
		var errs []error
		if cfg.Address == "" {
			errs = append(errs, errors.New("address is empty"))
		} else if !serial {
			if host, port, err := net.SplitHostPort(cfg.Address); err == nil {
				if host == "" {
					errs = append(errs, fmt.Errorf("address %q has no host", cfg.Address))
				}
				if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
					errs = append(errs, fmt.Errorf("address %q: bad port", cfg.Address))
				}
			}
		}
		if cfg.Baud < 0 {
			errs = append(errs, fmt.Errorf("baud %d is negative", cfg.Baud))
		}
		if _, err := parseOptions(cfg.Options); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("device %s: %w", cfg.ID, err)
		}
		return nil
	}
}

func open(serial bool) func(devices.Config, *slog.Logger) (devices.Device, error) {
	return func(cfg devices.Config, log *slog.Logger) (devices.Device, error) {
		if err := check(serial)(cfg); err != nil {
			return nil, err
		}
		o, _ := parseOptions(cfg.Options)
		if cfg.Baud == 0 {
			cfg.Baud = DefaultBaud
		}
		return &Device{cfg: cfg, opts: o, serial: serial, log: log.With("device", cfg.ID)}, nil
	}
}

// Device is an SMP/MCUboot device. It remembers, between steps, the
// MCUboot hash of the image it transferred; a Device opened after a daemon
// restart learns it from Resume. It never guesses the image from slot
// positions: after MCUboot's swap, slot 1 holds the previous image. Not
// safe for concurrent use.
type Device struct {
	cfg    devices.Config
	opts   options
	serial bool
	log    *slog.Logger
	c      *Client

	want     []byte // TLV hash of the transferred image
	wantFile string // hex sha256 of the transferred file, whose TLV hash is want
	prev     []byte // TLV hash of the image running before Activate
}

var (
	_ devices.Device  = (*Device)(nil)
	_ devices.Resumer = (*Device)(nil)
)

// Capabilities: two slots (MCUboot swap), resumable upload, no read-back
// (SMP cannot read an image back; the previous image stays in slot 1
// after the swap, which is what Revert uses).
func (d *Device) Capabilities() devices.Capabilities {
	return devices.Capabilities{Slots: 2, Resume: true, Health: true}
}

// client returns the device's client; its transport opens on first use
// and reopens after I/O errors (see Reopener).
func (d *Device) client() (*Client, error) {
	if d.c != nil {
		return d.c, nil
	}
	open := func() (Transport, error) { return DialUDP(d.cfg.Address) }
	if d.serial {
		open = func() (Transport, error) {
			return OpenSerial(d.cfg.Address, d.cfg.Baud, func(line []byte) {
				d.log.Debug("device console", "line", string(line))
			})
		}
	}
	t := NewReopener(open, func(err error) { d.log.Debug("smp transport", "err", err) })
	var seq [1]byte
	rand.Read(seq[:])
	d.c = NewClient(t, seq[0], d.log)
	d.c.Timeout, d.c.Retries = d.opts.timeout, d.opts.retries
	if d.serial {
		d.c.LineRate = d.cfg.Baud / 10
	}
	return d.c, nil
}

// fail classifies err for the daemon and drops a broken transport so the
// next step reopens it (a USB serial port may vanish across a reset).
func (d *Device) fail(op string, err error) error {
	var de *DeviceError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrTimeout):
		return devices.Transient(op, err)
	case errors.As(err, &de):
		if de.Temporary() {
			return devices.Transient(op, err)
		}
		return devices.Permanent(op, err)
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrUnexpectedResponse),
		errors.Is(err, ErrBadImage), errors.Is(err, ErrHashMismatch), errors.Is(err, ErrNotBooted):
		return devices.Permanent(op, err)
	default:
		// Transport errors: port gone, network down.
		if d.c != nil {
			d.c.Close()
			d.c = nil
		}
		return devices.Transient(op, err)
	}
}

// Close releases the transport.
func (d *Device) Close() error {
	if d.c == nil {
		return nil
	}
	err := d.c.Close()
	d.c = nil
	return err
}

func activeSlot(slots []Slot) (Slot, bool) {
	for _, s := range slots {
		if s.Image == 0 && s.Active {
			return s, true
		}
	}
	return Slot{}, false
}

func slotN(slots []Slot, n int) (Slot, bool) {
	for _, s := range slots {
		if s.Image == 0 && s.Slot == n {
			return s, true
		}
	}
	return Slot{}, false
}

// Identify reads the running image from the image list. The image list
// gives MCUboot's TLV hash (over header, body and protected TLVs), not
// the sha256 of the image file the gateway holds, so the two cannot be
// compared: ImageSHA256 is the transferred file's sha256 when the device
// runs exactly the image Transfer uploaded (same TLV hash), and empty
// otherwise (the file of an image this driver did not upload is unknown).
func (d *Device) Identify(ctx context.Context) (devices.Identity, error) {
	c, _, a, err := d.images(ctx)
	if err != nil {
		return devices.Identity{}, d.fail("identify", err)
	}
	id := devices.Identity{HardwareID: d.cfg.HardwareID, Version: a.Version}
	if d.wantFile != "" && bytes.Equal(a.Hash, d.want) {
		id.ImageSHA256 = d.wantFile
	}
	if d.opts.hwFromOS {
		if id.HardwareID, err = c.OSInfo(ctx, "b"); err != nil {
			return devices.Identity{}, d.fail("identify", err)
		}
	}
	return id, nil
}

// Interlock is not part of SMP.
func (d *Device) Interlock(context.Context) (bool, error) {
	return false, fmt.Errorf("interlock: %w", devices.ErrUnsupported)
}

// Backup is not part of SMP: images cannot be read back.
func (d *Device) Backup(context.Context, io.Writer) (int64, error) {
	return 0, fmt.Errorf("backup: %w", devices.ErrUnsupported)
}

// readImage reads img from r and checks it: size, file hash, MCUboot
// header, SHA-256 TLV and version. Every error is permanent: the image
// will not get better.
func readImage(img devices.Image, r io.Reader) ([]byte, ImageInfo, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if img.Size <= 0 || img.Size > maxImage {
		return nil, ImageInfo{}, sum, fmt.Errorf("image %s: size %d out of range (1..%d): %w", img.Name, img.Size, maxImage, ErrBadImage)
	}
	b := make([]byte, img.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, ImageInfo{}, sum, fmt.Errorf("read image %s: %w", img.Name, err)
	}
	sum = sha256.Sum256(b)
	if img.SHA256 != "" && hex.EncodeToString(sum[:]) != img.SHA256 {
		return nil, ImageInfo{}, sum, fmt.Errorf("image %s has sha256 %x, want %s: %w", img.Name, sum, img.SHA256, ErrBadImage)
	}
	info, err := ParseImage(b)
	if err != nil {
		return nil, ImageInfo{}, sum, fmt.Errorf("image %s: %w", img.Name, err)
	}
	if want, err := ParseVersion(img.Version); err == nil && want != info.Version {
		return nil, ImageInfo{}, sum, fmt.Errorf("image %s: MCUboot header says version %s, target says %s: %w", img.Name, info.Version, img.Version, ErrBadImage)
	}
	return b, info, sum, nil
}

// Resume implements devices.Resumer: it reads the MCUboot hash (the SHA-256
// TLV the image list reports) from the job's image, so that Activate,
// Health, Commit, Revert and Identify after a daemon restart know the
// image by its hash, as after Transfer.
func (d *Device) Resume(img devices.Image, r io.Reader) error {
	_, info, sum, err := readImage(img, r)
	if err != nil {
		return devices.Permanent("resume", err)
	}
	d.want, d.wantFile = info.Hash[:], hex.EncodeToString(sum[:])
	d.log.Debug("smp resume", "image", img.Name, "hash", hex.EncodeToString(d.want))
	return nil
}

// Transfer checks img (size, file hash, MCUboot header and SHA-256 TLV) and
// uploads it to slot 1, resuming an interrupted upload of the same file,
// then checks that the device reports the image's TLV hash for slot 1.
func (d *Device) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	const op = "transfer"
	b, info, sum, err := readImage(img, r)
	if err != nil {
		return devices.Permanent(op, err)
	}
	c, err := d.client()
	if err != nil {
		return d.fail(op, err)
	}
	size := defaultBufSize
	if p, err := c.Params(ctx); err == nil && p.BufSize > 0 {
		size = int(p.BufSize)
	} else if err != nil {
		var de *DeviceError
		if !errors.As(err, &de) || de.RC != RCNotSup {
			return d.fail(op, err)
		}
	}
	if d.opts.maxPacket > 0 {
		size = min(size, d.opts.maxPacket)
	}
	size = min(size, MaxPacket)
	d.log.Info("smp upload", "image", img.Name, "version", info.Version.String(), "bytes", len(b), "packet", size)
	var cb func(int64)
	if progress != nil {
		cb = func(off int64) { progress(off, img.Size) }
	}
	if err := c.Upload(ctx, b, size, cb); err != nil {
		return d.fail(op, err)
	}
	slots, err := c.ImageList(ctx)
	if err != nil {
		return d.fail(op, err)
	}
	s1, ok := slotN(slots, 1)
	if !ok {
		return d.fail(op, fmt.Errorf("device %s lists no slot 1 after the upload: %w", d.cfg.ID, ErrHashMismatch))
	}
	if !bytes.Equal(s1.Hash, info.Hash[:]) {
		return d.fail(op, fmt.Errorf("device %s reports sha256 %x, want %x: %w", d.cfg.ID, s1.Hash, info.Hash, ErrHashMismatch))
	}
	d.want, d.wantFile = info.Hash[:], hex.EncodeToString(sum[:])
	return nil
}

// resetGrace is how long a device may keep answering in its pre-reset
// state before the reset counts as lost and is sent again (Zephyr resets
// about 250 ms after its reply).
const resetGrace = time.Second

// reset sends one reset request, never retransmitted: if the first copy
// arrived and only the reply was lost, a second copy would reset the
// device again after it booted the test image, and MCUboot would revert
// it. A lost reply is not an error; waitBoot decides.
func (d *Device) reset(ctx context.Context, c *Client) error {
	retries := c.Retries
	c.Retries = 0
	err := c.Reset(ctx)
	c.Retries = retries
	if err != nil && !errors.Is(err, ErrTimeout) {
		return err
	}
	return nil
}

// resetAndWait resets the device and polls the image list until done(slots)
// holds or boot_timeout passes. A device that still answers in the state
// before the reset (pre) after resetGrace did not get the reset, and is
// sent another.
func (d *Device) resetAndWait(ctx context.Context, c *Client, pre, done func([]Slot) bool) ([]Slot, error) {
	if err := d.reset(ctx, c); err != nil {
		return nil, err
	}
	sent := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.opts.bootTimeout)
	defer cancel()
	var lastErr error
	for {
		slots, err := c.ImageList(ctx)
		switch {
		case err == nil && done(slots):
			return slots, nil
		case err == nil && pre(slots) && time.Since(sent) > max(resetGrace, d.opts.timeout):
			d.log.Info("smp device did not reset, resetting again")
			if err := d.reset(ctx, c); err != nil {
				return nil, err
			}
			sent = time.Now()
		case err != nil:
			var de *DeviceError
			if errors.As(err, &de) || errors.Is(err, ErrUnexpectedResponse) {
				return nil, err
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("device still shows the state before the reset")
			}
			return nil, fmt.Errorf("wait for reboot (%v): %w: %w", d.opts.bootTimeout, ErrTimeout, lastErr)
		case <-time.After(bootPoll):
		}
	}
}

func noPending(slots []Slot) bool {
	for _, s := range slots {
		if s.Pending {
			return false
		}
	}
	_, ok := activeSlot(slots)
	return ok
}

// Activate marks the transferred image for a test boot, resets the device,
// waits for it, and checks that the new image runs, not yet confirmed. A
// device that runs the image already (an Activate interrupted by a daemon
// restart after the reset) is left as it is. The image is the one given to
// Transfer or Resume; without either Activate refuses.
func (d *Device) Activate(ctx context.Context) error {
	const op = "activate"
	if d.want == nil {
		return devices.Permanent(op, fmt.Errorf("device %s: no image to activate: Transfer or Resume first", d.cfg.ID))
	}
	c, slots, a, err := d.images(ctx)
	if err != nil {
		return d.fail(op, err)
	}
	if bytes.Equal(a.Hash, d.want) {
		d.log.Info("smp device runs the image already", "image", hex.EncodeToString(d.want), "confirmed", a.Confirmed)
		return nil
	}
	d.prev = a.Hash
	if slots, err = c.ImageTest(ctx, d.want); err != nil {
		return d.fail(op, err)
	}
	if s1, ok := slotN(slots, 1); !ok || !s1.Pending || !bytes.Equal(s1.Hash, d.want) {
		return d.fail(op, fmt.Errorf("device %s did not mark image %x pending: %w", d.cfg.ID, d.want, ErrUnexpectedResponse))
	}
	d.log.Info("smp test boot", "image", hex.EncodeToString(d.want))
	pending := func(s []Slot) bool { return !noPending(s) }
	if slots, err = d.resetAndWait(ctx, c, pending, noPending); err != nil {
		return d.fail(op, err)
	}
	a, _ = activeSlot(slots)
	switch {
	case bytes.Equal(a.Hash, d.want) && !a.Confirmed:
		return nil
	case bytes.Equal(a.Hash, d.want):
		return nil // confirmed already: the image confirms itself
	case bytes.Equal(a.Hash, d.prev):
		return d.fail(op, fmt.Errorf("device %s runs the previous image %x again: %w", d.cfg.ID, a.Hash, ErrNotBooted))
	default:
		return d.fail(op, fmt.Errorf("device %s reports sha256 %x, want %x: %w", d.cfg.ID, a.Hash, d.want, ErrHashMismatch))
	}
}

// images lists the device's slots and returns them with the active one.
func (d *Device) images(ctx context.Context) (*Client, []Slot, Slot, error) {
	c, err := d.client()
	if err != nil {
		return nil, nil, Slot{}, err
	}
	slots, err := c.ImageList(ctx)
	if err != nil {
		return c, nil, Slot{}, err
	}
	a, ok := activeSlot(slots)
	if !ok {
		return c, slots, Slot{}, fmt.Errorf("image list has no active slot: %w", ErrUnexpectedResponse)
	}
	return c, slots, a, nil
}

// Health checks that the device answers an echo and runs the image
// fieldgate transferred (when known from Transfer or Resume).
func (d *Device) Health(ctx context.Context) error {
	const op = "health"
	c, err := d.client()
	if err != nil {
		return d.fail(op, err)
	}
	if err := c.Echo(ctx, "fieldgate health"); err != nil {
		return d.fail(op, err)
	}
	_, _, a, err := d.images(ctx)
	if err != nil {
		return d.fail(op, err)
	}
	if d.want != nil && !bytes.Equal(a.Hash, d.want) {
		return d.fail(op, fmt.Errorf("device %s reports sha256 %x, want %x: %w", d.cfg.ID, a.Hash, d.want, ErrHashMismatch))
	}
	return nil
}

// Commit confirms the running image and checks that the device says so.
// When it knows the image (Transfer or Resume), it first checks that the
// device runs it: confirming by hash an image in slot 1 (the device went
// back to the previous image) would make MCUboot install it for good at
// the next reset.
func (d *Device) Commit(ctx context.Context) error {
	const op = "commit"
	c, _, a, err := d.images(ctx)
	if err != nil {
		return d.fail(op, err)
	}
	if d.want != nil && !bytes.Equal(a.Hash, d.want) {
		return d.fail(op, fmt.Errorf("device %s reports sha256 %x, want %x: %w", d.cfg.ID, a.Hash, d.want, ErrHashMismatch))
	}
	slots, err := c.ImageConfirm(ctx, d.want)
	if err != nil {
		return d.fail(op, err)
	}
	a, ok := activeSlot(slots)
	if !ok || !a.Confirmed {
		return d.fail(op, fmt.Errorf("device %s: running image not confirmed after confirm: %w", d.cfg.ID, ErrUnexpectedResponse))
	}
	if d.want != nil && !bytes.Equal(a.Hash, d.want) {
		return d.fail(op, fmt.Errorf("device %s reports sha256 %x, want %x: %w", d.cfg.ID, a.Hash, d.want, ErrHashMismatch))
	}
	return nil
}

// Revert returns the device to the image in the other slot:
//   - a test image not booted yet: erase slot 1 (the pending mark goes with it);
//   - a test-booted, unconfirmed image: reset, MCUboot swaps back;
//   - the confirmed image this driver transferred: mark the other slot for a
//     permanent swap and reset (a confirmed image of unknown origin is an
//     error: the previous image cannot be told apart).
//
// It then checks that the previous image runs, confirmed.
func (d *Device) Revert(ctx context.Context) error {
	const op = "revert"
	c, slots, a, err := d.images(ctx)
	if err != nil {
		return d.fail(op, err)
	}
	s1, has1 := slotN(slots, 1)
	var back []byte // the image that must run afterwards
	switch {
	case has1 && s1.Pending && !s1.Active:
		if err := c.Erase(ctx, 1); err != nil {
			return d.fail(op, err)
		}
		d.log.Info("smp revert: erased the pending image", "image", hex.EncodeToString(s1.Hash))
		return nil
	case !a.Confirmed:
		if !has1 {
			return d.fail(op, fmt.Errorf("device %s has no image to revert to: %w", d.cfg.ID, ErrUnexpectedResponse))
		}
		back = s1.Hash
	case d.want == nil:
		// A confirmed image runs and this driver did not transfer anything
		// (the daemon restarted): after a commit and after an MCUboot
		// revert the slots look the same, so swapping could install the
		// very image being reverted.
		return d.fail(op, fmt.Errorf("device %s runs confirmed image %x; without the transferred image's hash the previous one is unknown: %w",
			d.cfg.ID, a.Hash, ErrUnexpectedResponse))
	case !bytes.Equal(a.Hash, d.want):
		d.log.Info("smp revert: device already runs another image", "image", hex.EncodeToString(a.Hash))
		return nil
	default:
		if !has1 || len(s1.Hash) == 0 {
			return d.fail(op, fmt.Errorf("device %s has no image to revert to: %w", d.cfg.ID, ErrUnexpectedResponse))
		}
		back = s1.Hash
		if _, err := c.ImageConfirm(ctx, back); err != nil {
			return d.fail(op, err)
		}
	}
	d.log.Info("smp revert: reset", "back_to", hex.EncodeToString(back))
	runs := a.Hash
	slots, err = d.resetAndWait(ctx, c, func(s []Slot) bool {
		a, ok := activeSlot(s)
		return ok && bytes.Equal(a.Hash, runs) // not reset yet
	}, func(s []Slot) bool {
		a, ok := activeSlot(s)
		return noPending(s) && ok && bytes.Equal(a.Hash, back)
	})
	if err != nil {
		return d.fail(op, fmt.Errorf("device %s did not come back on image %x: %w", d.cfg.ID, back, err))
	}
	if a, _ := activeSlot(slots); !a.Confirmed {
		return d.fail(op, fmt.Errorf("device %s runs image %x unconfirmed after revert: %w", d.cfg.ID, back, ErrUnexpectedResponse))
	}
	return nil
}
