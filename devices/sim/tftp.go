// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/tftp"
	"github.com/fieldgate/fieldgate/internal/atomicfile"
)

// TFTP simulated devices.
//
// Kind "tftp-server" is a PLC-like device with a TFTP server on
// Spec.Address (UDP host:port). It accepts the firmware by WRQ of the file
// named by option "file" (default firmware.bin), serves it back by RRQ, and
// serves its identity record (tftp.ParseIdentity) as the read-only file
// "version". It boots on the trigger "upload complete": once the last block
// is stored it checks the image header (VerifyImage) and either runs the new
// version or reports state=boot-failed and keeps running the old one.
//
// Kind "tftp-pull" is a device that fetches its firmware: it listens on
// Spec.Address (TCP host:port) for the tftp-pull control channel
// (devices/tftp control.go: IDENTIFY, FETCH), reads the image by RRQ from
// the gateway's server, checks size and sha256, stores it and boots it the
// same way.
//
// Both keep firmware.bin and identity under StateDir, so they survive a
// restart. Options: "file", "image_size" (factory image bytes, default
// 65536), "max_size" (largest upload, default 64 MiB). Faults: "boot-fail"
// (no image but the factory one boots), "slow-flash" (storing takes boot_delay, default 2 s),
// "corrupt-readback" (RRQ of the firmware flips one byte), "no-readback"
// (RRQ of the firmware is refused), "wrong-hash" (a pull device reports a
// different sha256 than it stored).

// tftpFlash is the persistent firmware store shared by both TFTP kinds.
type tftpFlash struct {
	spec      Spec
	file      string
	maxSize   int64
	slowFlash time.Duration
	log       *slog.Logger

	mu    sync.Mutex
	id    devices.Identity
	state string

	counters *counterFile // writes (uploads and pulls) and boots
}

func newTFTPFlash(spec Spec, log *slog.Logger) (*tftpFlash, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &tftpFlash{spec: spec, file: "firmware.bin", maxSize: 64 << 20, slowFlash: 2 * time.Second, log: log.With("device", spec.ID, "kind", spec.Kind)}
	factory := 65536
	var errs []error
	for k, v := range spec.Options {
		switch k {
		case "file":
			f.file = strings.TrimLeft(v, "/")
			if f.file == "" || f.file == "version" || strings.ContainsAny(f.file, "/ ") {
				errs = append(errs, fmt.Errorf("option file=%q: want a plain name other than version", v))
			}
		case "image_size", "max_size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("option %s=%q: want a positive byte count", k, v))
			}
			if k == "image_size" {
				factory = int(n)
			} else {
				f.maxSize = n
			}
		case "boot_delay":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("option %s=%q: want a duration", k, v))
			}
			f.slowFlash = d
		default:
			errs = append(errs, fmt.Errorf("unknown option %q", k))
		}
	}
	if spec.HardwareID == "" || spec.StateDir == "" || spec.Version == "" {
		errs = append(errs, errors.New("hardware_id, version and state_dir are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sim %s (%s): %w", spec.ID, spec.Kind, err)
	}
	if err := os.MkdirAll(spec.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("sim %s: %w", spec.ID, err)
	}
	if err := f.load(factory); err != nil {
		return nil, fmt.Errorf("sim %s: %w", spec.ID, err)
	}
	counters, err := openCounters(spec.StateDir, f.log)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", spec.ID, err)
	}
	f.counters = counters
	f.counters.booted() // starting the simulator is a power-on
	return f, nil
}

func (f *tftpFlash) path(name string) string { return filepath.Join(f.spec.StateDir, "tftp-"+name) }

// load reads the persisted identity, installing the factory image on first
// start.
func (f *tftpFlash) load(factory int) error {
	b, err := os.ReadFile(f.path("identity"))
	if errors.Is(err, fs.ErrNotExist) {
		img := MakeImage(f.spec.HardwareID, f.spec.Version, factory)
		if err := tftpWriteAtomic(f.path("firmware.bin"), img); err != nil {
			return err
		}
		sum := sha256.Sum256(img)
		f.id = f.identity(f.spec.Version, hex.EncodeToString(sum[:]))
		f.state = tftp.StateRunning
		return f.saveLocked()
	}
	if err != nil {
		return err
	}
	id, state, err := tftp.ParseIdentity(string(b))
	if err != nil {
		return fmt.Errorf("load %s: %w", f.path("identity"), err)
	}
	f.id, f.state = id, state
	return nil
}

