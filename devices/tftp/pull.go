// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/devices"
)

// Trigger tells a device to fetch f from the gateway's TFTP server and
// returns once the device reports the outcome, with the sha256 (hex) of
// what it stored. The default uses the control channel (see control.go).
type Trigger func(ctx context.Context, f Fetch) (string, error)

// PullDriver returns the "tftp-pull" driver: the device fetches its image
// from the gateway. While Transfer runs, the gateway serves that one image,
// read-only, on the configured field-side address to the device's IP only;
// Config.Address is the device's control endpoint (host:port, TCP).
func PullDriver() devices.Driver {
	return devices.Driver{
		Name: "tftp-pull",
		Doc: "A device that fetches its image from the gateway by TFTP: while Transfer runs, the gateway serves " +
			"that one image, read-only, on listen to the device's IP address only, and tells the device over its " +
			"control endpoint to fetch it; identity is read on the same endpoint. address is host:port of that control endpoint (TCP).",
		Options:   func(o *devices.Options) { readPull(o) },
		OptionDoc: pullDoc(),
		Check:     func(cfg devices.Config) error { _, err := parsePull(cfg); return err },
		Open: func(cfg devices.Config, log *slog.Logger) (devices.Device, error) {
			return NewPullDevice(cfg, log, nil, nil)
		},
	}
}

type pullConfig struct {
	listen         string
	file           string
	maxBlk, maxWin int
	timeout        time.Duration
	retries        int
	fetchTimeout   time.Duration
	controlTimeout time.Duration
	bootTimeout    time.Duration
	pollInterval   time.Duration
	allow          netip.Addr
}

// readPull reads the options of the "tftp-pull" driver from o; pullDoc
// says what each key means. file is returned as written.
func readPull(o *devices.Options) (pc pullConfig, file string) {
	file = o.String("file", "firmware.bin")
	return pullConfig{
		listen:         o.String("listen", ""),
		file:           strings.TrimLeft(file, "/"),
		maxBlk:         o.Int("max_blksize", 1468, MinBlksize, MaxBlksize),
		maxWin:         o.Int("max_windowsize", 16, 1, MaxWindowsize),
		timeout:        o.Duration("timeout", time.Second),
		retries:        o.Int("retries", 5, 1, 100),
		fetchTimeout:   o.Duration("fetch_timeout", 5*time.Minute),
		controlTimeout: o.Duration("control_timeout", 10*time.Second),
		bootTimeout:    o.Duration("boot_timeout", 60*time.Second),
		pollInterval:   o.Duration("poll_interval", 500*time.Millisecond),
	}, file
}

func pullDoc() map[string]string {
	return map[string]string{
		"file":            "the one file name the gateway serves, without spaces",
		"listen":          "required: the gateway's field-side IP:port for the one-file TFTP server (a specific address the device reaches)",
		"max_blksize":     "the largest block size a device may negotiate; 1468 fills a 1500-byte frame",
		"max_windowsize":  "the largest window size a device may negotiate (RFC 7440)",
		"timeout":         "retransmission interval of the gateway's server",
		"retries":         "retransmissions of one packet before the server gives up",
		"fetch_timeout":   "how long Transfer waits for the device to fetch and store the image",
		"control_timeout": "deadline of one request on the device's control endpoint",
		"boot_timeout":    "how long Activate waits for the new version to be reported",
		"poll_interval":   "pause between identity reads while the device boots",
	}
}

