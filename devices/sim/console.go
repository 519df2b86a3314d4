// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// ConsoleKind is the kind name of the simulated console bootloader.
const ConsoleKind = "xmodem-console"

// Console is a simulated MCU with a serial bootloader console: the kind
// "xmodem-console". It creates a pty, links it at Spec.Address, and speaks
// a line-oriented console behind a prompt "> " (echoing what it is sent):
//
//	id        hw=<hardware id> serial=<serial> model=<model>
//	version   version <v>, or "version none (<why>)" while no image runs
//	hash      sha256=<hex> size=<n> of the installed image
//	update    receive an image with XMODEM-1K/CRC (padding cut by its header)
//	yupdate   receive an image with YMODEM (exact size)
//	dump      send the installed image with YMODEM ("flash.bin")
//	reset     reboot: boot the installed image if its header is valid
//	status    running version, boots, flash size, faults, and the flash
//	          writes counted in Counters (writes, partial, bytes)
//	help      the list of commands
//
// After update the device stays in its bootloader (no version) until
// reset. A transfer that fails after its first block leaves the partial
// image in flash (the flash was erased), which then does not boot.
// The device has one slot: its state (running version, boots) is a JSON
// file and the installed image a file under Spec.StateDir, both replaced
// atomically, so it survives restarts. On first start the flash holds
// MakeImage(hardware id, Spec.Version, image_size). Every transfer that
// reaches the flash (complete or partial) and every boot is counted in
// CountersFile (see Counters).
//
// A dump is done once the receiver has acknowledged the file's EOT: a
// command typed while the YMODEM end-of-batch exchange still waits for a
// receiver that has exited (lrzsz rb on a tty may) ends that exchange and
// runs at once, rather than after the sender's retries (about 30 s).
//
// Faults: "boot-fail" (no image but the factory one boots, so a re-pushed
// backup of it recovers the device), "slow-flash" (each received
// block takes 30 ms to program). Options: model, serial, image_size
// (default 32768), echo (default true), boot_delay (default 200ms),
// max_image (default 16777216), drop_every and corrupt_every (line faults
// in both directions).
type Console struct {
	spec     Spec
	log      *slog.Logger
	opt      consoleOptions
	state    consoleState
	counters *counterFile
}

type consoleOptions struct {
	model        string
	serial       string
	imageSize    int
	echo         bool
	bootDelay    time.Duration
	maxImage     int
	dropEvery    int
	corruptEvery int
}

// consoleState is persisted as state.json.
type consoleState struct {
	Running   string `json:"running"`              // version of the running image, "" in the bootloader
	BootError string `json:"boot_error,omitempty"` // why nothing runs
	Boots     int    `json:"boots"`
}

var consoleFaults = []string{"boot-fail", "slow-flash"}

// NewConsole checks spec and returns the device. It does no I/O.
func NewConsole(spec Spec, log *slog.Logger) (Device, error) {
	c := &Console{spec: spec, log: log, opt: consoleOptions{
		model:     "fieldgate-sim-mcu",
		serial:    "SIM-" + spec.ID,
		imageSize: 32 << 10,
		echo:      true,
		bootDelay: 200 * time.Millisecond,
		maxImage:  16 << 20,
	}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if spec.HardwareID == "" {
		errs = append(errs, errors.New("hardware_id is empty"))
	}
	if spec.Address == "" {
		errs = append(errs, errors.New("address is empty"))
	}
	if spec.StateDir == "" {
		errs = append(errs, errors.New("state_dir is empty"))
	}
	if spec.Version == "" {
		errs = append(errs, errors.New("version (the factory image's) is empty"))
	}
	for _, f := range spec.Faults {
		if !slices.Contains(consoleFaults, f) {
			errs = append(errs, fmt.Errorf("fault %q is unknown to %s (known: %s)", f, ConsoleKind, strings.Join(consoleFaults, ", ")))
		}
	}
	keys := make([]string, 0, len(spec.Options))
	for k := range spec.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := spec.Options[k]
		var err error
		switch k {
		case "model":
			c.opt.model = v
		case "serial":
			c.opt.serial = v
		case "image_size":
			c.opt.imageSize, err = strconv.Atoi(v)
		case "echo":
			c.opt.echo, err = strconv.ParseBool(v)
		case "boot_delay":
			c.opt.bootDelay, err = time.ParseDuration(v)
		case "max_image":
			c.opt.maxImage, err = strconv.Atoi(v)
		case "drop_every":
			c.opt.dropEvery, err = strconv.Atoi(v)
		case "corrupt_every":
			c.opt.corruptEvery, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown option (known: boot_delay, corrupt_every, drop_every, echo, image_size, max_image, model, serial)")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("option %s=%q: %w", k, v, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", ConsoleKind, err)
	}
	return c, nil
}

