// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/devices/modbus"
	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
	"github.com/fieldgate/fieldgate/devices/serialtest"
)

// ModbusDevice is a simulated PLC/IO module reached over Modbus TCP
// (kind "modbus-tcp") or RTU on a pty (kind "modbus-rtu"). It implements the
// register map of modbus.DefaultProfile (every profile key is accepted in
// Spec.Options and changes the map the same way it changes the driver's),
// Write/Read File Record for the update store and the running image, and
// Read Device Identification: VendorName (option vendor), ProductCode
// (Spec.HardwareID), MajorMinorRevision (running image's version),
// ProductName, ModelName (option model), and the serial number (Spec.ID)
// as private object 0x80; read codes 1, 2 and 3 stream the basic objects,
// the basic and regular ones, and all of them, as the specification says.
// Addresses out of range and file-record reference types other than 6 get
// exception 02.
//
// Sim-only options: process_running (true/false, default false: the
// interlock register then reads interlock_running), boot_time (default
// 300ms: how long the device is off the bus after activate/revert),
// image_size (factory image size, default 4096), vendor, model.
// Faults: "boot-fail" (no image but the factory one boots: status error,
// the old image keeps running), "slow-flash" (each file-record write takes 5 ms, verify is
// busy for 500 ms), "process-running" (like process_running=true),
// "silent" (never answers).
//
// The update store, the slots and the active slot persist under
// Spec.StateDir (the store only until the next restart: a real device
// would erase it too). Safe for concurrent use; TCP clients are served
// concurrently, one request at a time.
type ModbusDevice struct {
	spec      Spec
	rtu       bool
	p         modbus.Profile
	log       *slog.Logger
	bootTime  time.Duration
	imageSize int
	vendor    string
	model     string

	mu         sync.Mutex
	running    bool     // process running (interlock)
	slots      [][]byte // installed images; len = profile slots
	active     int
	store      []byte // update store (files from profile.File on)
	length     uint32 // announced image length
	status     uint16
	digest     []byte
	busyUntil  time.Time // verify in progress (slow-flash)
	bootUntil  time.Time // off the bus
	bootTarget func()    // applied when the boot ends

	counters *counterFile // writes into the update store, boots

	ln   net.Listener     // TCP, once opened
	pair *serialtest.Pair // RTU: client end B, device end A
	port *os.File         // RTU: what the device reads and writes
}

// NewModbusTCP returns a Modbus TCP device listening on spec.Address
// (host:port) once Run is called.
func NewModbusTCP(spec Spec, log *slog.Logger) (*ModbusDevice, error) {
	return newModbus(spec, false, log)
}

// NewModbusRTU returns a Modbus RTU device on a new pty linked at
// spec.Address, paced at spec.Baud through a serialtest line when Baud > 0.
func NewModbusRTU(spec Spec, log *slog.Logger) (*ModbusDevice, error) {
	return newModbus(spec, true, log)
}

func newModbus(spec Spec, rtu bool, log *slog.Logger) (*ModbusDevice, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &ModbusDevice{spec: spec, rtu: rtu, log: log.With("device", spec.ID), bootTime: 300 * time.Millisecond, imageSize: 4096, vendor: "fieldgate", model: "fieldgate-sim " + spec.Kind}
	opts := maps.Clone(spec.Options)
	var errs []error
	for k, v := range opts {
		switch k {
		case "process_running":
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("option %s=%q: want true or false", k, v))
			}
			d.running = b
		case "boot_time":
			t, err := time.ParseDuration(v)
			if err != nil || t < 0 {
				errs = append(errs, fmt.Errorf("option %s=%q: want a duration", k, v))
			}
			d.bootTime = t
		case "image_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("option %s=%q: want a positive size", k, v))
			}
			d.imageSize = n
		case "vendor":
			d.vendor = v
		case "model":
			d.model = v
		default:
			continue
		}
		delete(opts, k)
	}
	p, err := modbus.ParseProfile(opts)
	errs = append(errs, err)
	if spec.Address == "" {
		errs = append(errs, errors.New("address is empty"))
	}
	if spec.HardwareID == "" || spec.StateDir == "" {
		errs = append(errs, errors.New("hardware_id and state_dir are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sim %s %s: %w", spec.Kind, spec.ID, err)
	}
	d.p = p
	d.running = d.running || spec.HasFault("process-running")
	d.status = p.StatusIdle
	if err := d.load(); err != nil {
		return nil, fmt.Errorf("sim %s %s: %w", spec.Kind, spec.ID, err)
	}
	if d.counters, err = openCounters(spec.StateDir, d.log); err != nil {
		return nil, fmt.Errorf("sim %s %s: %w", spec.Kind, spec.ID, err)
	}
	d.counters.booted() // starting the simulator is a power-on
	return d, nil
}

