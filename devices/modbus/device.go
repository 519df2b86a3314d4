// SPDX-License-Identifier: Apache-2.0

package modbus

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log"
	"log/slog"
	"strings"
	"time"

	mb "github.com/simonvetter/modbus"
	"go.bug.st/serial"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
)

// Driver returns the Modbus TCP driver, protocol name "modbus-tcp". Address
// is host:port (port 502 if omitted).
func Driver() devices.Driver {
	return devices.Driver{
		Name: "modbus-tcp",
		Doc: "A device updated through Modbus TCP: the image is written with file records (function 0x15) and read " +
			"back with 0x14, commands and status go through holding registers, identity is read with 0x2B. " +
			"address is host[:port] (port 502 if omitted). The options are the device's register map; " +
			"register numbers and codes may be written in hex (0x64).",
		Options:   func(o *devices.Options) { readProfile(o) },
		OptionDoc: profileDoc(),
		Check:     func(cfg devices.Config) error { return check(cfg, false) },
		Open:      func(cfg devices.Config, log *slog.Logger) (devices.Device, error) { return Open(cfg, false, log) },
	}
}

// RTUDriver returns the Modbus RTU driver, protocol name "modbus-rtu".
// Address is the serial port; Baud defaults to 19200.
func RTUDriver() devices.Driver {
	return devices.Driver{
		Name: "modbus-rtu",
		Doc: "A device updated through Modbus RTU on a serial line (RS-485), with the register map and procedure of modbus-tcp. address is the serial port, " +
			"baud its rate (default 19200); unit is the slave address (1..247).",
		Options:   func(o *devices.Options) { readProfile(o) },
		OptionDoc: profileDoc(),
		Check:     func(cfg devices.Config) error { return check(cfg, true) },
		Open:      func(cfg devices.Config, log *slog.Logger) (devices.Device, error) { return Open(cfg, true, log) },
	}
}

// Device is one Modbus device. It opens a connection (or the serial port)
// per step and closes it at the step's end; it holds nothing open between
// steps. Not safe for concurrent use.
type Device struct {
	cfg     devices.Config
	profile Profile
	rtu     bool
	log     *slog.Logger
	// pushed is the version of the image the last Transfer in this
	// process sent (whether it succeeded or not), "" if none: Revert uses
	// it to tell whether the device runs that image at all.
	pushed string
}

var _ devices.Device = (*Device)(nil)

// Open returns the device for cfg without doing I/O; rtu selects RTU
// framing on a serial port instead of Modbus TCP.
func Open(cfg devices.Config, rtu bool, log *slog.Logger) (*Device, error) {
	if err := check(cfg, rtu); err != nil {
		return nil, err
	}
	p, _ := ParseProfile(cfg.Options)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rtu && cfg.Baud == 0 {
		cfg.Baud = 19200
	}
	if !rtu {
		cfg.Address = tcpAddr(cfg.Address)
	}
	return &Device{cfg: cfg, profile: p, rtu: rtu, log: log.With("device", cfg.ID)}, nil
}

// Profile returns the device's register map.
func (d *Device) Profile() Profile { return d.profile }

// Capabilities implements devices.Device.
func (d *Device) Capabilities() devices.Capabilities {
	return devices.Capabilities{
		Slots:     d.profile.Slots,
		ReadBack:  d.profile.BackupFile != 0,
		Health:    true, // the status register, beyond identity
		Interlock: d.profile.Interlock.Kind != "",
	}
}

// Close implements devices.Device; a Device holds nothing open.
func (d *Device) Close() error { return nil }

func (d *Device) fail(op string, err error) error { return classify(op, d.rtu, err) }

// raw opens a PDU connection for 0x14/0x15/0x2B.
func (d *Device) raw(ctx context.Context) (*conn, error) {
	if d.rtu {
		return openRTU(d.cfg.Address, d.serialMode(), d.profile)
	}
	return dialTCP(ctx, d.cfg.Address, d.profile)
}

func (d *Device) serialMode() *serial.Mode {
	m := &serial.Mode{BaudRate: d.cfg.Baud, DataBits: 8, StopBits: serial.OneStopBit}
	if d.profile.StopBits == 2 {
		m.StopBits = serial.TwoStopBits
	}
	switch d.profile.Parity {
	case "even":
		m.Parity = serial.EvenParity
	case "odd":
		m.Parity = serial.OddParity
	}
	return m
}

