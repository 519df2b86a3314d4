// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/devices"
)

// Driver returns the "xmodem" driver: a bootloader console on a serial
// port that receives images with XMODEM-1K (update_command default
// "update").
func Driver() devices.Driver { return newDriver("xmodem", false) }

// YmodemDriver returns the "ymodem" driver: the same console, receiving
// images with YMODEM (update_command default "yupdate").
func YmodemDriver() devices.Driver { return newDriver("ymodem", true) }

func newDriver(name string, ymodem bool) devices.Driver {
	proto := "XMODEM-1K"
	if ymodem {
		proto = "YMODEM"
	}
	return devices.Driver{
		Name: name,
		Doc: "A bootloader with a text console on a serial line (RS-232/485) that receives images with " + proto +
			" after the update_command. address is the serial port (/dev/ttyUSB0), baud its rate (default 115200, 8N1). " +
			"Identify reads the id, version and hash commands; Backup reads the image back with the dump command; " +
			"Health compares version and hash with the pushed image. One slot: a rollback re-pushes the backup.",
		Options: func(r *devices.Options) { readOptions(r, ymodem) },
		OptionDoc: map[string]string{
			"prompt":          "the console prompt that ends every reply; must not be empty",
			"update_command":  "starts the " + proto + " receiver; must not be empty",
			"version_command": "prints \"version V\" (\"version none\": no application, the device stays in its bootloader); must not be empty",
			"id_command":      "prints key=value fields: hw (or hardware, hardware_id), serial, model, vendor; \"\" = none",
			"hash_command":    "prints \"sha256=HEX size=N\" of the stored image, checked after a transfer and by Health; \"\" = none: the version only",
			"reset_command":   "boots the received image; must not be empty",
			"dump_command":    "sends the running image back by " + proto + " (Backup); \"\" = no read-back",
			"timeout":         "how long a console command may take to answer",
			"boot_timeout":    "how long after reset_command the prompt must be back",
			"start_timeout":   "how long after update_command or dump_command the transfer must start",
			"block_timeout":   "how long the receiver may take to acknowledge one block",
			"retries":         "how often one block is sent again (or a bad block is refused in a row when reading back) before the transfer fails",
		},
		Check: func(cfg devices.Config) error {
			_, err := parseConfig(cfg, ymodem)
			return err
		},
		Open: func(cfg devices.Config, log *slog.Logger) (devices.Device, error) {
			opt, err := parseConfig(cfg, ymodem)
			if err != nil {
				return nil, err
			}
			if log == nil {
				log = slog.New(slog.DiscardHandler)
			}
			return &Device{cfg: cfg, opt: opt, log: log}, nil
		},
	}
}

// readOptions reads the options of the "xmodem" (or, with ymodem, the
// "ymodem") driver from r; Driver.OptionDoc says what each key means.
func readOptions(r *devices.Options, ymodem bool) options {
	updateCmd := "update"
	if ymodem {
		updateCmd = "yupdate"
	}
	return options{
		ymodem:       ymodem,
		prompt:       r.String("prompt", "> "),
		updateCmd:    r.String("update_command", updateCmd),
		versionCmd:   r.String("version_command", "version"),
		idCmd:        r.String("id_command", "id"),
		hashCmd:      r.String("hash_command", "hash"),
		resetCmd:     r.String("reset_command", "reset"),
		dumpCmd:      r.String("dump_command", "dump"),
		timeout:      r.Duration("timeout", 5*time.Second),
		bootTimeout:  r.Duration("boot_timeout", 30*time.Second),
		startTimeout: r.Duration("start_timeout", 30*time.Second),
		blockTimeout: r.Duration("block_timeout", 10*time.Second),
		retries:      r.Int("retries", 10, 1, math.MaxInt),
	}
}

// options are a device's parsed Config.Options.
type options struct {
	ymodem       bool
	baud         int
	prompt       string
	updateCmd    string
	versionCmd   string
	idCmd        string
	hashCmd      string
	resetCmd     string
	dumpCmd      string
	timeout      time.Duration // console replies
	bootTimeout  time.Duration // reset until the prompt is back
	startTimeout time.Duration // update/dump command until the transfer starts
	blockTimeout time.Duration // each ACK
	retries      int
}