func (c *Console) flashPath() string { return filepath.Join(c.spec.StateDir, "flash.bin") }
func (c *Console) statePath() string { return filepath.Join(c.spec.StateDir, "state.json") }

// load reads the persisted state, or installs the factory image.
func (c *Console) load() error {
	if err := os.MkdirAll(c.spec.StateDir, 0o755); err != nil {
		return err
	}
	var err error
	if c.counters, err = openCounters(c.spec.StateDir, c.log); err != nil {
		return err
	}
	b, err := os.ReadFile(c.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		img := MakeImage(c.spec.HardwareID, c.spec.Version, c.opt.imageSize)
		if err := replaceFile(c.flashPath(), img); err != nil {
			return fmt.Errorf("install factory image: %w", err)
		}
		c.state = consoleState{Running: c.spec.Version}
		return c.save()
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &c.state); err != nil {
		return fmt.Errorf("read %s: %w", c.statePath(), err)
	}
	return nil
}

func (c *Console) save() error {
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(c.statePath(), append(b, '\n'))
}

// Run creates the pty, links it at Spec.Address and serves the console
// until ctx ends.
func (c *Console) Run(ctx context.Context, ready func()) error {
	if err := c.load(); err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	p, err := serialtest.OpenPTY()
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Link(c.spec.Address); err != nil {
		return err
	}
	dev, wire := net.Pipe()
	f := serialtest.Faults{DropEvery: c.opt.dropEvery, CorruptEvery: c.opt.corruptEvery}
	line := serialtest.Connect(p, wire, serialtest.Config{Baud: c.spec.Baud, AtoB: f, BtoA: f})
	defer line.Close()
	stop := context.AfterFunc(ctx, func() { dev.Close() })
	defer stop()
	c.log.Info("console device up", "address", c.spec.Address, "pty", p.Path, "baud", c.spec.Baud, "running", c.state.Running)
	if ready != nil {
		ready()
	}
	err = c.serve(ctx, dev)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// consoleSession is the console on the device's line.
type consoleSession struct {
	c       *Console
	ctx     context.Context
	rw      net.Conn
	pending []byte // input read during a dump, for the next line
}

func (c *Console) serve(ctx context.Context, rw net.Conn) error {
	s := &consoleSession{c: c, ctx: ctx, rw: rw}
	s.banner()
	s.boot()
	for {
		s.print("> ")
		line, err := s.readLine()
		if err != nil {
			return err
		}
		s.handle(strings.TrimSpace(line))
	}
}

func (s *consoleSession) print(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	_ = s.rw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = s.rw.Write([]byte(msg))
}

func (s *consoleSession) banner() {
	s.print("\nfieldgate-sim %s %s hw=%s\n", ConsoleKind, s.c.spec.ID, s.c.spec.HardwareID)
}

// readLine reads one line a byte at a time (so that nothing meant for a
// transfer that follows the command is consumed), echoing it.
func (s *consoleSession) readLine() (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		if len(s.pending) > 0 {
			b[0], s.pending = s.pending[0], s.pending[1:]
		} else {
			_ = s.rw.SetReadDeadline(time.Time{})
			if _, err := s.rw.Read(b); err != nil {
				return "", err
			}
		}
		switch ch := b[0]; {
		case ch == '\r' || ch == '\n':
			if s.c.opt.echo {
				s.print("\n")
			}
			return string(line), nil
		case ch == 0x7f || ch == 0x08:
			if len(line) > 0 {
				line = line[:len(line)-1]
				if s.c.opt.echo {
					s.print("\b \b")
				}
			}
		case ch >= 0x20 && ch < 0x7f && len(line) < 256:
			line = append(line, ch)
			if s.c.opt.echo {
				_, _ = s.rw.Write(b)
			}
		}
	}
}

