// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/fieldgate/fieldgate/devices/smp"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTestSMP(t *testing.T, dir string, faults ...string) *SMPDevice {
	t.Helper()
	d, err := NewSMPDevice(Spec{ID: "m", Kind: KindSMPUDP, HardwareID: "hw1", Version: "1.0.0",
		StateDir: dir, Address: "127.0.0.1:0", Faults: faults,
		Options: map[string]string{SMPOptBootDelay: "0s", SMPOptBufSize: "512"}}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var seq uint8

// call sends one request to d.Handle and decodes the reply into rsp.
func call(t *testing.T, d *SMPDevice, op smp.Op, group uint16, id uint8, req, rsp any) error {
	t.Helper()
	body, err := smp.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	seq++
	pkt, _ := smp.EncodePacket(smp.Header{Op: op, Group: group, ID: id, Seq: seq}, body)
	out := d.Handle(pkt)
	if out == nil {
		return errNoReply
	}
	h, rb, err := smp.DecodePacket(out)
	if err != nil || h.Seq != seq || h.Op != op+1 {
		t.Fatalf("Handle reply %x: %v", out, err)
	}
	if err := smp.CheckStatus(h, rb); err != nil {
		return err
	}
	if rsp != nil {
		if err := smp.Unmarshal(rb, rsp); err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

var errNoReply = errors.New("no reply")

func list(t *testing.T, d *SMPDevice) []smp.Slot {
	t.Helper()
	var r smp.ImageStateResponse
	if err := call(t, d, smp.OpRead, smp.GroupImage, smp.CmdImageState, smp.Empty{}, &r); err != nil {
		t.Fatal(err)
	}
	return r.Images
}

func upload(t *testing.T, d *SMPDevice, img []byte) {
	t.Helper()
	sum := sha256.Sum256(img)
	var off uint64
	for off < uint64(len(img)) {
		req := smp.UploadRequest{Off: off, Data: img[off:min(off+300, uint64(len(img)))]}
		if off == 0 {
			req.Len, req.SHA = uint64(len(img)), sum[:]
		}
		var r smp.UploadResponse
		if err := call(t, d, smp.OpWrite, smp.GroupImage, smp.CmdImageUpload, req, &r); err != nil {
			t.Fatalf("upload at %d: %v", off, err)
		}
		off = r.Off
	}
}

// flags renders the slots as "slot:version:flags" for comparison, flags
// being a(ctive) c(onfirmed) p(ending) P(ermanent).
func flags(slots []smp.Slot) []string {
	var out []string
	for _, s := range slots {
		f := ""
		for _, x := range []struct {
			on bool
			c  string
		}{{s.Active, "a"}, {s.Confirmed, "c"}, {s.Pending, "p"}, {s.Permanent, "P"}} {
			if x.on {
				f += x.c
			}
		}
		out = append(out, string(rune('0'+s.Slot))+":"+s.Version+":"+f)
	}
	return out
}

func reset(t *testing.T, d *SMPDevice) {
	t.Helper()
	if err := call(t, d, smp.OpWrite, smp.GroupOS, smp.CmdOSReset, smp.Empty{}, nil); err != nil {
		t.Fatal(err)
	}
}

func testImage(t *testing.T, d *SMPDevice, hash []byte, confirm bool) error {
	t.Helper()
	return call(t, d, smp.OpWrite, smp.GroupImage, smp.CmdImageState, smp.ImageStateRequest{Hash: hash, Confirm: confirm}, nil)
}

func TestSMPSwapAndRevert(t *testing.T) {
	dir := t.TempDir()
	d := newTestSMP(t, dir)
	if got := flags(list(t, d)); !slices.Equal(got, []string{"0:1.0.0:ac"}) {
		t.Fatalf("factory list = %v", got)
	}
	img, _ := SMPImage("hw1", "1.1.0", 2000)
	upload(t, d, img)
	info, _ := smp.ParseImage(img)
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"uploaded", func() error { return nil }, []string{"0:1.0.0:ac", "1:1.1.0:"}},
		{"test", func() error { return testImage(t, d, info.Hash[:], false) }, []string{"0:1.0.0:ac", "1:1.1.0:p"}},
		{"reset swaps", func() error { reset(t, d); return nil }, []string{"0:1.1.0:a", "1:1.0.0:c"}},
		{"reset reverts", func() error { reset(t, d); return nil }, []string{"0:1.0.0:ac", "1:1.1.0:"}},
		{"test again", func() error { return testImage(t, d, info.Hash[:], false) }, []string{"0:1.0.0:ac", "1:1.1.0:p"}},
		{"reset swaps again", func() error { reset(t, d); return nil }, []string{"0:1.1.0:a", "1:1.0.0:c"}},
		{"confirm", func() error { return testImage(t, d, nil, true) }, []string{"0:1.1.0:ac", "1:1.0.0:"}},
		{"power cycle keeps it", func() error { d = newTestSMP(t, dir); return nil }, []string{"0:1.1.0:ac", "1:1.0.0:"}},
		{"permanent back", func() error {
			old, _ := SMPImage("hw1", "1.0.0", 8192)
			oi, _ := smp.ParseImage(old)
			return testImage(t, d, oi.Hash[:], true)
		}, []string{"0:1.1.0:ac", "1:1.0.0:pP"}},
		{"reset swaps permanently", func() error { reset(t, d); return nil }, []string{"0:1.0.0:ac", "1:1.1.0:"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := flags(list(t, d)); !slices.Equal(got, s.want) {
			t.Fatalf("after %s: image list = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestSMPBootChecks(t *testing.T) {
	tests := []struct {
		name   string
		img    func() []byte
		faults []string
	}{
		{"boot-fail fault", func() []byte { b, _ := SMPImage("hw1", "1.1.0", 500); return b }, []string{FaultBootFail}},
		{"other hardware", func() []byte { b, _ := SMPImage("hw2", "1.1.0", 500); return b }, nil},
	}
	for _, tt := range tests {
		d := newTestSMP(t, t.TempDir(), tt.faults...)
		img := tt.img()
		upload(t, d, img)
		info, _ := smp.ParseImage(img)
		if err := testImage(t, d, info.Hash[:], false); err != nil {
			t.Fatalf("%s: test: %v", tt.name, err)
		}
		reset(t, d)
		if got := flags(list(t, d)); got[0] != "0:1.0.0:ac" {
			t.Errorf("%s: after reset image list = %v, want the old image active and confirmed", tt.name, got)
		}
	}
}

func TestSMPUploadRules(t *testing.T) {
	d := newTestSMP(t, t.TempDir())
	img, _ := SMPImage("hw1", "1.1.0", 3000)
	sum := sha256.Sum256(img)
	up := func(r smp.UploadRequest) (smp.UploadResponse, error) {
		var rsp smp.UploadResponse
		err := call(t, d, smp.OpWrite, smp.GroupImage, smp.CmdImageUpload, r, &rsp)
		return rsp, err
	}
	var de *smp.DeviceError
	if _, err := up(smp.UploadRequest{Off: 100, Data: img[100:200]}); !errors.As(err, &de) || de.RC != smp.RCInval {
		t.Errorf("upload without a start = %v, want EINVAL", err)
	}
	if r, err := up(smp.UploadRequest{Len: uint64(len(img)), SHA: sum[:], Data: img[:100]}); err != nil || r.Off != 100 {
		t.Errorf("first chunk = %+v, %v, want off 100", r, err)
	}
	if r, err := up(smp.UploadRequest{Off: 300, Data: img[300:400]}); err != nil || r.Off != 100 {
		t.Errorf("chunk at a gap = %+v, %v, want off 100", r, err)
	}
	if r, err := up(smp.UploadRequest{Len: uint64(len(img)), SHA: sum[:], Data: img[:100]}); err != nil || r.Off != 100 {
		t.Errorf("restart with the same sha = %+v, %v, want resume at 100", r, err)
	}
	big := smp.UploadRequest{Off: 100, Data: img[100:700]}
	if _, err := up(big); !errors.As(err, &de) || de.RC != smp.RCMsgSize {
		t.Errorf("request over buf_size = %v, want EMSGSIZE", err)
	}
	if r, err := up(smp.UploadRequest{Len: 150, SHA: []byte("other"), Data: img[:100]}); err != nil || r.Off != 100 {
		t.Errorf("new upload = %+v, %v, want off 100", r, err)
	}
	if _, err := up(smp.UploadRequest{Off: 100, Data: img[:100]}); !errors.As(err, &de) || de.RC != smp.RCInval {
		t.Errorf("chunk past len = %v, want EINVAL", err)
	}
	if d.Handle([]byte{1, 2, 3}) != nil {
		t.Errorf("Handle(garbage) answered, want silence")
	}
}

func TestSMPRebootMidUploadFault(t *testing.T) {
	d := newTestSMP(t, t.TempDir(), FaultRebootMidUpload)
	img, _ := SMPImage("hw1", "1.1.0", 3000)
	sum := sha256.Sum256(img)
	var off uint64
	for {
		req := smp.UploadRequest{Off: off, Data: img[off:min(off+300, uint64(len(img)))]}
		if off == 0 {
			req.Len, req.SHA = uint64(len(img)), sum[:]
		}
		var r smp.UploadResponse
		err := call(t, d, smp.OpWrite, smp.GroupImage, smp.CmdImageUpload, req, &r)
		if errors.Is(err, errNoReply) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		off = r.Off
	}
	var de *smp.DeviceError
	err := call(t, d, smp.OpWrite, smp.GroupImage, smp.CmdImageUpload, smp.UploadRequest{Off: off, Data: img[off : off+10]}, nil)
	if !errors.As(err, &de) || de.RC != smp.RCInval {
		t.Errorf("chunk after the reboot at %d = %v, want EINVAL (upload state lost)", off, err)
	}
}

func TestNewSMPDeviceErrors(t *testing.T) {
	good := Spec{ID: "m", Kind: KindSMPUDP, HardwareID: "hw", Version: "1.0.0", StateDir: t.TempDir(), Address: "x"}
	tests := []struct {
		name string
		mod  func(*Spec)
	}{
		{"kind", func(s *Spec) { s.Kind = "xmodem-console" }},
		{"no state dir", func(s *Spec) { s.StateDir = "" }},
		{"bad version", func(s *Spec) { s.Version = "v1" }},
		{"unknown option", func(s *Spec) { s.Options = map[string]string{"nope": "1"} }},
		{"small buf_size", func(s *Spec) { s.Options = map[string]string{SMPOptBufSize: "10"} }},
	}
	for _, tt := range tests {
		s := good
		s.StateDir = t.TempDir()
		tt.mod(&s)
		if _, err := NewSMPDevice(s, quietLog); err == nil {
			t.Errorf("NewSMPDevice(%s) = nil error, want one", tt.name)
		}
	}
}

func FuzzSMPHandle(f *testing.F) {
	img, _ := SMPImage("hw1", "1.1.0", 100)
	sum := sha256.Sum256(img)
	for _, req := range []struct {
		h smp.Header
		v any
	}{
		{smp.Header{Op: smp.OpWrite, Group: smp.GroupImage, ID: smp.CmdImageUpload}, smp.UploadRequest{Len: uint64(len(img)), SHA: sum[:], Data: img[:50]}},
		{smp.Header{Op: smp.OpWrite, Group: smp.GroupImage, ID: smp.CmdImageState}, smp.ImageStateRequest{Hash: sum[:]}},
		{smp.Header{Op: smp.OpRead, Group: smp.GroupImage, ID: smp.CmdImageState}, smp.Empty{}},
		{smp.Header{Op: smp.OpWrite, Group: smp.GroupOS, ID: smp.CmdOSEcho}, smp.EchoRequest{D: "x"}},
	} {
		b, _ := smp.Marshal(req.v)
		p, _ := smp.EncodePacket(req.h, b)
		f.Add(p)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, p []byte) {
		d := newTestSMP(t, dir)
		out := d.Handle(p)
		if out == nil {
			return
		}
		if _, _, err := smp.DecodePacket(out); err != nil {
			t.Fatalf("Handle(%x) replied with a bad packet %x: %v", p, out, err)
		}
	})
}