func (f *tftpFlash) identity(version, sum string) devices.Identity {
	return devices.Identity{Vendor: "fieldgate", Model: "fieldgate-sim-" + f.spec.Kind, Serial: f.spec.ID,
		HardwareID: f.spec.HardwareID, Version: version, ImageSHA256: sum}
}

func (f *tftpFlash) saveLocked() error {
	return tftpWriteAtomic(f.path("identity"), []byte(tftp.FormatIdentity(f.id, f.state)+"\n"))
}

// Identity returns the device's identity record.
func (f *tftpFlash) record() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return tftp.FormatIdentity(f.id, f.state) + "\n"
}

// install stores a received image (already in tmp) as the firmware and
// boots it: a valid image for this hardware runs, anything else leaves the
// old version running with state boot-failed.
func (f *tftpFlash) install(tmp string) error {
	if f.spec.HasFault("slow-flash") {
		time.Sleep(f.slowFlash)
	}
	img, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.Rename(tmp, f.path("firmware.bin")); err != nil {
		return err
	}
	f.counters.booted()
	h, err := VerifyImage(img, f.spec.HardwareID)
	if err == nil && f.spec.bootFails(h.Version) {
		err = fmt.Errorf("boot-fail fault injected: version %s does not boot", h.Version)
	}
	if err != nil {
		f.log.Info("sim image does not boot", "err", err)
		f.state = tftp.StateBootFailed
	} else {
		sum := sha256.Sum256(img)
		f.id = f.identity(h.Version, hex.EncodeToString(sum[:]))
		f.state = tftp.StateRunning
		f.log.Info("sim booted", "version", h.Version)
	}
	return f.saveLocked()
}

// upload is a WRQ (or a pull) in progress: a temp file in StateDir.
type tftpUpload struct {
	f     *tftpFlash
	tmp   *os.File
	begun bool // its first bytes arrived: a write is counted
}

func (f *tftpFlash) newUpload() (*tftpUpload, error) {
	tmp, err := os.CreateTemp(f.spec.StateDir, "tftp-upload-")
	if err != nil {
		return nil, err
	}
	return &tftpUpload{f: f, tmp: tmp}, nil
}

func (u *tftpUpload) Write(b []byte) (int, error) {
	if !u.begun && len(b) > 0 {
		u.begun = true
		u.f.counters.begin()
	}
	n, err := u.tmp.Write(b)
	u.f.counters.add(n)
	return n, err
}

func (u *tftpUpload) Commit() error {
	if err := u.tmp.Sync(); err != nil {
		u.Abort()
		return err
	}
	if err := u.tmp.Close(); err != nil {
		u.Abort()
		return err
	}
	if u.begun {
		u.f.counters.end(true)
	}
	return u.f.install(u.tmp.Name())
}

func (u *tftpUpload) Abort() {
	if u.begun {
		u.f.counters.end(false)
	}
	u.tmp.Close()
	os.Remove(u.tmp.Name())
}

// readFirmware opens the stored firmware for an RRQ, applying read-back
// faults.
func (f *tftpFlash) readFirmware() (io.ReadCloser, int64, error) {
	if f.spec.HasFault("no-readback") {
		return nil, 0, &tftp.RemoteError{Code: tftp.ErrCodeAccess, Msg: "read-back disabled"}
	}
	f.mu.Lock()
	b, err := os.ReadFile(f.path("firmware.bin"))
	f.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if f.spec.HasFault("corrupt-readback") && len(b) > 0 {
		b[len(b)/2] ^= 0xff
	}
	return io.NopCloser(strings.NewReader(string(b))), int64(len(b)), nil
}

// TFTPDevice is the simulated "tftp-server" device.
type TFTPDevice struct {
	flash *tftpFlash
	pc    net.PacketConn
}

// NewTFTPServer returns a "tftp-server" device with its UDP socket bound to
// spec.Address (port 0 picks one; see Addr). Run serves it and closes it.
func NewTFTPServer(spec Spec, log *slog.Logger) (*TFTPDevice, error) {
	f, err := newTFTPFlash(spec, log)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", spec.Address)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", spec.ID, err)
	}
	return &TFTPDevice{flash: f, pc: pc}, nil
}

// Addr is the bound UDP address.
func (d *TFTPDevice) Addr() string { return d.pc.LocalAddr().String() }

// Identity returns the device's current identity record.
func (d *TFTPDevice) Identity() string { return d.flash.record() }