// parsePull reads and checks the options of the "tftp-pull" driver.
func parsePull(cfg devices.Config) (pullConfig, error) {
	o := devices.ReadOptions(cfg.Options)
	pc, file := readPull(o)
	var errs []error
	if err := o.Err(); err != nil {
		errs = append(errs, err)
	}
	hostPort(cfg, &errs)
	if host, _, err := net.SplitHostPort(pc.listen); err != nil {
		errs = append(errs, fmt.Errorf("option listen=%q: want the gateway's field-side IP:port: %v", pc.listen, err))
	} else if a, err := netip.ParseAddr(host); err != nil || a.IsUnspecified() {
		errs = append(errs, fmt.Errorf("option listen=%q: want a specific IP address, the one the device reaches", pc.listen))
	}
	if pc.file == "" || strings.ContainsAny(pc.file, " \n") {
		errs = append(errs, fmt.Errorf("option file=%q: want a name without spaces", file))
	}
	if host, _, err := net.SplitHostPort(cfg.Address); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			pc.allow = a
		}
	}
	if len(errs) > 0 {
		return pc, fmt.Errorf("device %s (tftp-pull): %w", cfg.ID, errors.Join(errs...))
	}
	return pc, nil
}

// PullDevice is a field device that fetches its image from the gateway by
// TFTP. It is not safe for concurrent use.
type PullDevice struct {
	cfg     devices.Config
	pc      pullConfig
	log     *slog.Logger
	ident   IdentitySource
	trigger Trigger
	pushed  *devices.Image
}

var (
	_ devices.Device  = (*PullDevice)(nil)
	_ devices.Resumer = (*PullDevice)(nil)
)

// NewPullDevice returns the "tftp-pull" device for cfg. ident and trigger,
// if not nil, replace the control channel for identity and for telling the
// device to fetch. It does no I/O.
func NewPullDevice(cfg devices.Config, log *slog.Logger, ident IdentitySource, trigger Trigger) (*PullDevice, error) {
	pc, err := parsePull(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &PullDevice{cfg: cfg, pc: pc, log: log.With("device", cfg.ID, "protocol", "tftp-pull"), ident: ident, trigger: trigger}
	if d.ident == nil {
		d.ident = d.controlIdentify
	}
	if d.trigger == nil {
		d.trigger = d.controlFetch
	}
	return d, nil
}

func (d *PullDevice) controlIdentify(ctx context.Context) (devices.Identity, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.pc.controlTimeout)
	defer cancel()
	rec, err := controlCall(ctx, d.cfg.Address, CmdIdentify)
	if err != nil {
		return devices.Identity{}, "", err
	}
	return ParseIdentity(rec)
}

func (d *PullDevice) controlFetch(ctx context.Context, f Fetch) (string, error) {
	return controlCall(ctx, d.cfg.Address, f.String())
}

// Capabilities implements devices.Device.
func (d *PullDevice) Capabilities() devices.Capabilities {
	return devices.Capabilities{Slots: 1, Health: true}
}

// Identify implements devices.Device.
func (d *PullDevice) Identify(ctx context.Context) (devices.Identity, error) {
	id, _, err := d.ident(ctx)
	if err != nil {
		return id, classify("identify", fmt.Errorf("identify %s: %w", d.cfg.ID, err))
	}
	return id, nil
}