// SetProcessRunning sets the process-running flag the interlock reports.
func (d *ModbusDevice) SetProcessRunning(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = on
}

// Version returns the running image's version.
func (d *ModbusDevice) Version() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tick()
	return d.versionLocked()
}

// Running returns a copy of the running image.
func (d *ModbusDevice) Running() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tick()
	return append([]byte(nil), d.slots[d.active]...)
}

func (d *ModbusDevice) versionLocked() string {
	h, err := ParseImageHeader(d.slots[d.active])
	if err != nil {
		return "unknown"
	}
	return h.Version
}

// modbusState is what persists under StateDir besides the slot images.
type modbusState struct {
	Active int `json:"active"`
	Slots  int `json:"slots"`
}

func (d *ModbusDevice) slotPath(i int) string {
	return filepath.Join(d.spec.StateDir, fmt.Sprintf("modbus-slot-%d.bin", i))
}

func (d *ModbusDevice) load() error {
	if err := os.MkdirAll(d.spec.StateDir, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(d.spec.StateDir, "modbus-state.json"))
	if errors.Is(err, os.ErrNotExist) {
		factory := MakeImage(d.spec.HardwareID, d.spec.Version, d.imageSize)
		d.slots = make([][]byte, d.p.Slots)
		for i := range d.slots {
			d.slots[i] = factory
		}
		d.active = 0
		return d.save()
	}
	if err != nil {
		return err
	}
	var st modbusState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	if st.Slots != d.p.Slots || st.Active < 0 || st.Active >= st.Slots {
		return fmt.Errorf("load state: saved with %d slots (active %d), profile has %d", st.Slots, st.Active, d.p.Slots)
	}
	d.slots = make([][]byte, st.Slots)
	for i := range d.slots {
		if d.slots[i], err = os.ReadFile(d.slotPath(i)); err != nil {
			return fmt.Errorf("load state: %w", err)
		}
	}
	d.active = st.Active
	return nil
}

