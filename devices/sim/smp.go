// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/devices/smp"
)

// SMP device kinds.
const (
	KindSMPUDP    = "smp-udp"
	KindSMPSerial = "smp-serial"
)

// SMP kind-specific faults (besides "boot-fail": an image test-booted
// from slot 1 never comes up, MCUboot reverts to the old one, and "slow-flash": each upload chunk
// takes 5 ms longer):
//
//	reboot-mid-upload  the device reboots once when an upload passes half
//	                   way, losing the upload state
//	wrong-hash         the image list reports slot 1 with a corrupted hash
//	chatty             a log line precedes every serial reply
//	drop-replies       every third reply is lost
const (
	FaultBootFail        = "boot-fail"
	FaultSlowFlash       = "slow-flash"
	FaultRebootMidUpload = "reboot-mid-upload"
	FaultWrongHash       = "wrong-hash"
	FaultChatty          = "chatty"
	FaultDropReplies     = "drop-replies"
)

// SMP kind-specific Spec.Options keys, with their defaults:
//
//	buf_size      params buf_size: the largest request accepted ("1024")
//	slot_size     bytes per image slot ("4194304")
//	boot_delay    how long the device is silent after a reset ("200ms")
//	factory_size  payload bytes of the factory image ("8192")
const (
	SMPOptBufSize     = "buf_size"
	SMPOptSlotSize    = "slot_size"
	SMPOptBootDelay   = "boot_delay"
	SMPOptFactorySize = "factory_size"
)

// SMPImage returns an MCUboot image for hardware hw at version whose
// payload is the simulated firmware MakeImage(hw, version, payload): the
// firmware the SMP simulator boots, and a valid test target for the smp
// driver.
func SMPImage(hw, version string, payload int) ([]byte, error) {
	v, err := smp.ParseVersion(version)
	if err != nil {
		return nil, err
	}
	return smp.BuildImage(v, MakeImage(hw, v.String(), payload)), nil
}

// smpState is the persistent MCUboot state besides the slot files: the
// primary slot's image_ok, and the secondary slot's swap request.
type smpState struct {
	Confirmed bool `json:"confirmed"` // image_ok of the primary slot
	Pending   bool `json:"pending"`   // slot 1 requests a swap
	Permanent bool `json:"permanent"` // ... and stays (confirmed) after it
	Boots     int  `json:"boots"`
}

// smpUpload is the in-RAM state of an image upload; a reboot loses it.
type smpUpload struct {
	len  uint64
	sha  []byte
	off  uint64
	file *os.File
}

// SMPDevice simulates a Zephyr device with MCUboot in swap mode: slot 0
// runs, slot 1 receives uploads; test + reset swaps, an unconfirmed image is
// swapped back on the next reset; the slots and flags persist under
// Spec.StateDir. It serves SMP over UDP (kind smp-udp) or over a pty console
// (kind smp-serial). Its methods are safe for concurrent use.
type SMPDevice struct {
	spec      Spec
	log       *slog.Logger
	bufSize   int
	slotSize  int64
	bootDelay time.Duration

	mu          sync.Mutex
	st          smpState
	slots       [2]*smp.ImageInfo // nil: no valid image
	up          *smpUpload
	downUntil   time.Time
	rebootedMid bool
	replies     int
	console     func(line string) // serial kinds: writes a log line
	addr        string
	ready       chan struct{}
	rx, tx      atomic.Int64
	counters    *counterFile // uploads into slot 1 and boots
}

// NewSMPDevice checks spec, loads the persisted state (installing the
// factory image on first start) and returns the device; Run serves it.
func NewSMPDevice(spec Spec, log *slog.Logger) (*SMPDevice, error) {
	if spec.Kind != KindSMPUDP && spec.Kind != KindSMPSerial {
		return nil, fmt.Errorf("smp device %s: kind %q is not %s or %s", spec.ID, spec.Kind, KindSMPUDP, KindSMPSerial)
	}
	if spec.StateDir == "" || spec.Address == "" || spec.HardwareID == "" {
		return nil, fmt.Errorf("smp device %s: state_dir, address and hardware_id are required", spec.ID)
	}
	d := &SMPDevice{spec: spec, log: log.With("device", spec.ID, "kind", spec.Kind),
		bufSize: 1024, slotSize: 4 << 20, bootDelay: 200 * time.Millisecond, ready: make(chan struct{})}
	factory := 8192
	for k, v := range spec.Options {
		var err error
		switch k {
		case SMPOptBufSize:
			d.bufSize, err = strconv.Atoi(v)
			if err == nil && (d.bufSize < 128 || d.bufSize > smp.MaxPacket) {
				err = errors.New("out of range 128..65543")
			}
		case SMPOptSlotSize:
			d.slotSize, err = strconv.ParseInt(v, 10, 64)
		case SMPOptBootDelay:
			d.bootDelay, err = time.ParseDuration(v)
		case SMPOptFactorySize:
			factory, err = strconv.Atoi(v)
		default:
			err = errors.New("unknown option")
		}
		if err != nil {
			return nil, fmt.Errorf("smp device %s: option %s=%q: %v", spec.ID, k, v, err)
		}
	}
	if err := os.MkdirAll(spec.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("smp device %s: %w", spec.ID, err)
	}
	counters, err := openCounters(spec.StateDir, d.log)
	if err != nil {
		return nil, fmt.Errorf("smp device %s: %w", spec.ID, err)
	}
	d.counters = counters
	if err := d.load(factory); err != nil {
		return nil, fmt.Errorf("smp device %s: %w", spec.ID, err)
	}
	return d, nil
}