func (s *consoleSession) handle(cmd string) {
	switch cmd {
	case "":
	case "id":
		s.print("hw=%s serial=%s model=%s\n", s.c.spec.HardwareID, s.c.opt.serial, s.c.opt.model)
	case "version":
		if s.c.state.Running == "" {
			s.print("version none (%s)\n", s.c.state.BootError)
		} else {
			s.print("version %s\n", s.c.state.Running)
		}
	case "hash":
		img, err := os.ReadFile(s.c.flashPath())
		if err != nil {
			s.print("error: read flash: %v\n", err)
			return
		}
		sum := sha256.Sum256(img)
		s.print("sha256=%s size=%d\n", hex.EncodeToString(sum[:]), len(img))
	case "update", "yupdate":
		s.update(cmd == "yupdate")
	case "dump":
		s.dump()
	case "reset":
		s.print("resetting\n")
		select {
		case <-time.After(s.c.opt.bootDelay):
		case <-s.ctx.Done():
			return
		}
		s.banner()
		s.boot()
	case "status":
		fi, _ := os.Stat(s.c.flashPath())
		var size int64
		if fi != nil {
			size = fi.Size()
		}
		run := s.c.state.Running
		if run == "" {
			run = "none (" + s.c.state.BootError + ")"
		}
		n := s.c.counters.Counters()
		s.print("running=%s boots=%d flash=%d faults=%s writes=%d partial=%d written=%d\n",
			run, s.c.state.Boots, size, strings.Join(s.c.spec.Faults, ","), n.Writes, n.PartialWrites, n.BytesWritten)
	case "help":
		s.print("commands: id version hash update (XMODEM-1K) yupdate (YMODEM) dump (YMODEM) reset status help\n")
	default:
		s.print("unknown command %q (try help)\n", cmd)
	}
}

// boot checks the installed image like a bootloader would and runs it.
func (s *consoleSession) boot() {
	c := s.c
	c.state.Boots++
	c.counters.booted()
	img, err := os.ReadFile(c.flashPath())
	var h Header
	if err == nil {
		h, err = VerifyImage(img, c.spec.HardwareID)
	}
	if err == nil && c.spec.bootFails(h.Version) {
		err = fmt.Errorf("injected fault boot-fail: version %s does not boot (only the factory %s does)", h.Version, c.spec.Version)
	}
	if err != nil {
		c.state.Running, c.state.BootError = "", "boot failed: "+err.Error()
		s.print("boot failed: %v\nstaying in bootloader\n", err)
	} else {
		c.state.Running, c.state.BootError = h.Version, ""
		s.print("booting %s\n", h.Version)
	}
	if err := c.save(); err != nil {
		c.log.Error("save state", "err", err)
	}
	c.log.Info("boot", "running", c.state.Running, "error", c.state.BootError)
}

// consoleFlash collects a received image, refusing more than max bytes and
// taking "slow-flash" time per block.
type consoleFlash struct {
	buf  bytes.Buffer
	max  int
	slow time.Duration
}

func (w *consoleFlash) Write(b []byte) (int, error) {
	if w.buf.Len()+len(b) > w.max {
		return 0, fmt.Errorf("image larger than the flash (%d bytes)", w.max)
	}
	if w.slow > 0 {
		time.Sleep(w.slow)
	}
	return w.buf.Write(b)
}