// save persists slots and the active slot: images first, then the state
// file, each written atomically.
func (d *ModbusDevice) save() error {
	for i, img := range d.slots {
		if err := replaceFile(d.slotPath(i), img); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(modbusState{Active: d.active, Slots: len(d.slots)})
	return replaceFile(filepath.Join(d.spec.StateDir, "modbus-state.json"), b)
}

// tick ends a boot or a verify whose time has come. Called with mu held.
func (d *ModbusDevice) tick() {
	now := time.Now()
	if d.bootTarget != nil && !now.Before(d.bootUntil) {
		f := d.bootTarget
		d.bootTarget = nil
		f()
	}
	if !d.busyUntil.IsZero() && !now.Before(d.busyUntil) {
		d.busyUntil = time.Time{}
		d.finishVerify()
	}
}

// offline reports whether the device is off the bus (booting). mu held.
func (d *ModbusDevice) offline() bool {
	d.tick()
	return d.bootTarget != nil || d.spec.HasFault("silent")
}

// handle answers one request PDU for unit. mu is taken here.
func (d *ModbusDevice) handle(req pdu.PDU) pdu.PDU {
	d.mu.Lock()
	defer d.mu.Unlock()
	ex := func(code byte) pdu.PDU { return pdu.ExceptionPDU(req.Func, code) }
	switch req.Func {
	case pdu.ReadHoldingRegisters, pdu.ReadInputRegisters:
		if len(req.Data) != 4 {
			return ex(pdu.ExIllegalDataValue)
		}
		addr, n := modbusU16(req.Data), modbusU16(req.Data[2:])
		if n < 1 || n > 125 {
			return ex(pdu.ExIllegalDataValue)
		}
		if int(addr)+int(n) > 0x10000 {
			return ex(pdu.ExIllegalDataAddress)
		}
		out := []byte{byte(2 * n)}
		for i := range n {
			out = binary.BigEndian.AppendUint16(out, d.register(addr+i))
		}
		return pdu.PDU{Func: req.Func, Data: out}
	case pdu.ReadCoils, pdu.ReadDiscreteInputs:
		if len(req.Data) != 4 {
			return ex(pdu.ExIllegalDataValue)
		}
		addr, n := modbusU16(req.Data), modbusU16(req.Data[2:])
		if n < 1 || n > 2000 {
			return ex(pdu.ExIllegalDataValue)
		}
		if int(addr)+int(n) > 0x10000 {
			return ex(pdu.ExIllegalDataAddress)
		}
		out := make([]byte, 1+(n+7)/8)
		out[0] = byte(len(out) - 1)
		for i := range n {
			if d.bit(req.Func, addr+i) {
				out[1+i/8] |= 1 << (i % 8)
			}
		}
		return pdu.PDU{Func: req.Func, Data: out}
	case pdu.WriteSingleRegister:
		if len(req.Data) != 4 {
			return ex(pdu.ExIllegalDataValue)
		}
		if code := d.writeRegs(modbusU16(req.Data), []uint16{modbusU16(req.Data[2:])}); code != 0 {
			return ex(code)
		}
		return req
	case pdu.WriteMultipleRegs:
		if len(req.Data) < 5 {
			return ex(pdu.ExIllegalDataValue)
		}
		addr, n := modbusU16(req.Data), modbusU16(req.Data[2:])
		if n < 1 || n > 123 || int(req.Data[4]) != 2*int(n) || len(req.Data) != 5+2*int(n) {
			return ex(pdu.ExIllegalDataValue)
		}
		if int(addr)+int(n) > 0x10000 {
			return ex(pdu.ExIllegalDataAddress)
		}
		vals := make([]uint16, n)
		for i := range vals {
			vals[i] = modbusU16(req.Data[5+2*i:])
		}
		if code := d.writeRegs(addr, vals); code != 0 {
			return ex(code)
		}
		return pdu.PDU{Func: req.Func, Data: req.Data[:4]}
	case pdu.WriteFileRecord:
		return d.writeFile(req)
	case pdu.ReadFileRecord:
		return d.readFile(req)
	case pdu.Encapsulated:
		return d.deviceID(req)
	}
	return ex(pdu.ExIllegalFunction)
}

func modbusU16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// register returns holding/input register addr of the profile's map.
func (d *ModbusDevice) register(addr uint16) uint16 {
	p := d.p
	running := uint32(len(d.slots[d.active]))
	switch {
	case addr == p.StatusReg:
		if !d.busyUntil.IsZero() {
			return p.StatusBusy
		}
		return d.status
	case addr == p.LengthReg:
		return uint16(d.length >> 16)
	case addr == p.LengthReg+1:
		return uint16(d.length)
	case addr == p.RunningLenReg:
		return uint16(running >> 16)
	case addr == p.RunningLenReg+1:
		return uint16(running)
	case (p.Interlock.Kind == "holding" || p.Interlock.Kind == "input") && addr == p.Interlock.Addr:
		if d.running {
			return p.InterlockOn
		}
		if p.InterlockOn == 0 {
			return 1
		}
		return 0
	case addr >= p.DigestReg && int(addr) < int(p.DigestReg)+len(d.digest)/2:
		i := int(addr-p.DigestReg) * 2
		return modbusU16(d.digest[i:])
	}
	return 0
}

func (d *ModbusDevice) bit(fn byte, addr uint16) bool {
	k := d.p.Interlock
	if addr == k.Addr && ((fn == pdu.ReadCoils && k.Kind == "coil") || (fn == pdu.ReadDiscreteInputs && k.Kind == "discrete")) {
		return d.running == (d.p.InterlockOn != 0)
	}
	return false
}

// writeRegs applies a register write; it returns an exception code or 0.
func (d *ModbusDevice) writeRegs(addr uint16, vals []uint16) byte {
	p := d.p
	for i, v := range vals {
		a := addr + uint16(i)
		switch a {
		case p.LengthReg:
			d.length = uint32(v)<<16 | d.length&0xFFFF
		case p.LengthReg + 1:
			d.length = d.length&0xFFFF0000 | uint32(v)
		case p.CommandReg:
			if code := d.command(v); code != 0 {
				return code
			}
		default:
			return pdu.ExIllegalDataAddress
		}
	}
	return 0
}

// command runs a command register write.
func (d *ModbusDevice) command(cmd uint16) byte {
	p := d.p
	if !d.busyUntil.IsZero() {
		return pdu.ExDeviceBusy
	}
	switch cmd {
	case p.CmdVerify:
		d.endWrite()
		if d.spec.HasFault("slow-flash") {
			d.busyUntil = time.Now().Add(500 * time.Millisecond)
			return 0
		}
		d.finishVerify()
	case p.CmdActivate:
		if d.running {
			d.log.Info("activate refused: process running")
			return pdu.ExDeviceBusy
		}
		d.endWrite()
		img := append([]byte(nil), d.received()...)
		d.reboot("activate", func() error {
			h, err := VerifyImage(img, d.spec.HardwareID)
			if err != nil {
				return err
			}
			if d.spec.bootFails(h.Version) {
				return fmt.Errorf("boot-fail fault: version %s does not boot", h.Version)
			}
			next := d.active
			if len(d.slots) == 2 {
				next = 1 - d.active
			}
			d.slots[next] = img
			d.active = next
			return nil
		})
	case p.CmdRevert:
		if len(d.slots) != 2 {
			return pdu.ExIllegalDataValue
		}
		if d.running {
			return pdu.ExDeviceBusy
		}
		d.reboot("revert", func() error {
			if _, err := VerifyImage(d.slots[1-d.active], d.spec.HardwareID); err != nil {
				return err
			}
			d.active = 1 - d.active
			return nil
		})
	default:
		return pdu.ExIllegalDataValue
	}
	return 0
}

// endWrite ends the counted write into the update store: complete if the
// announced length arrived. mu held.
func (d *ModbusDevice) endWrite() {
	d.counters.end(d.length > 0 && len(d.store) >= int(d.length))
}

func (d *ModbusDevice) received() []byte {
	n := min(int(d.length), len(d.store))
	return d.store[:n]
}

// finishVerify checks the received image and publishes its digest.
func (d *ModbusDevice) finishVerify() {
	img := d.received()
	switch d.p.Digest {
	case "crc32":
		d.digest = binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(img))
	case "sha256":
		s := sha256.Sum256(img)
		d.digest = s[:]
	}
	if _, err := VerifyImage(img, d.spec.HardwareID); err != nil || int(d.length) != len(img) {
		d.log.Info("verify: image rejected", "err", err, "announced", d.length, "received", len(img))
		d.status = d.p.StatusError
		return
	}
	d.status = d.p.StatusOK
}