func (d *SMPDevice) path(name string) string { return filepath.Join(d.spec.StateDir, "smp-"+name) }

func (d *SMPDevice) load(factory int) error {
	b, err := os.ReadFile(d.path("state.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		img, err := SMPImage(d.spec.HardwareID, d.spec.Version, factory)
		if err != nil {
			return fmt.Errorf("factory image: %w", err)
		}
		if err := replaceFile(d.path("slot0.bin"), img); err != nil {
			return err
		}
		os.Remove(d.path("slot1.bin"))
		d.st = smpState{Confirmed: true}
		if err := d.save(); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &d.st); err != nil {
			return fmt.Errorf("state %s: %w", d.path("state.json"), err)
		}
	}
	// Starting the simulator is a power-on: MCUboot runs.
	d.boot()
	return nil
}

func (d *SMPDevice) save() error {
	b, _ := json.Marshal(d.st)
	return replaceFile(d.path("state.json"), b)
}

// readSlot validates slot n as MCUboot would (header, SHA-256 TLV) and as
// the board does (the simulated firmware's hardware id and size).
func (d *SMPDevice) readSlot(n int) (*smp.ImageInfo, error) {
	b, err := os.ReadFile(d.path(fmt.Sprintf("slot%d.bin", n)))
	if err != nil {
		return nil, err
	}
	info, err := smp.ParseImage(b)
	if err != nil {
		return nil, err
	}
	body := b[info.HeaderSize : info.HeaderSize+info.ImageSize]
	if _, err := VerifyImage(body, d.spec.HardwareID); err != nil {
		return &info, err
	}
	return &info, nil
}

func (d *SMPDevice) refreshSlots() {
	for n := range d.slots {
		info, err := d.readSlot(n)
		if err != nil && info == nil {
			d.slots[n] = nil
			continue
		}
		d.slots[n] = info
	}
}

// swap exchanges the slot files (MCUboot's swap, done by renames).
func (d *SMPDevice) swap() error {
	s0, s1, tmp := d.path("slot0.bin"), d.path("slot1.bin"), d.path("swap.tmp")
	if err := os.Rename(s0, tmp); err != nil {
		return err
	}
	if err := os.Rename(s1, s0); err != nil {
		return err
	}
	return os.Rename(tmp, s1)
}

// boot runs MCUboot: swap to a pending image (test or permanent), or swap
// back an image that was test-booted and never confirmed. Called with mu
// held (or before Run).
func (d *SMPDevice) boot() {
	d.abortUpload()
	d.st.Boots++
	d.counters.booted()
	switch {
	case d.st.Pending:
		d.st.Pending = false
		perm := d.st.Permanent
		d.st.Permanent = false
		if _, err := d.readSlot(1); err != nil {
			d.log.Info("mcuboot: slot 1 image invalid, not swapping", "err", err)
			d.consoleLine("E: Image in the secondary slot is not valid!")
			break
		}
		if err := d.swap(); err != nil {
			d.log.Error("mcuboot: swap", "err", err)
			break
		}
		d.st.Confirmed = perm
		d.log.Info("mcuboot: swapped to slot 1 image", "permanent", perm)
		if d.spec.HasFault(FaultBootFail) {
			// The new image crashes before confirming; the watchdog resets
			// and MCUboot reverts.
			d.log.Info("mcuboot: new image fails to boot (fault), reverting")
			if err := d.swap(); err != nil {
				d.log.Error("mcuboot: swap back", "err", err)
			}
			d.st.Confirmed = true
			d.st.Boots++
			d.counters.booted()
		}
	case !d.st.Confirmed:
		if err := d.swap(); err != nil {
			d.log.Error("mcuboot: revert", "err", err)
			break
		}
		d.st.Confirmed = true
		d.log.Info("mcuboot: unconfirmed image reverted")
	}
	if err := d.save(); err != nil {
		d.log.Error("save state", "err", err)
	}
	d.refreshSlots()
	d.consoleLine("*** Booting Zephyr OS build v3.7.0 ***")
}