// Interlock implements devices.Device.
func (d *PullDevice) Interlock(ctx context.Context) (bool, error) {
	return false, devices.Permanent("interlock", fmt.Errorf("tftp-pull device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// Backup implements devices.Device: a pulling device cannot be read back.
func (d *PullDevice) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return 0, devices.Permanent("backup", fmt.Errorf("tftp-pull device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// Transfer implements devices.Device. It spools r to a temp file while
// hashing it and refuses to serve bytes whose sha256 is not img.SHA256 (an
// image without one is served as spooled, and checked by its own hash);
// then it serves that one file on the listen address to the device only,
// triggers the fetch, and stops serving when the device reports. progress
// counts bytes handed to the device.
func (d *PullDevice) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	spool, err := os.CreateTemp("", "fieldgate-tftp-pull-")
	if err != nil {
		return devices.Transient("transfer", fmt.Errorf("push %s to %s: spool: %w", img.Name, d.cfg.ID, err))
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(spool, h), io.LimitReader(r, img.Size))
	if err != nil {
		return devices.Transient("transfer", fmt.Errorf("push %s to %s: spool: %w", img.Name, d.cfg.ID, err))
	}
	spooled := hex.EncodeToString(h.Sum(nil))
	if img.SHA256 == "" {
		// No hash given (the daemon re-pushes a known-good image in a
		// rollback): the device must store the bytes spooled.
		img.SHA256 = spooled
	}
	if got := spooled; n != img.Size || got != img.SHA256 {
		return devices.Permanent("transfer", fmt.Errorf("push %s to %s: source has %d bytes with sha256 %s, want %d bytes with %s", img.Name, d.cfg.ID, n, got, img.Size, img.SHA256))
	}

	pc, err := net.ListenPacket("udp", d.pc.listen)
	if err != nil {
		return devices.Transient("transfer", fmt.Errorf("push %s to %s: serve on %s: %w", img.Name, d.cfg.ID, d.pc.listen, err))
	}
	defer pc.Close()
	var (
		mu       sync.Mutex
		complete int
		lastErr  error
	)
	srv := &Server{
		Read: func(name string) (io.ReadCloser, int64, error) {
			if name != d.pc.file {
				return nil, 0, fmt.Errorf("%s: %w", name, os.ErrNotExist)
			}
			sr := io.NewSectionReader(spool, 0, img.Size)
			return io.NopCloser(devices.ProgressReader(sr, img.Size, progress)), img.Size, nil
		},
		Allow:         d.pc.allow,
		MaxBlksize:    d.pc.maxBlk,
		MaxWindowsize: d.pc.maxWin,
		Timeout:       d.pc.timeout,
		Retries:       d.pc.retries,
		Log:           d.log,
		Done: func(op, name string, n int64, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err == nil && n == img.Size {
				complete++
			} else if err != nil {
				lastErr = err
			}
		},
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, pc) }()
	f := Fetch{Server: pc.LocalAddr().String(), File: d.pc.file, Size: img.Size, SHA256: img.SHA256}
	d.log.Info("tftp serve for pull", "image", img.Name, "version", img.Version, "listen", f.Server)
	fctx, cancel := context.WithTimeout(ctx, d.pc.fetchTimeout)
	got, err := d.trigger(fctx, f)
	cancel()
	stop()
	if serr := <-served; serr != nil && err == nil {
		err = serr
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (last transfer: %v)", err, lastErr)
		}
		return classify("transfer", fmt.Errorf("push %s to %s by pull: %w", img.Name, d.cfg.ID, err))
	}
	if got != img.SHA256 {
		return devices.Permanent("transfer", fmt.Errorf("device %s reports sha256 %s, want %s", d.cfg.ID, got, img.SHA256))
	}
	if complete == 0 {
		return devices.Permanent("transfer", fmt.Errorf("device %s reports success but never read %s to the end", d.cfg.ID, d.pc.file))
	}
	d.pushed = &img
	return nil
}

// Resume implements devices.Resumer, as Device.Resume does.
func (d *PullDevice) Resume(img devices.Image, r io.Reader) error {
	if err := checkImage(img, r); err != nil {
		return devices.Permanent("resume", fmt.Errorf("resume %s on %s: %w", img.Name, d.cfg.ID, err))
	}
	d.pushed = &img
	return nil
}

// Activate implements devices.Device: waits until the device reports the
// pulled version.
func (d *PullDevice) Activate(ctx context.Context) error {
	return waitBooted(ctx, "activate", d.cfg.ID, d.pushed, d.ident, d.pc.bootTimeout, d.pc.pollInterval, d.log)
}

// Health implements devices.Device.
func (d *PullDevice) Health(ctx context.Context) error {
	return health(ctx, d.cfg.ID, d.pushed, d.ident)
}

// Commit implements devices.Device.
func (d *PullDevice) Commit(ctx context.Context) error { return nil }

// Revert implements devices.Device.
func (d *PullDevice) Revert(ctx context.Context) error {
	return devices.Permanent("revert", fmt.Errorf("tftp-pull device %s: %w", d.cfg.ID, devices.ErrUnsupported))
}

// Close implements devices.Device.
func (d *PullDevice) Close() error { return nil }