// Run serves TFTP until ctx ends and returns nil then.
func (d *TFTPDevice) Run(ctx context.Context) error {
	defer d.pc.Close()
	f := d.flash
	srv := &tftp.Server{
		Read: func(name string) (io.ReadCloser, int64, error) {
			switch name {
			case "version":
				rec := f.record()
				return io.NopCloser(strings.NewReader(rec)), int64(len(rec)), nil
			case f.file:
				return f.readFirmware()
			}
			return nil, 0, fs.ErrNotExist
		},
		Write: func(name string, size int64) (tftp.Upload, error) {
			if name != f.file {
				return nil, &tftp.RemoteError{Code: tftp.ErrCodeAccess, Msg: "only " + f.file + " is writable"}
			}
			return f.newUpload()
		},
		MaxSize: f.maxSize,
		Log:     f.log,
	}
	f.log.Info("sim tftp-server listening", "addr", d.Addr(), "version", f.id.Version)
	if err := srv.Serve(ctx, d.pc); err != nil {
		return fmt.Errorf("sim %s: %w", f.spec.ID, err)
	}
	return nil
}

// TFTPPullDevice is the simulated "tftp-pull" device.
type TFTPPullDevice struct {
	flash *tftpFlash
	ln    net.Listener
}

// NewTFTPPull returns a "tftp-pull" device with its control listener bound
// to spec.Address (TCP; port 0 picks one, see Addr). Run serves it and
// closes it.
func NewTFTPPull(spec Spec, log *slog.Logger) (*TFTPPullDevice, error) {
	f, err := newTFTPFlash(spec, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", spec.Address)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", spec.ID, err)
	}
	return &TFTPPullDevice{flash: f, ln: ln}, nil
}

// Addr is the bound control address.
func (d *TFTPPullDevice) Addr() string { return d.ln.Addr().String() }

// Identity returns the device's current identity record.
func (d *TFTPPullDevice) Identity() string { return d.flash.record() }

// Run answers control connections until ctx ends and returns nil then.
// One command runs at a time: a device flashes one image at once.
func (d *TFTPPullDevice) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { d.ln.Close() })
	defer stop()
	defer d.ln.Close()
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	d.flash.log.Info("sim tftp-pull listening", "addr", d.Addr(), "version", d.flash.id.Version)
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim %s: %w", d.flash.spec.ID, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			cstop := context.AfterFunc(ctx, func() { c.Close() })
			defer cstop()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			sc := bufio.NewScanner(c)
			sc.Buffer(make([]byte, 0, tftp.MaxControlLine), tftp.MaxControlLine)
			if !sc.Scan() {
				fmt.Fprintf(c, "ERR no command line\n")
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			mu.Lock()
			reply := d.command(ctx, sc.Text())
			mu.Unlock()
			fmt.Fprintf(c, "%s\n", reply)
		}()
	}
}

func (d *TFTPPullDevice) command(ctx context.Context, line string) string {
	verb, args, _ := strings.Cut(line, " ")
	switch verb {
	case tftp.CmdIdentify:
		return "OK " + strings.TrimSpace(d.flash.record())
	case tftp.CmdFetch:
		fe, err := tftp.ParseFetch(args)
		if err != nil {
			return "ERR " + err.Error()
		}
		sum, err := d.fetch(ctx, fe)
		if err != nil {
			d.flash.log.Info("sim fetch failed", "err", err)
			return "ERR " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		return "OK " + sum
	}
	return fmt.Sprintf("ERR unknown command %q", verb)
}

func (d *TFTPPullDevice) fetch(ctx context.Context, fe tftp.Fetch) (string, error) {
	f := d.flash
	if fe.Size > f.maxSize {
		return "", fmt.Errorf("image of %d bytes exceeds %d", fe.Size, f.maxSize)
	}
	up, err := f.newUpload()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	c := tftp.Client{Blksize: 1428, Windowsize: 8, Log: f.log}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n, err := c.Get(ctx, fe.Server, fe.File, io.MultiWriter(up, h))
	if err != nil {
		up.Abort()
		return "", fmt.Errorf("fetch %s from %s: %w", fe.File, fe.Server, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != fe.Size || sum != fe.SHA256 {
		up.Abort()
		return "", fmt.Errorf("fetched %d bytes with sha256 %s, announced %d bytes with %s", n, sum, fe.Size, fe.SHA256)
	}
	if err := up.Commit(); err != nil {
		return "", err
	}
	if f.spec.HasFault("wrong-hash") {
		sum = strings.Repeat("0", 64)
	}
	return sum, nil
}

// tftpWriteAtomic writes b to path atomically (internal/atomicfile).
func tftpWriteAtomic(path string, b []byte) error {
	return atomicfile.Write(path, b, 0o644)
}