func parseConfig(cfg devices.Config, ymodem bool) (options, error) {
	r := devices.ReadOptions(cfg.Options)
	o := readOptions(r, ymodem)
	o.baud = cfg.Baud
	if o.baud == 0 {
		o.baud = 115200
	}
	var errs []error
	if cfg.Address == "" {
		errs = append(errs, errors.New("address (the serial port) is empty"))
	}
	if cfg.Baud < 0 {
		errs = append(errs, fmt.Errorf("baud %d is negative", cfg.Baud))
	}
	errs = append(errs, r.Err())
	for _, c := range []struct{ key, v string }{{"prompt", o.prompt}, {"update_command", o.updateCmd}, {"version_command", o.versionCmd}, {"reset_command", o.resetCmd}} {
		if c.v == "" {
			errs = append(errs, fmt.Errorf("option %s must not be empty", c.key))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("device %s (%s): %w", cfg.ID, cfg.Protocol, err)
	}
	return o, nil
}

// Device is a serial bootloader with a text console. It opens the port for
// each step and closes it afterwards. Not safe for concurrent use.
type Device struct {
	cfg devices.Config
	opt options
	log *slog.Logger
	// pushed is the image of the last successful Transfer, which Health
	// expects to be running.
	pushed *devices.Image
}

var _ devices.Device = (*Device)(nil)

// Capabilities: one slot, read-back through the dump command, a health
// probe that compares version and hash with the pushed image.
func (d *Device) Capabilities() devices.Capabilities {
	return devices.Capabilities{Slots: 1, ReadBack: d.opt.dumpCmd != "", Health: true}
}

// Identify reads id, version and hash from the console. The id command's
// key=value fields give hw (or hardware_id), serial, vendor, product,
// model and hw_rev (or hardware_revision). Version is empty when the
// device says "version none" (it stays in its bootloader).
func (d *Device) Identify(ctx context.Context) (devices.Identity, error) {
	var id devices.Identity
	err := d.session(ctx, "identify", func(s *console) error {
		var err error
		id, err = s.identify()
		return err
	})
	return id, err
}

// Interlock is not available on a bare bootloader console.
func (d *Device) Interlock(ctx context.Context) (bool, error) {
	return false, fmt.Errorf("interlock on %s: %w", d.cfg.ID, devices.ErrUnsupported)
}

// Backup asks the device to send its installed image (dump_command) and
// receives it with YMODEM, whose header gives the exact size.
func (d *Device) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if d.opt.dumpCmd == "" {
		return 0, fmt.Errorf("backup %s: %w", d.cfg.ID, devices.ErrUnsupported)
	}
	var n int64
	err := d.session(ctx, "backup", func(s *console) error {
		if err := s.send(d.opt.dumpCmd); err != nil {
			return err
		}
		cw := &countWriter{w: w}
		info, err := receiveYMODEM(s.c, cw, d.xopt(nil))
		n = cw.n
		if err != nil {
			return fmt.Errorf("receive image: %w", err)
		}
		d.log.Info("backup received", "bytes", n, "name", info.Name)
		if _, err := s.waitPrompt(d.opt.timeout); err != nil {
			d.log.Warn("no prompt after dump", "err", err)
		}
		return nil
	})
	return n, err
}