func (d *SMPDevice) consoleLine(s string) {
	if d.console != nil {
		d.console(s)
	}
}

func (d *SMPDevice) abortUpload() {
	if d.up != nil && d.up.file != nil {
		d.up.file.Close()
		d.counters.end(false)
	}
	d.up = nil
}

// reboot starts a reset: the device is silent for bootDelay and comes up
// through MCUboot.
func (d *SMPDevice) reboot() {
	d.downUntil = time.Now().Add(d.bootDelay)
	d.boot()
}

// Handle serves one request packet and returns the reply packet, or nil
// when the device does not answer (it is rebooting, the request is not a
// request, or a reply is lost by fault).
func (d *SMPDevice) Handle(pkt []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Now().Before(d.downUntil) {
		return nil
	}
	h, body, err := smp.DecodePacket(pkt)
	if err != nil || (h.Op != smp.OpRead && h.Op != smp.OpWrite) {
		d.log.Debug("smp: bad request dropped", "err", err)
		return nil
	}
	var rsp any
	if len(pkt) > d.bufSize {
		rsp = rc(smp.RCMsgSize)
	} else {
		rsp = d.dispatch(h, body)
	}
	if rsp == nil {
		return nil // rebooted while handling it
	}
	if h.Op == smp.OpWrite && h.Group == smp.GroupOS && h.ID == smp.CmdOSReset {
		defer d.reboot() // after the reply is built, whether or not it is lost
	}
	d.replies++
	if d.spec.HasFault(FaultDropReplies) && d.replies%3 == 0 {
		return nil
	}
	out, err := smp.Marshal(rsp)
	if err == nil {
		h.Op++
		out, err = smp.EncodePacket(h, out)
	}
	if err != nil {
		d.log.Error("smp: encode reply", "err", err)
		return nil
	}
	return out
}

type rcBody struct {
	RC int `cbor:"rc"`
}

func rc(n int) any { return rcBody{RC: n} }

func (d *SMPDevice) dispatch(h smp.Header, body []byte) any {
	type key struct {
		op    smp.Op
		group uint16
		id    uint8
	}
	switch (key{h.Op, h.Group, h.ID}) {
	case key{smp.OpWrite, smp.GroupOS, smp.CmdOSEcho}:
		var r smp.EchoRequest
		if smp.Unmarshal(body, &r) != nil {
			return rc(smp.RCInval)
		}
		return smp.EchoResponse{R: r.D}
	case key{smp.OpRead, smp.GroupOS, smp.CmdOSParams}:
		return smp.ParamsResponse{BufSize: uint32(d.bufSize), BufCount: 4}
	case key{smp.OpRead, smp.GroupOS, smp.CmdOSInfo}:
		var r smp.OSInfoRequest
		if smp.Unmarshal(body, &r) != nil {
			return rc(smp.RCInval)
		}
		return smp.OSInfoResponse{Output: d.osInfo(r.Format)}
	case key{smp.OpWrite, smp.GroupOS, smp.CmdOSReset}:
		return smp.Empty{}
	case key{smp.OpRead, smp.GroupImage, smp.CmdImageState}:
		return d.list()
	case key{smp.OpWrite, smp.GroupImage, smp.CmdImageState}:
		var r smp.ImageStateRequest
		if smp.Unmarshal(body, &r) != nil {
			return rc(smp.RCInval)
		}
		return d.setState(r)
	case key{smp.OpWrite, smp.GroupImage, smp.CmdImageUpload}:
		var r smp.UploadRequest
		if smp.Unmarshal(body, &r) != nil {
			return rc(smp.RCInval)
		}
		return d.upload(r)
	case key{smp.OpWrite, smp.GroupImage, smp.CmdImageErase}:
		var r smp.EraseRequest
		if smp.Unmarshal(body, &r) != nil {
			return rc(smp.RCInval)
		}
		return d.erase(r)
	}
	return rc(smp.RCNotSup)
}

func (d *SMPDevice) osInfo(format string) string {
	if format == "" {
		format = "s"
	}
	var out []string
	for _, c := range format {
		switch c {
		case 's':
			out = append(out, "Zephyr")
		case 'n':
			out = append(out, d.spec.ID)
		case 'b':
			out = append(out, d.spec.HardwareID)
		case 'v':
			if d.slots[0] != nil {
				out = append(out, d.slots[0].Version.String())
			}
		}
	}
	return strings.Join(out, " ")
}