// regs is a register session through simonvetter/modbus. Each call checks
// ctx first; each request is bounded by the profile's timeout. Reads (and
// writes marked idempotent) that get no answer or a garbled one are
// retried on a fresh connection, which drops a late answer still on its way.
type regs struct {
	ctx     context.Context
	d       *Device
	c       *mb.ModbusClient
	retries int
}

func (d *Device) regs(ctx context.Context) (*regs, error) {
	r := &regs{ctx: ctx, d: d, retries: d.profile.Retries}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *regs) open() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	d := r.d
	conf := &mb.ClientConfiguration{
		Timeout: d.profile.Timeout,
		Logger:  log.New(io.Discard, "", 0),
	}
	if d.rtu {
		conf.URL = "rtu://" + d.cfg.Address
		conf.Speed = uint(d.cfg.Baud)
		conf.DataBits = 8
		conf.StopBits = uint(d.profile.StopBits)
		switch d.profile.Parity {
		case "even":
			conf.Parity = mb.PARITY_EVEN
		case "odd":
			conf.Parity = mb.PARITY_ODD
		}
	} else {
		conf.URL = "tcp://" + d.cfg.Address
	}
	if t, ok := r.ctx.Deadline(); ok && time.Until(t) < conf.Timeout {
		conf.Timeout = max(time.Until(t), time.Millisecond)
	}
	c, err := mb.NewClient(conf)
	if err != nil {
		return err
	}
	if err := c.Open(); err != nil {
		return err
	}
	_ = c.SetUnitId(d.profile.Unit)
	r.c = c
	return nil
}

func (r *regs) Close() { _ = r.c.Close() }

// try runs f, again on a fresh connection after a lost or garbled answer.
func (r *regs) try(idempotent bool, f func() error) error {
	for attempt := 0; ; attempt++ {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		err := f()
		if err == nil || !idempotent || attempt >= r.retries || !lostAnswer(r.d.rtu, err) {
			return err
		}
		r.Close()
		if err := r.open(); err != nil {
			return err
		}
	}
}