func (s *consoleSession) update(ymodem bool) {
	c := s.c
	proto := "XMODEM-1K"
	if ymodem {
		proto = "YMODEM"
	}
	s.print("update: ready for %s\n", proto)
	c.state.Running, c.state.BootError = "", "in bootloader: reset to boot"
	w := &consoleFlash{max: c.opt.maxImage}
	if c.spec.HasFault("slow-flash") {
		w.slow = 30 * time.Millisecond
	}
	opt := xmodem.Options{Log: c.log}
	var err error
	if ymodem {
		_, err = xmodem.ReceiveYMODEM(s.ctx, s.rw, w, opt)
	} else {
		_, err = xmodem.Receive(s.ctx, s.rw, w, opt)
	}
	img := w.buf.Bytes()
	if err == nil && !ymodem {
		// XMODEM pads the last block: cut the image to the size its header
		// states, as a bootloader that knows its image format does.
		if h, herr := ParseImageHeader(img); herr == nil && h.Size <= len(img) {
			img = img[:h.Size]
		}
	}
	if err != nil && len(img) == 0 {
		s.print("\nupdate failed: %v (flash unchanged)\n", err)
		c.log.Warn("update failed", "err", err)
		_ = c.save()
		return
	}
	if werr := replaceFile(c.flashPath(), img); werr != nil {
		s.print("\nupdate failed: write flash: %v\n", werr)
		return
	}
	c.counters.wrote(len(img), err == nil)
	_ = c.save()
	if err != nil {
		s.print("\nupdate failed: %v (flash holds %d bytes of a partial image)\n", err, len(img))
		c.log.Warn("update failed", "err", err, "partial", len(img))
		return
	}
	sum := sha256.Sum256(img)
	s.print("update ok: %d bytes sha256=%s\n", len(img), hex.EncodeToString(sum[:]))
	c.log.Info("update received", "bytes", len(img), "sha256", hex.EncodeToString(sum[:]))
}

func (s *consoleSession) dump() {
	img, err := os.ReadFile(s.c.flashPath())
	if err != nil {
		s.print("error: read flash: %v\n", err)
		return
	}
	s.print("dump: sending %d bytes with YMODEM\n", len(img))
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	p := &batchEnd{Conn: s.rw, cancel: cancel}
	err = xmodem.SendYMODEM(ctx, p, "flash.bin", bytes.NewReader(img), int64(len(img)), xmodem.Options{Log: s.c.log})
	s.pending = append(s.pending, p.input...)
	if err != nil && s.ctx.Err() == nil && p.acknowledged() {
		s.c.log.Info("dump: file acknowledged; the receiver left the end-of-batch exchange", "err", err)
		err = nil
	}
	if err != nil {
		s.print("\ndump failed: %v\n", err)
		return
	}
	s.print("dump ok\n")
}

// errReceiverGone ends a dump's end-of-batch exchange when console input
// arrives instead of the receiver's answer.
var errReceiverGone = errors.New("console input after the file was acknowledged: the receiver has left")

// batchEnd is the console's line during a dump. Once the receiver has
// acknowledged the file (ACK or 'C' after EOT), the image is delivered and
// only the YMODEM end-of-batch exchange is left. A receiver that exits
// without finishing it (lrzsz rb on a tty may) would leave the sender
// waiting out its retries (three times its 10 s answer timeout) and the
// console deaf. So the first byte that is no protocol answer (a command
// typed after rb ended) ends the exchange at once, and that input is kept
// for the console.
type batchEnd struct {
	net.Conn
	cancel context.CancelFunc

	mu    sync.Mutex
	eot   bool   // the sender sent EOT
	acked bool   // ... and the receiver answered it with ACK or 'C'
	gone  bool   // console input arrived: the receiver has left
	input []byte // that input, for the console
}

const (
	ymodemEOT = 0x04
	ymodemACK = 0x06
	ymodemNAK = 0x15
	ymodemCAN = 0x18
)

func (p *batchEnd) Write(b []byte) (int, error) {
	p.mu.Lock()
	if len(b) == 1 && b[0] == ymodemEOT {
		p.eot = true
	}
	p.mu.Unlock()
	return p.Conn.Write(b)
}

func (p *batchEnd) Read(b []byte) (int, error) {
	p.mu.Lock()
	gone := p.gone
	p.mu.Unlock()
	if gone {
		return 0, errReceiverGone
	}
	n, err := p.Conn.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.eot {
		return n, err
	}
	for i, x := range b[:n] {
		switch x {
		case ymodemACK, 'C':
			p.acked = true
		case ymodemNAK, ymodemCAN:
		default:
			if !p.acked {
				continue // line noise during the file: the sender's business
			}
			p.gone = true
			p.input = append(p.input, b[i:n]...)
			p.cancel()
			if i == 0 {
				return 0, errReceiverGone
			}
			return i, nil
		}
	}
	return n, err
}

func (p *batchEnd) acknowledged() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

var _ io.Writer = (*consoleFlash)(nil)