// reboot takes the device off the bus for bootTime, then applies boot.
// The outcome is persisted before the device answers again.
func (d *ModbusDevice) reboot(op string, boot func() error) {
	d.status = d.p.StatusBusy
	d.bootUntil = time.Now().Add(d.bootTime)
	d.bootTarget = func() {
		d.counters.booted()
		prev := d.active
		if err := boot(); err != nil {
			d.log.Info("boot failed; previous image keeps running", "op", op, "err", err)
			d.active = prev
			d.status = d.p.StatusError
			return
		}
		if err := d.save(); err != nil {
			d.log.Error("persist state", "err", err)
			d.status = d.p.StatusError
			return
		}
		d.status = d.p.StatusOK
		d.log.Info("booted", "op", op, "version", d.versionLocked(), "slot", d.active)
	}
}

// fileArea maps a file number to the update store (writable) or the
// running image (read-only).
func (d *ModbusDevice) fileArea(file uint16) (base uint16, img []byte, writable bool, ok bool) {
	p := d.p
	if p.BackupFile != 0 && file >= p.BackupFile && (p.BackupFile > p.File || file < p.File) {
		return p.BackupFile, d.slots[d.active], false, true
	}
	if file >= p.File {
		return p.File, d.store, true, true
	}
	return 0, nil, false, false
}

func (d *ModbusDevice) writeFile(req pdu.PDU) pdu.PDU {
	recs, err := pdu.DecodeWriteFileRecord(req.Data)
	if err != nil {
		return pdu.ExceptionPDU(req.Func, fileRecordException(req))
	}
	for _, r := range recs {
		base, _, writable, ok := d.fileArea(r.File)
		if !ok || !writable || int(r.Record)+len(r.Data)/2 > pdu.RecordsPerFile {
			return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataAddress)
		}
		off := pdu.Offset(base, pdu.RecordRef{File: r.File, Record: r.Record})
		end := off + int64(len(r.Data))
		if end > 64<<20 {
			return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataAddress)
		}
		if end > int64(len(d.store)) {
			d.store = append(d.store, make([]byte, end-int64(len(d.store)))...)
		}
		if off == 0 {
			d.counters.begin() // a new image: one still being written ends partial
		}
		d.counters.add(len(r.Data))
		copy(d.store[off:], r.Data)
	}
	d.status = d.p.StatusIdle
	if d.spec.HasFault("slow-flash") {
		d.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		d.mu.Lock()
	}
	return req
}