func (r *regs) read(addr, n uint16) ([]uint16, error) {
	var v []uint16
	err := r.try(true, func() (err error) {
		v, err = r.c.ReadRegisters(addr, n, mb.HOLDING_REGISTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read holding registers %d..%d: %w", addr, addr+n-1, err)
	}
	return v, nil
}

// write writes v from addr on; idempotent writes (a value that means the
// same when written twice) are retried, commands are not.
func (r *regs) write(idempotent bool, addr uint16, v ...uint16) error {
	err := r.try(idempotent, func() error {
		if len(v) == 1 {
			return r.c.WriteRegister(addr, v[0])
		}
		return r.c.WriteRegisters(addr, v)
	})
	if err != nil {
		return fmt.Errorf("write holding register %d: %w", addr, err)
	}
	return nil
}

func (r *regs) readU32(addr uint16) (uint32, error) {
	v, err := r.read(addr, 2)
	if err != nil {
		return 0, err
	}
	return uint32(v[0])<<16 | uint32(v[1]), nil
}

// Identify implements devices.Device with Read Device Identification: the
// basic objects (VendorName, ProductCode, MajorMinorRevision), the regular
// ones (ProductName, ModelName) when the device's conformity level says it
// has them, then the hardware and serial objects one by one if the streams
// lack them. Version is MajorMinorRevision; Model is ProductCode, the order
// number advisories list; Product is ProductName, else ModelName;
// HardwareID is hardware_object.
func (d *Device) Identify(ctx context.Context) (devices.Identity, error) {
	c, err := d.raw(ctx)
	if err != nil {
		return devices.Identity{}, d.fail("identify", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	defer c.Close()
	id, err := d.identify(ctx, c)
	return id, d.fail("identify", err)
}

func (d *Device) identify(ctx context.Context, c *conn) (devices.Identity, error) {
	objs := map[byte]string{}
	conformity, err := d.identStream(ctx, c, pdu.DevIDBasic, objs)
	if err != nil {
		return devices.Identity{}, err
	}
	if conformity&0x7F >= pdu.DevIDRegular {
		// Regular objects are optional: a device that claims them but
		// answers with an exception still has its basic identity.
		var ex *pdu.Exception
		if _, err := d.identStream(ctx, c, pdu.DevIDRegular, objs); err != nil && !errors.As(err, &ex) {
			return devices.Identity{}, err
		}
	}
	for _, want := range []int{int(d.profile.HardwareObj), d.profile.SerialObj} {
		if want < 0 {
			continue
		}
		if _, ok := objs[byte(want)]; ok {
			continue
		}
		resp, err := c.do(ctx, pdu.EncodeDeviceIDRequest(pdu.DevIDIndividual, byte(want)))
		if err != nil {
			return devices.Identity{}, fmt.Errorf("read device identification object 0x%02X: %w", want, err)
		}
		r, err := pdu.DecodeDeviceIDResponse(resp.Data)
		if err != nil {
			return devices.Identity{}, fmt.Errorf("read device identification object 0x%02X: %w", want, err)
		}
		for _, o := range r.Objects {
			objs[o.ID] = string(o.Value)
		}
	}
	id := devices.Identity{
		Vendor:     objs[pdu.ObjVendorName],
		Product:    cmp.Or(objs[pdu.ObjProductName], objs[pdu.ObjModelName]),
		Model:      objs[pdu.ObjProductCode],
		HardwareID: objs[d.profile.HardwareObj],
		Version:    objs[pdu.ObjMajorMinorRevision],
	}
	if d.profile.SerialObj >= 0 {
		id.Serial = objs[byte(d.profile.SerialObj)]
	}
	if id.Version == "" {
		return id, fmt.Errorf("%w: device reports no MajorMinorRevision", pdu.ErrMalformed)
	}
	return id, nil
}

// identStream reads the objects of one stream access code (basic or
// regular) into objs, following "more follows", and returns the device's
// conformity level.
func (d *Device) identStream(ctx context.Context, c *conn, code byte, objs map[byte]string) (byte, error) {
	var conformity byte
	next := byte(0)
	for range 8 { // a device that keeps saying "more follows" is not trusted forever
		resp, err := c.do(ctx, pdu.EncodeDeviceIDRequest(code, next))
		if err != nil {
			return 0, fmt.Errorf("read device identification: %w", err)
		}
		r, err := pdu.DecodeDeviceIDResponse(resp.Data)
		if err != nil {
			return 0, fmt.Errorf("read device identification: %w", err)
		}
		conformity = r.Conformity
		for _, o := range r.Objects {
			if v := string(o.Value); code == pdu.DevIDBasic || strings.TrimSpace(v) != "" {
				objs[o.ID] = v // a regular object sent empty is one the device does not have
			}
		}
		if !r.More || r.Next <= next {
			break
		}
		next = r.Next
	}
	return conformity, nil
}

// Interlock implements devices.Device from the profile's interlock source.
func (d *Device) Interlock(ctx context.Context) (bool, error) {
	src := d.profile.Interlock
	if src.Kind == "" {
		return false, devices.Permanent("interlock", fmt.Errorf("profile has no interlock source: %w", devices.ErrUnsupported))
	}
	r, err := d.regs(ctx)
	if err != nil {
		return false, d.fail("interlock", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	defer r.Close()
	var v uint16
	err = r.try(true, func() (err error) {
		switch src.Kind {
		case "holding", "input":
			t := mb.HOLDING_REGISTER
			if src.Kind == "input" {
				t = mb.INPUT_REGISTER
			}
			v, err = r.c.ReadRegister(src.Addr, t)
		case "coil", "discrete":
			var b bool
			if src.Kind == "coil" {
				b, err = r.c.ReadCoil(src.Addr)
			} else {
				b, err = r.c.ReadDiscreteInput(src.Addr)
			}
			v = 0
			if b {
				v = 1
			}
		}
		return err
	})
	if err != nil {
		return false, d.fail("interlock", fmt.Errorf("read %s %d: %w", src.Kind, src.Addr, err))
	}
	return v == d.profile.InterlockOn, nil
}

// Backup implements devices.Device: it reads the running image's length
// from running_length_register and the image from backup_file on with 0x14.
func (d *Device) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if d.profile.BackupFile == 0 {
		return 0, devices.Permanent("backup", fmt.Errorf("profile has no backup_file: %w", devices.ErrUnsupported))
	}
	r, err := d.regs(ctx)
	if err != nil {
		return 0, d.fail("backup", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	size, err := r.readU32(d.profile.RunningLenReg)
	r.Close()
	if err != nil {
		return 0, d.fail("backup", fmt.Errorf("read running image length: %w", err))
	}
	c, err := d.raw(ctx)
	if err != nil {
		return 0, d.fail("backup", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	defer c.Close()
	n, err := d.readFile(ctx, c, d.profile.BackupFile, int64(size), w, nil)
	if err != nil {
		return n, d.fail("backup", err)
	}
	return n, nil
}

// readFile reads size bytes of the store at file base into w, one 0x14
// sub-request per PDU, reporting progress.
func (d *Device) readFile(ctx context.Context, c *conn, base uint16, size int64, w io.Writer, progress devices.Progress) (int64, error) {
	refs, err := pdu.Chunks(base, 0, size+size%2, min(d.profile.MaxRegisters, pdu.MaxReadRecordRegs))
	if err != nil {
		return 0, err
	}
	var done int64
	for _, ref := range refs {
		b, err := d.readRecord(ctx, c, ref)
		if err != nil {
			return done, err
		}
		b = b[:min(int64(len(b)), size-done)]
		if _, err := w.Write(b); err != nil {
			return done, err
		}
		done += int64(len(b))
		if progress != nil {
			progress(done, size)
		}
	}
	return done, nil
}

// readRecord reads ref with 0x14, in two requests if it is longer than
// one 0x14 response holds.
func (d *Device) readRecord(ctx context.Context, c *conn, ref pdu.RecordRef) ([]byte, error) {
	if ref.Len > pdu.MaxReadRecordRegs {
		head := ref
		head.Len = pdu.MaxReadRecordRegs
		a, err := d.readRecord(ctx, c, head)
		if err != nil {
			return nil, err
		}
		b, err := d.readRecord(ctx, c, pdu.RecordRef{File: ref.File, Record: ref.Record + head.Len, Len: ref.Len - head.Len})
		return append(a, b...), err
	}
	req, err := pdu.EncodeReadFileRecord([]pdu.RecordRef{ref})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("read file %d record %d: %w", ref.File, ref.Record, err)
	}
	blocks, err := pdu.DecodeReadFileRecordResponse(resp.Data)
	if err != nil {
		return nil, fmt.Errorf("read file %d record %d: %w", ref.File, ref.Record, err)
	}
	if len(blocks) != 1 || len(blocks[0]) != 2*int(ref.Len) {
		return nil, fmt.Errorf("read file %d record %d: %w: got %d blocks, want 1 of %d bytes", ref.File, ref.Record, pdu.ErrMalformed, len(blocks), 2*ref.Len)
	}
	return blocks[0], nil
}

// Transfer implements devices.Device: length register, 0x15 stream with
// progress, 0x14 read-back per verify_readback, then cmd_verify and the
// device's digest compared with the one computed while streaming.
func (d *Device) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	p := d.profile
	if img.Size <= 0 || img.Size > p.maxImage() || img.Size > 1<<32-1 {
		return devices.Permanent("transfer", fmt.Errorf("image %s is %d bytes; the update store holds 1..%d", img.Name, img.Size, p.maxImage()))
	}
	log := d.log.With("image", img.Name, "version", img.Version)
	d.pushed = img.Version
	rs, err := d.regs(ctx)
	if err != nil {
		return d.fail("transfer", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	err = rs.write(true, p.LengthReg, uint16(img.Size>>16), uint16(img.Size))
	rs.Close()
	if err != nil {
		return d.fail("transfer", fmt.Errorf("announce image length: %w", err))
	}

	c, err := d.raw(ctx)
	if err != nil {
		return d.fail("transfer", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	defer c.Close()
	refs, err := pdu.Chunks(p.File, 0, img.Size+img.Size%2, p.MaxRegisters)
	if err != nil {
		return devices.Permanent("transfer", err)
	}
	sample := map[int][]byte{} // chunk index → bytes sent, for verify_readback=sample
	if p.ReadBack == "sample" {
		for _, i := range []int{0, len(refs) / 2, len(refs) - 1} {
			sample[i] = nil
		}
	}
	sum, crc := sha256.New(), crc32.NewIEEE()
	hashes := io.MultiWriter(sum, crc)
	buf := make([]byte, 2*p.MaxRegisters)
	var done int64
	start := time.Now()
	for i, ref := range refs {
		chunk := buf[:2*int(ref.Len)]
		want := min(int64(len(chunk)), img.Size-done)
		if _, err := io.ReadFull(r, chunk[:want]); err != nil {
			return devices.Permanent("transfer", fmt.Errorf("read image %s at byte %d: %w", img.Name, done, err))
		}
		clear(chunk[want:]) // an odd-sized image ends in one pad byte; the length register says so
		hashes.Write(chunk[:want])
		if _, ok := sample[i]; ok {
			sample[i] = bytes.Clone(chunk)
		}
		if err := d.writeRecord(ctx, c, pdu.Record{File: ref.File, Record: ref.Record, Data: chunk}); err != nil {
			return d.fail("transfer", fmt.Errorf("at byte %d of %d: %w", done, img.Size, err))
		}
		done += want
		if progress != nil {
			progress(done, img.Size)
		}
	}
	streamed := hex.EncodeToString(sum.Sum(nil))
	log.Debug("image streamed", "bytes", done, "took", time.Since(start), "sha256", streamed)
	if img.SHA256 != "" && streamed != img.SHA256 {
		return devices.Permanent("transfer", fmt.Errorf("image %s streamed with sha256 %s, want %s", img.Name, streamed, img.SHA256))
	}

	switch p.ReadBack {
	case "sample":
		for i, sent := range sample {
			got, err := d.readRecord(ctx, c, refs[i])
			if err != nil {
				return d.fail("transfer", fmt.Errorf("read back: %w", err))
			}
			if !bytes.Equal(got, sent) {
				return devices.Transient("transfer", fmt.Errorf("read back file %d record %d differs from what was written", refs[i].File, refs[i].Record))
			}
		}
	case "full":
		back := sha256.New()
		if _, err := d.readFile(ctx, c, p.File, img.Size, back, nil); err != nil {
			return d.fail("transfer", fmt.Errorf("read back: %w", err))
		}
		if got := hex.EncodeToString(back.Sum(nil)); got != streamed {
			return devices.Transient("transfer", fmt.Errorf("read back sha256 %s, want %s", got, streamed))
		}
	}
	c.Close()
	return d.verify(ctx, streamed, crc)
}

func (d *Device) writeRecord(ctx context.Context, c *conn, rec pdu.Record) error {
	req, err := pdu.EncodeWriteFileRecord([]pdu.Record{rec})
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return fmt.Errorf("write file %d record %d: %w", rec.File, rec.Record, err)
	}
	if !bytes.Equal(resp.Data, req.Data) {
		return fmt.Errorf("write file %d record %d: %w: response does not echo the request", rec.File, rec.Record, pdu.ErrMalformed)
	}
	return nil
}

// verify runs cmd_verify and compares the device's digest.
func (d *Device) verify(ctx context.Context, sha string, crc hash.Hash32) error {
	p := d.profile
	rs, err := d.regs(ctx)
	if err != nil {
		return d.fail("verify", fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	defer rs.Close()
	if err := rs.write(false, p.CommandReg, p.CmdVerify); err != nil {
		return d.fail("verify", err)
	}
	status, err := d.waitStatus(ctx, rs)
	if err != nil {
		return d.fail("verify", err)
	}
	if status == p.StatusError {
		return devices.Permanent("verify", fmt.Errorf("device %s rejected the image (status %d)", d.cfg.ID, status))
	}
	n := p.digestRegs()
	if n == 0 {
		return nil
	}
	v, err := rs.read(p.DigestReg, n)
	if err != nil {
		return d.fail("verify", fmt.Errorf("read digest: %w", err))
	}
	got := make([]byte, 0, 2*n)
	for _, x := range v {
		got = binary.BigEndian.AppendUint16(got, x)
	}
	var want []byte
	if p.Digest == "crc32" {
		want = binary.BigEndian.AppendUint32(nil, crc.Sum32())
	} else {
		want, _ = hex.DecodeString(sha)
	}
	if !bytes.Equal(got, want) {
		return devices.Transient("verify", fmt.Errorf("device %s reports %s %x, want %x", d.cfg.ID, p.Digest, got, want))
	}
	return nil
}

// waitStatus polls the status register on rs until it is not busy.
func (d *Device) waitStatus(ctx context.Context, rs *regs) (uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, d.profile.ActivateWait)
	defer cancel()
	for {
		v, err := rs.read(d.profile.StatusReg, 1)
		if err != nil {
			return 0, fmt.Errorf("read status: %w", err)
		}
		if v[0] != d.profile.StatusBusy {
			return v[0], nil
		}
		if err := sleep(ctx, d.profile.PollInterval); err != nil {
			return 0, fmt.Errorf("device %s still busy: %w", d.cfg.ID, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Activate implements devices.Device: cmd_activate, then poll until the
// device answers with a final status and its identity.
func (d *Device) Activate(ctx context.Context) error {
	return d.boot(ctx, "activate", d.profile.CmdActivate)
}

// Revert implements devices.Device for A/B profiles (slots=2): cmd_revert
// boots the previous slot. The daemon reverts after any failed step, also
// when the new image never ran (the transfer or the boot failed and the
// device kept its running slot): reverting then would boot the slot
// before it, an older image. So when this process transferred an image
// and the device does not run that version, Revert leaves it alone.
func (d *Device) Revert(ctx context.Context) error {
	if d.profile.Slots != 2 {
		return devices.Permanent("revert", fmt.Errorf("single-slot profile: %w", devices.ErrUnsupported))
	}
	if d.pushed != "" {
		id, err := d.Identify(ctx)
		if err != nil {
			return err
		}
		if id.Version != d.pushed {
			d.log.Info("revert: the device does not run the transferred image; it stays on its slot", "running", id.Version, "transferred", d.pushed)
			return nil
		}
	}
	return d.boot(ctx, "revert", d.profile.CmdRevert)
}

func (d *Device) boot(ctx context.Context, op string, cmd uint16) error {
	rs, err := d.regs(ctx)
	if err != nil {
		return d.fail(op, fmt.Errorf("connect %s: %w", d.cfg.Address, err))
	}
	err = rs.write(false, d.profile.CommandReg, cmd)
	rs.Close()
	if err != nil {
		if refused(err) {
			return d.fail(op, err)
		}
		// The device may reset before it answers (a timeout, a dropped
		// connection); the polls below tell.
		d.log.Debug("no answer to the boot command", "op", op, "err", err)
	}
	d.log.Info("device booting", "op", op)
	ctx, cancel := context.WithTimeout(ctx, d.profile.ActivateWait)
	defer cancel()
	var last error
	for {
		if err := sleep(ctx, d.profile.PollInterval); err != nil {
			return devices.Transient(op, fmt.Errorf("device %s did not come back within %v: %w (last: %v)", d.cfg.ID, d.profile.ActivateWait, err, last))
		}
		status, err := d.status(ctx)
		if err != nil {
			last = err
			continue
		}
		switch status {
		case d.profile.StatusBusy:
			continue
		case d.profile.StatusError:
			return devices.Permanent(op, fmt.Errorf("device %s reports the boot failed (status %d)", d.cfg.ID, status))
		}
		id, err := d.Identify(ctx)
		if err != nil {
			last = err
			continue
		}
		d.log.Info("device is back", "op", op, "version", id.Version, "status", status)
		return nil
	}
}

func (d *Device) status(ctx context.Context) (uint16, error) {
	rs, err := d.regs(ctx)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	v, err := rs.read(d.profile.StatusReg, 1)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// Health implements devices.Device: the status register must not say
// error or busy, and the device must identify itself.
func (d *Device) Health(ctx context.Context) error {
	status, err := d.status(ctx)
	if err != nil {
		return d.fail("health", err)
	}
	switch status {
	case d.profile.StatusError:
		return devices.Permanent("health", fmt.Errorf("device %s reports status error (%d)", d.cfg.ID, status))
	case d.profile.StatusBusy:
		return devices.Transient("health", fmt.Errorf("device %s is busy", d.cfg.ID))
	}
	_, err = d.Identify(ctx)
	return err
}

// Commit implements devices.Device: a Modbus device's activated image is
// already permanent (A/B devices switch back only on cmd_revert).
func (d *Device) Commit(context.Context) error { return nil }