// list builds the image list with Zephyr's flag rules for swap mode.
func (d *SMPDevice) list() smp.ImageStateResponse {
	var r smp.ImageStateResponse
	for n, info := range d.slots {
		if info == nil {
			continue
		}
		s := smp.Slot{Slot: n, Version: info.Version.String(), Hash: bytes.Clone(info.Hash[:]), Bootable: true}
		if n == 0 {
			s.Active = true
			s.Confirmed = d.st.Confirmed
		} else {
			s.Pending = d.st.Pending
			s.Permanent = d.st.Pending && d.st.Permanent
			s.Confirmed = !d.st.Confirmed // the fallback of a test boot
			if d.spec.HasFault(FaultWrongHash) {
				s.Hash[0] ^= 0xff
			}
		}
		r.Images = append(r.Images, s)
	}
	return r
}

func (d *SMPDevice) setState(r smp.ImageStateRequest) any {
	s0, s1 := d.slots[0], d.slots[1]
	switch {
	case r.Confirm && (len(r.Hash) == 0 || s0 != nil && bytes.Equal(r.Hash, s0.Hash[:])):
		d.st.Confirmed = true
	case s1 != nil && bytes.Equal(r.Hash, s1.Hash[:]):
		if !d.st.Confirmed {
			return rc(smp.RCBadState) // slot 1 is the fallback of a test boot
		}
		d.st.Pending, d.st.Permanent = true, r.Confirm
	case s0 != nil && bytes.Equal(r.Hash, s0.Hash[:]):
		return rc(smp.RCBadState) // testing the running image
	default:
		return rc(smp.RCNoEnt)
	}
	if err := d.save(); err != nil {
		d.log.Error("save state", "err", err)
		return rc(smp.RCUnknown)
	}
	return d.list()
}

func (d *SMPDevice) erase(r smp.EraseRequest) any {
	if r.Slot != nil && *r.Slot != 1 {
		return rc(smp.RCInval)
	}
	if !d.st.Confirmed {
		return rc(smp.RCBadState)
	}
	d.abortUpload()
	if err := os.Remove(d.path("slot1.bin")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rc(smp.RCUnknown)
	}
	d.st.Pending, d.st.Permanent = false, false
	if err := d.save(); err != nil {
		return rc(smp.RCUnknown)
	}
	d.refreshSlots()
	return rc(smp.RCOK)
}

// upload follows Zephyr's img_mgmt: the first chunk (off 0) starts an
// upload, or resumes one of the same len and sha; a chunk at another offset
// than expected is answered with the expected offset.
func (d *SMPDevice) upload(r smp.UploadRequest) any {
	if d.st.Pending || !d.st.Confirmed {
		return rc(smp.RCBadState)
	}
	if r.Off == 0 {
		if d.up != nil && r.Len == d.up.len && len(r.SHA) > 0 && bytes.Equal(r.SHA, d.up.sha) {
			return smp.UploadResponse{Off: d.up.off}
		}
		if r.Len == 0 || int64(r.Len) > d.slotSize || uint64(len(r.Data)) > r.Len {
			return rc(smp.RCInval)
		}
		d.abortUpload()
		f, err := os.Create(d.path("slot1.bin"))
		if err != nil {
			return rc(smp.RCUnknown)
		}
		d.up = &smpUpload{len: r.Len, sha: bytes.Clone(r.SHA), file: f}
		d.slots[1] = nil
		d.counters.begin()
	}
	if d.up == nil {
		return rc(smp.RCInval)
	}
	if r.Off != d.up.off || d.up.file == nil {
		return smp.UploadResponse{Off: d.up.off}
	}
	if r.Off+uint64(len(r.Data)) > d.up.len {
		return rc(smp.RCInval)
	}
	if d.spec.HasFault(FaultSlowFlash) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := d.up.file.WriteAt(r.Data, int64(r.Off)); err != nil {
		return rc(smp.RCUnknown)
	}
	d.up.off += uint64(len(r.Data))
	d.counters.add(len(r.Data))
	if d.spec.HasFault(FaultRebootMidUpload) && !d.rebootedMid && d.up.off > d.up.len/2 {
		d.rebootedMid = true
		d.log.Info("smp: rebooting mid-upload (fault)", "off", d.up.off)
		d.reboot()
		return nil
	}
	if d.up.off == d.up.len {
		if err := d.up.file.Close(); err != nil {
			return rc(smp.RCUnknown)
		}
		d.up.file = nil // keep off for retransmitted last chunks
		d.counters.end(true)
		d.refreshSlots()
	}
	return smp.UploadResponse{Off: d.up.off}
}