func (d *ModbusDevice) readFile(req pdu.PDU) pdu.PDU {
	refs, err := pdu.DecodeReadFileRecordRequest(req.Data)
	if err != nil {
		return pdu.ExceptionPDU(req.Func, fileRecordException(req))
	}
	var blocks [][]byte
	for _, r := range refs {
		base, img, _, ok := d.fileArea(r.File)
		off := pdu.Offset(base, pdu.RecordRef{File: r.File, Record: r.Record})
		end := off + 2*int64(r.Len)
		if r.Len == 0 || r.Len > pdu.MaxReadRecordRegs {
			return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataValue)
		}
		if !ok || int(r.Record)+int(r.Len) > pdu.RecordsPerFile || end > int64(len(img)+len(img)%2) {
			return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataAddress)
		}
		b := make([]byte, 2*r.Len)
		copy(b, img[off:])
		blocks = append(blocks, b)
	}
	resp, err := pdu.EncodeReadFileRecordResponse(blocks)
	if err != nil {
		return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataValue)
	}
	return resp
}

// fileRecordException is the exception for a 0x14/0x15 request that does
// not decode. The Modbus specification (6.14, 6.15) answers a byte count
// out of range with 03, and a sub-request whose reference type is not 6
// with 02, like a file or record number out of range; other malformed
// requests get 03.
func fileRecordException(req pdu.PDU) byte {
	data, maxCount := req.Data, 0xF5
	if req.Func == pdu.WriteFileRecord {
		maxCount = 0xFB
	}
	if len(data) < 1 || int(data[0]) != len(data)-1 || data[0] < 7 || int(data[0]) > maxCount {
		return pdu.ExIllegalDataValue
	}
	body := data[1:]
	for len(body) >= 7 {
		if body[0] != 6 {
			return pdu.ExIllegalDataAddress
		}
		n := 7
		if req.Func == pdu.WriteFileRecord {
			n += 2 * int(modbusU16(body[5:]))
		}
		if n > len(body) {
			break
		}
		body = body[n:]
	}
	return pdu.ExIllegalDataValue
}

func (d *ModbusDevice) deviceID(req pdu.PDU) pdu.PDU {
	code, obj, err := pdu.DecodeDeviceIDRequest(req.Data)
	if err != nil {
		return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataValue)
	}
	objects := map[byte]string{
		pdu.ObjVendorName:         d.vendor,
		pdu.ObjProductCode:        d.spec.HardwareID,
		pdu.ObjMajorMinorRevision: d.versionLocked(),
		pdu.ObjProductName:        "fieldgate-sim",
		pdu.ObjModelName:          d.model,
		0x80:                      d.spec.ID,
	}
	r := pdu.DeviceIDResponse{Code: code, Conformity: 0x83}
	// A stream access (codes 1..3) returns every object of its category
	// and the categories below it (Modbus specification 6.21): 1 the basic
	// objects 0x00..0x02, 2 also the regular ones up to 0x7F, 3 also the
	// extended ones up to 0xFF.
	var hi int
	switch code {
	case pdu.DevIDBasic:
		hi = 0x02
	case pdu.DevIDRegular:
		hi = 0x7F
	case pdu.DevIDExtended:
		hi = 0xFF
	case pdu.DevIDIndividual:
		v, ok := objects[obj]
		if !ok {
			return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataAddress)
		}
		r.Objects = []pdu.Object{{ID: obj, Value: []byte(v)}}
	default:
		return pdu.ExceptionPDU(req.Func, pdu.ExIllegalDataValue)
	}
	if code != pdu.DevIDIndividual {
		start := int(obj)
		if _, ok := objects[obj]; !ok || start > hi {
			start = 0 // the spec: an unknown start object restarts the stream
		}
		// What does not fit in one PDU follows in the next request,
		// starting at Next.
		size := 1 + 6 // function code and the response header
		for id := start; id <= hi; id++ {
			v, ok := objects[byte(id)]
			if !ok {
				continue
			}
			if size+2+len(v) > pdu.MaxPDU && len(r.Objects) > 0 {
				r.More, r.Next = true, byte(id)
				break
			}
			size += 2 + len(v)
			r.Objects = append(r.Objects, pdu.Object{ID: byte(id), Value: []byte(v)})
		}
	}
	resp, err := pdu.EncodeDeviceIDResponse(r)
	if err != nil {
		return pdu.ExceptionPDU(req.Func, pdu.ExDeviceFailure)
	}
	return resp
}

// Run serves the device until ctx ends; it returns nil on cancel.
func (d *ModbusDevice) Run(ctx context.Context) error {
	if d.rtu {
		return d.runRTU(ctx)
	}
	return d.runTCP(ctx)
}