// Transfer sends the update command and then img with XMODEM-1K (or
// YMODEM), and checks the hash the device reports afterwards, if it
// reports one.
func (d *Device) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	d.pushed = nil
	err := d.session(ctx, "transfer", func(s *console) error {
		if err := s.send(d.opt.updateCmd); err != nil {
			return err
		}
		h := sha256.New()
		tr := io.TeeReader(r, h)
		var err error
		if d.opt.ymodem {
			name := img.Name
			if name == "" {
				name = "image.bin"
			}
			err = sendYMODEM(s.c, name, tr, img.Size, d.xopt(progress))
		} else {
			err = send(s.c, tr, img.Size, d.xopt(progress))
		}
		if err != nil {
			return fmt.Errorf("send %s: %w", img.Name, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if img.SHA256 != "" && !strings.EqualFold(sum, img.SHA256) {
			return &localError{fmt.Errorf("image %s read with sha256 %s, want %s", img.Name, sum, img.SHA256)}
		}
		out, err := s.waitPrompt(d.opt.timeout)
		if err != nil {
			return fmt.Errorf("after transfer: %w", err)
		}
		d.log.Debug("device after transfer", "output", out)
		if d.opt.hashCmd != "" {
			got, size, ok, err := s.hash()
			if err != nil {
				return err
			}
			if ok && (got != sum || (size >= 0 && size != img.Size)) {
				return fmt.Errorf("device %s reports sha256 %s size %d, want %s size %d", d.cfg.ID, got, size, sum, img.Size)
			}
		}
		return nil
	})
	if err == nil {
		d.pushed = &img
	}
	return err
}

// Activate sends the reset command and waits until the console prompt is
// back (the device has booted, or stayed in its bootloader).
func (d *Device) Activate(ctx context.Context) error {
	return d.session(ctx, "activate", func(s *console) error {
		if err := s.send(d.opt.resetCmd); err != nil {
			return err
		}
		out, err := s.waitPrompt(d.opt.bootTimeout)
		if err != nil {
			return fmt.Errorf("wait for the prompt after reset: %w", err)
		}
		d.log.Debug("device after reset", "output", out)
		return nil
	})
}

// Health checks that the device runs an image, and that it is the one
// Transfer pushed (version, and hash where the device reports one).
func (d *Device) Health(ctx context.Context) error {
	id, err := d.Identify(ctx)
	if err != nil {
		return err
	}
	if id.Version == "" {
		return devices.Permanent("health", fmt.Errorf("device %s runs no image (stays in its bootloader)", d.cfg.ID))
	}
	if d.pushed == nil {
		return nil
	}
	if d.pushed.Version != "" && id.Version != d.pushed.Version {
		return devices.Permanent("health", fmt.Errorf("device %s runs version %s, want %s", d.cfg.ID, id.Version, d.pushed.Version))
	}
	if id.ImageSHA256 != "" && d.pushed.SHA256 != "" && !strings.EqualFold(id.ImageSHA256, d.pushed.SHA256) {
		return devices.Permanent("health", fmt.Errorf("device %s reports sha256 %s, want %s", d.cfg.ID, id.ImageSHA256, d.pushed.SHA256))
	}
	return nil
}

// Commit does nothing: a single-slot device runs what it was given.
func (d *Device) Commit(ctx context.Context) error { return nil }

// Revert is not possible on a single slot; the daemon re-pushes the backup.
func (d *Device) Revert(ctx context.Context) error {
	return fmt.Errorf("revert %s: %w", d.cfg.ID, devices.ErrUnsupported)
}

// Close releases nothing: ports are open only during a step.
func (d *Device) Close() error { return nil }

func (d *Device) xopt(progress devices.Progress) Options {
	return Options{
		StartTimeout: d.opt.startTimeout,
		Timeout:      d.opt.blockTimeout,
		Retries:      d.opt.retries,
		Progress:     progress,
		Log:          d.log,
	}
}

// localError marks a failure on the gateway's side (reading the image).
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// session opens the port, syncs with the console, runs fn and closes the
// port. Errors are classified for the daemon.
func (d *Device) session(ctx context.Context, op string, fn func(*console) error) error {
	p, err := openSerial(d.cfg.Address, d.opt.baud)
	if err != nil {
		return devices.Transient(op, fmt.Errorf("device %s: %w", d.cfg.ID, err))
	}
	defer p.Close()
	s := &console{c: newConn(ctx, p), opt: d.opt}
	err = s.sync()
	if err == nil {
		err = fn(s)
	}
	if err != nil {
		return classify(op, fmt.Errorf("device %s: %w", d.cfg.ID, err))
	}
	return nil
}

// classify: the device refusing an image or breaking the protocol, and
// local errors, are permanent; timeouts, line noise and vanished ports are
// worth a retry.
func classify(op string, err error) error {
	var le *localError
	switch {
	case errors.Is(err, ErrCanceled), errors.Is(err, ErrProtocol), errors.As(err, &le):
		return devices.Permanent(op, err)
	default:
		return devices.Transient(op, err)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// console is the text dialogue on an open port.
type console struct {
	c   *conn
	opt options
}

// send writes a command line.
func (s *console) send(cmd string) error {
	return s.c.write([]byte(cmd+"\r"), s.opt.timeout)
}

// sync makes sure the console is at its prompt: it sends an empty line,
// waits for a prompt, and lets any further stale output pass. A device
// that does not answer may still be inside a transfer that the gateway
// abandoned (the daemon was killed or lost power mid-push): its receiver
// keeps asking for blocks with 'C' or NAK. sync then aborts that transfer
// with CAN CAN, as a sender would, and asks for the prompt once more.
func (s *console) sync() error {
	if err := s.send(""); err != nil {
		return err
	}
	_, err := s.waitPrompt(s.opt.timeout)
	if errors.Is(err, ErrTimeout) {
		s.c.cancel()
		s.c.drain(quiet)
		if err = s.send(""); err != nil {
			return err
		}
		_, err = s.waitPrompt(s.opt.timeout)
	}
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	s.c.drain(quiet)
	return nil
}

// waitPrompt reads until the prompt stands at the start of a line and
// returns the text before it.
func (s *console) waitPrompt(timeout time.Duration) (string, error) {
	var out []byte
	deadline := time.Now().Add(timeout)
	p := []byte(s.opt.prompt)
	for {
		b, err := s.c.getc(deadline)
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				return string(out), fmt.Errorf("no prompt %q within %v (got %q): %w", s.opt.prompt, timeout, tail(out, 80), ErrTimeout)
			}
			return string(out), err
		}
		out = append(out, b)
		if len(out) > 64<<10 {
			out = out[len(out)-32<<10:]
		}
		if bytes.HasSuffix(out, p) {
			rest := out[:len(out)-len(p)]
			if len(rest) == 0 || rest[len(rest)-1] == '\n' || rest[len(rest)-1] == '\r' {
				return string(rest), nil
			}
		}
	}
}

// command runs cmd and returns its output lines, without the echo of cmd
// and without empty lines.
func (s *console) command(cmd string) ([]string, error) {
	if err := s.send(cmd); err != nil {
		return nil, err
	}
	out, err := s.waitPrompt(s.opt.timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || (len(lines) == 0 && l == cmd) {
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}

func (s *console) identify() (devices.Identity, error) {
	var id devices.Identity
	if s.opt.idCmd != "" {
		lines, err := s.command(s.opt.idCmd)
		if err != nil {
			return id, err
		}
		for _, l := range lines {
			for _, f := range strings.Fields(l) {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					continue
				}
				switch k {
				case "hw", "hardware", "hardware_id":
					id.HardwareID = v
				case "serial":
					id.Serial = v
				case "model":
					id.Model = v
				case "vendor":
					id.Vendor = v
				case "product":
					id.Product = v
				case "hw_rev", "hardware_revision":
					id.HardwareRevision = v
				}
			}
		}
	}
	lines, err := s.command(s.opt.versionCmd)
	if err != nil {
		return id, err
	}
	found := false
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "version "); ok {
			v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
			if v != "none" {
				id.Version = v
			}
			found = true
			break
		}
	}
	if !found {
		return id, fmt.Errorf("%w: %s answered %q, want \"version <v>\"", ErrProtocol, s.opt.versionCmd, strings.Join(lines, " | "))
	}
	if s.opt.hashCmd != "" {
		sum, _, ok, err := s.hash()
		if err != nil {
			return id, err
		}
		if ok {
			id.ImageSHA256 = sum
		}
	}
	return id, nil
}

// hash runs the hash command; ok is false if the device gives no
// "sha256=<hex> size=<n>" line.
func (s *console) hash() (sum string, size int64, ok bool, err error) {
	lines, err := s.command(s.opt.hashCmd)
	if err != nil {
		return "", 0, false, err
	}
	for _, l := range lines {
		size = -1
		sum = ""
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "sha256":
				sum = strings.ToLower(v)
			case "size":
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					size = n
				}
			}
		}
		if len(sum) == 64 {
			return sum, size, true, nil
		}
	}
	return "", 0, false, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
