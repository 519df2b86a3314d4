// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// Golden SMP packets. The bytes were produced by Debian's python3-cbor2
// (cbor2.dumps of the bodies listed in interopCBORScript, header packed with
// struct); TestInteropCBOR2 re-checks them with cbor2 and these tests check
// that our encoder produces and our decoder reads exactly them.
var golden = []struct {
	name string
	hex  string
	h    Header
	v    any // the Go value of the body; requests are encoded, responses decoded and encoded
}{
	{"params_req", "0000000100000106a0", Header{Op: OpRead, Group: GroupOS, ID: CmdOSParams, Seq: 1}, Empty{}},
	{"params_rsp", "0100001800000106a2686275665f73697a65190400696275665f636f756e7404",
		Header{Op: OpReadRsp, Group: GroupOS, ID: CmdOSParams, Seq: 1}, ParamsResponse{BufSize: 1024, BufCount: 4}},
	{"echo_req", "0200000900000200a161646568656c6c6f", Header{Op: OpWrite, Group: GroupOS, ID: CmdOSEcho, Seq: 2}, EchoRequest{D: "hello"}},
	{"echo_rsp", "0300000900000200a161726568656c6c6f", Header{Op: OpWriteRsp, Group: GroupOS, ID: CmdOSEcho, Seq: 2}, EchoResponse{R: "hello"}},
	{"osinfo_req", "0000000a00000307a166666f726d61746162", Header{Op: OpRead, Group: GroupOS, ID: CmdOSInfo, Seq: 3}, OSInfoRequest{Format: "b"}},
	{"osinfo_rsp", "0100001700000307a1666f75747075746e61636d652d696f31362d72657633",
		Header{Op: OpReadRsp, Group: GroupOS, ID: CmdOSInfo, Seq: 3}, OSInfoResponse{Output: "acme-io16-rev3"}},
	{"list_req", "0000000100010400a0", Header{Op: OpRead, Group: GroupImage, ID: CmdImageState, Seq: 4}, Empty{}},
	{"list_rsp", "010000f100010400a166696d6167657382a965696d6167650064736c6f74006776657273696f6e65312e302e3064686173685820000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f68626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e656e74f4a965696d6167650064736c6f74016776657273696f6e65312e312e3064686173685820202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f68626f6f7461626c65f56770656e64696e67f569636f6e6669726d6564f466616374697665f4697065726d616e656e74f4",
		Header{Op: OpReadRsp, Group: GroupImage, ID: CmdImageState, Seq: 4}, ImageStateResponse{Images: []Slot{
			{Slot: 0, Version: "1.0.0", Hash: seqBytes(0, 32), Bootable: true, Confirmed: true, Active: true},
			{Slot: 1, Version: "1.1.0", Hash: seqBytes(32, 32), Bootable: true, Pending: true},
		}}},
	{"upload_first_req", "0200005000010501a565696d61676500636c656e190258636f666600637368615820a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf646461746150000102030405060708090a0b0c0d0e0f",
		Header{Op: OpWrite, Group: GroupImage, ID: CmdImageUpload, Seq: 5}, UploadRequest{Image: new(uint32), Len: 600, Off: 0, SHA: seqBytes(0xa0, 32), Data: seqBytes(0, 16)}},
	{"upload_next_req", "0200001400010601a2636f666610646461746148ffffffffffffffff",
		Header{Op: OpWrite, Group: GroupImage, ID: CmdImageUpload, Seq: 6}, UploadRequest{Off: 16, Data: bytes.Repeat([]byte{0xff}, 8)}},
	{"upload_rsp", "0300000700010601a1636f66661818", Header{Op: OpWriteRsp, Group: GroupImage, ID: CmdImageUpload, Seq: 6}, UploadResponse{Off: 24}},
	{"test_req", "0200003100010700a264686173685820202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f67636f6e6669726df4",
		Header{Op: OpWrite, Group: GroupImage, ID: CmdImageState, Seq: 7}, ImageStateRequest{Hash: seqBytes(32, 32)}},
	{"confirm_req", "0200003100010800a264686173685820202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f67636f6e6669726df5",
		Header{Op: OpWrite, Group: GroupImage, ID: CmdImageState, Seq: 8}, ImageStateRequest{Hash: seqBytes(32, 32), Confirm: true}},
	{"confirm_running_req", "0200000a00010900a167636f6e6669726df5", Header{Op: OpWrite, Group: GroupImage, ID: CmdImageState, Seq: 9}, ImageStateRequest{Confirm: true}},
	{"erase_req", "0200000700010a05a164736c6f7401", Header{Op: OpWrite, Group: GroupImage, ID: CmdImageErase, Seq: 10}, EraseRequest{Slot: ptr(uint32(1))}},
	{"erase_rsp", "0300000500010a05a162726300", Header{Op: OpWriteRsp, Group: GroupImage, ID: CmdImageErase, Seq: 10}, rcOnly{RC: 0}},
	{"reset_req", "0200000100000b05a0", Header{Op: OpWrite, Group: GroupOS, ID: CmdOSReset, Seq: 11}, Empty{}},
	{"reset_rsp", "0300000100000b05a0", Header{Op: OpWriteRsp, Group: GroupOS, ID: CmdOSReset, Seq: 11}, Empty{}},
	{"error_v1_rsp", "0300000500010c01a162726306", Header{Op: OpWriteRsp, Group: GroupImage, ID: CmdImageUpload, Seq: 12}, rcOnly{RC: RCBadState}},
	{"error_v2_rsp", "0300001100010d01a163657272a26567726f75700162726302",
		Header{Op: OpWriteRsp, Group: GroupImage, ID: CmdImageUpload, Seq: 13}, errOnly{Err: errorV2{Group: 1, RC: 2}}},
}

type rcOnly struct {
	RC int `cbor:"rc"`
}

type errOnly struct {
	Err errorV2 `cbor:"err"`
}

func seqBytes(start, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(start + i)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func TestGoldenPackets(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			want, _ := hex.DecodeString(g.hex)
			body, err := Marshal(g.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := EncodePacket(g.h, body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("EncodePacket(%v, %T) = %x, want %x", g.h, g.v, got, want)
			}
			h, b, err := DecodePacket(want)
			if err != nil {
				t.Fatalf("DecodePacket(%s) error %v", g.name, err)
			}
			wantH := g.h
			wantH.Len = uint16(len(want) - HeaderSize)
			if h != wantH {
				t.Errorf("DecodePacket(%s) header = %v, want %v", g.name, h, wantH)
			}
			dst := reflect.New(reflect.TypeOf(g.v))
			if err := Unmarshal(b, dst.Interface()); err != nil {
				t.Fatalf("Unmarshal(%s) error %v", g.name, err)
			}
			if diff := cmp.Diff(g.v, dst.Elem().Interface(), cmp.AllowUnexported(errorV2{})); diff != "" {
				t.Errorf("Unmarshal(%s) (-want +got):\n%s", g.name, diff)
			}
		})
	}
}

func TestGoldenStatus(t *testing.T) {
	tests := []struct {
		name string
		want *DeviceError
	}{
		{"upload_rsp", nil},
		{"erase_rsp", nil},
		{"error_v1_rsp", &DeviceError{Group: GroupImage, ID: CmdImageUpload, RC: RCBadState}},
		{"error_v2_rsp", &DeviceError{Group: 1, ID: CmdImageUpload, RC: 2, V2: true}},
	}
	for _, tt := range tests {
		p := goldenPacket(t, tt.name)
		h, body, _ := DecodePacket(p)
		err := CheckStatus(h, body)
		var de *DeviceError
		if tt.want == nil {
			if err != nil {
				t.Errorf("CheckStatus(%s) = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.As(err, &de) || *de != *tt.want {
			t.Errorf("CheckStatus(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func goldenPacket(t testing.TB, name string) []byte {
	t.Helper()
	for _, g := range golden {
		if g.name == name {
			b, _ := hex.DecodeString(g.hex)
			return b
		}
	}
	t.Fatalf("no golden vector %s", name)
	return nil
}

// Golden serial frames of two golden packets, produced by Python's base64
// and binascii.crc_hqx (see interopFrameScript).
var goldenFrames = []struct {
	packet, frame string
}{
	{"echo_req", "\x06\x09ABMCAAAJAAACAKFhZGVoZWxsb4Xc\n"},
	{"list_rsp", "\x06\x09APsBAADxAAEEAKFmaW1hZ2VzgqllaW1hZ2UAZHNsb3QAZ3ZlcnNpb25lMS4wLjBkaGFzaFggAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9oYm9vdGFi\n" +
		"\x04\x14bGX1Z3BlbmRpbmf0aWNvbmZpcm1lZPVmYWN0aXZl9WlwZXJtYW5lbnT0qWVpbWFnZQBkc2xvdAFndmVyc2lvbmUxLjEuMGRoYXNoWCAgISIjJCUmJygpKissLS4v\n" +
		"\x04\x14MDEyMzQ1Njc4OTo7PD0+P2hib290YWJsZfVncGVuZGluZ/VpY29uZmlybWVk9GZhY3RpdmX0aXBlcm1hbmVudPRYvA==\n"},
}

func TestGoldenFrames(t *testing.T) {
	for _, g := range goldenFrames {
		pkt := goldenPacket(t, g.packet)
		got, err := EncodeFrame(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != g.frame {
			t.Errorf("EncodeFrame(%s) = %q, want %q", g.packet, got, g.frame)
		}
		if n := FrameLen(len(pkt)); n != len(g.frame) {
			t.Errorf("FrameLen(%d) = %d, want %d", len(pkt), n, len(g.frame))
		}
		for _, l := range strings.SplitAfter(g.frame, "\n") {
			if len(l) > MaxLine {
				t.Errorf("EncodeFrame(%s) line of %d bytes, want ≤ %d", g.packet, len(l), MaxLine)
			}
		}
		// Interleave log lines and feed in odd slices.
		in := "boot banner\r\n" + strings.Replace(g.frame, "\n", "\n[00:00:01] <inf> log line\n", 1)
		var pkts [][]byte
		var d FrameDecoder
		for i := 0; i < len(in); i += 7 {
			d.Feed([]byte(in[i:min(i+7, len(in))]), func(p []byte, err error) {
				if err != nil {
					t.Errorf("FrameDecoder(%s) error %v", g.packet, err)
					return
				}
				pkts = append(pkts, p)
			})
		}
		if len(pkts) != 1 || !bytes.Equal(pkts[0], pkt) {
			t.Errorf("FrameDecoder(%s) = %x, want [%x]", g.packet, pkts, pkt)
		}
	}
}

func TestCRC16(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x31c3 {
		t.Errorf("CRC16(123456789) = %#04x, want 0x31c3", got)
	}
}

// python runs script with /usr/bin/python3, in as JSON on stdin, and
// decodes its JSON stdout into out. It skips (fails under CI=true) when
// python3 or a module is missing.
func python(t *testing.T, script string, in, out any) {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		devicetest.Missing(t, "needs /usr/bin/python3: install Debian package python3")
	}
	if err := exec.Command(py, "-c", "import cbor2").Run(); err != nil {
		devicetest.Missing(t, "needs the cbor2 module: install Debian package python3-cbor2")
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	o, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(o, out); err != nil {
		t.Fatalf("python output %q: %v", o, err)
	}
}

// interopCBORScript is the independent description of every golden packet:
// the header fields and body as Python values. It decodes each golden
// packet with cbor2, compares it with the description, and re-encodes the
// description with cbor2.dumps to compare bytes.
const interopCBORScript = `
import cbor2, json, struct, sys
H = bytes(range(32)); H2 = bytes(range(32, 64)); SHA = bytes(range(0xa0, 0xc0))
def slot(n, ver, h, act, conf, pend=False, perm=False):
    return {"image":0,"slot":n,"version":ver,"hash":h,"bootable":True,"pending":pend,"confirmed":conf,"active":act,"permanent":perm}
# name: (op, group, id, seq, body)
SPEC = {
 "params_req": (0, 0, 6, 1, {}),
 "params_rsp": (1, 0, 6, 1, {"buf_size":1024,"buf_count":4}),
 "echo_req": (2, 0, 0, 2, {"d":"hello"}),
 "echo_rsp": (3, 0, 0, 2, {"r":"hello"}),
 "osinfo_req": (0, 0, 7, 3, {"format":"b"}),
 "osinfo_rsp": (1, 0, 7, 3, {"output":"acme-io16-rev3"}),
 "list_req": (0, 1, 0, 4, {}),
 "list_rsp": (1, 1, 0, 4, {"images":[slot(0,"1.0.0",H,True,True), slot(1,"1.1.0",H2,False,False,True,False)]}),
 "upload_first_req": (2, 1, 1, 5, {"image":0,"len":600,"off":0,"sha":SHA,"data":bytes(range(16))}),
 "upload_next_req": (2, 1, 1, 6, {"off":16,"data":bytes([0xff]*8)}),
 "upload_rsp": (3, 1, 1, 6, {"off":24}),
 "test_req": (2, 1, 0, 7, {"hash":H2,"confirm":False}),
 "confirm_req": (2, 1, 0, 8, {"hash":H2,"confirm":True}),
 "confirm_running_req": (2, 1, 0, 9, {"confirm":True}),
 "erase_req": (2, 1, 5, 10, {"slot":1}),
 "erase_rsp": (3, 1, 5, 10, {"rc":0}),
 "reset_req": (2, 0, 5, 11, {}),
 "reset_rsp": (3, 0, 5, 11, {}),
 "error_v1_rsp": (3, 1, 1, 12, {"rc":6}),
 "error_v2_rsp": (3, 1, 1, 13, {"err":{"group":1,"rc":2}}),
}
res = {}
for name, hx in json.load(sys.stdin).items():
    p = bytes.fromhex(hx)
    b0, flags, ln, grp, seq, cid = struct.unpack(">BBHHBB", p[:8])
    body = p[8:]
    op, grp_, cid_, seq_, want = SPEC[name]
    errs = []
    if (b0 & 7, b0 >> 3, flags, ln, grp, seq, cid) != (op, 0, 0, len(body), grp_, seq_, cid_):
        errs.append("header %s" % p[:8].hex())
    got = cbor2.loads(body)
    if got != want:
        errs.append("body %r, want %r" % (got, want))
    if cbor2.dumps(want) != body:
        errs.append("cbor2.dumps = %s" % cbor2.dumps(want).hex())
    res[name] = errs
missing = set(SPEC) - set(res)
for m in missing:
    res[m] = ["not checked"]
json.dump(res, sys.stdout)
`

func TestInteropCBOR2(t *testing.T) {
	in := map[string]string{}
	for _, g := range golden {
		in[g.name] = g.hex
	}
	var res map[string][]string
	python(t, interopCBORScript, in, &res)
	if len(res) != len(golden) {
		t.Errorf("python checked %d vectors, want %d", len(res), len(golden))
	}
	for name, errs := range res {
		for _, e := range errs {
			t.Errorf("cbor2 check of %s: %s", name, e)
		}
	}
}

// interopFrameScript frames packets with Python's base64 and
// binascii.crc_hqx (CRC-16/XMODEM), and deframes the frames it is given,
// skipping log lines.
const interopFrameScript = `
import base64, binascii, json, struct, sys
def frame(pkt):
    raw = struct.pack(">H", len(pkt)+2) + pkt + struct.pack(">H", binascii.crc_hqx(pkt, 0))
    b = base64.b64encode(raw)
    return b"".join((b"\x06\x09" if i == 0 else b"\x04\x14") + b[i:i+124] + b"\n" for i in range(0, len(b), 124))
def deframe(data):
    pkts, cur = [], None
    for line in data.split(b"\n"):
        if line.startswith(b"\x06\x09"):
            cur = base64.b64decode(line[2:])
        elif line.startswith(b"\x04\x14") and cur is not None:
            cur += base64.b64decode(line[2:])
        else:
            continue
        if len(cur) >= 2 and len(cur) >= 2 + struct.unpack(">H", cur[:2])[0]:
            n = struct.unpack(">H", cur[:2])[0]
            pkt, crc = cur[2:n], struct.unpack(">H", cur[n:n+2])[0]
            assert len(cur) == n + 2, "extra bytes"
            assert crc == binascii.crc_hqx(pkt, 0), "crc"
            pkts.append(pkt.hex()); cur = None
    return pkts
inp = json.load(sys.stdin)
out = {"frames": [frame(bytes.fromhex(p)).hex() for p in inp["packets"]],
       "decoded": deframe(bytes.fromhex(inp["stream"]))}
json.dump(out, sys.stdout)
`

func TestInteropSerialFrames(t *testing.T) {
	var pkts [][]byte
	for _, n := range []int{0, 1, 90, 91, 92, 93, 94, 200, 1024, 4096, 65000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7 + n)
		}
		pkts = append(pkts, p)
	}
	for _, g := range golden {
		pkts = append(pkts, goldenPacket(t, g.name))
	}
	in := struct {
		Packets []string `json:"packets"`
		Stream  string   `json:"stream"`
	}{}
	var stream []byte
	for _, p := range pkts {
		in.Packets = append(in.Packets, hex.EncodeToString(p))
		f, err := EncodeFrame(p)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, "<inf> log line between frames\n"...)
		stream = append(stream, f...)
	}
	in.Stream = hex.EncodeToString(stream)
	var out struct {
		Frames  []string `json:"frames"`
		Decoded []string `json:"decoded"`
	}
	python(t, interopFrameScript, in, &out)
	if diff := cmp.Diff(in.Packets, out.Decoded); diff != "" {
		t.Errorf("python deframing of EncodeFrame output (-want +got):\n%s", diff)
	}
	if len(out.Frames) != len(pkts) {
		t.Fatalf("python framed %d packets, want %d", len(out.Frames), len(pkts))
	}
	for i, p := range pkts {
		pf, _ := hex.DecodeString(out.Frames[i])
		f, _ := EncodeFrame(p)
		if !bytes.Equal(f, pf) {
			t.Errorf("EncodeFrame(%d bytes) = %q, python frames %q", len(p), f, pf)
		}
		var got [][]byte
		var d FrameDecoder
		d.Feed(pf, func(p []byte, err error) {
			if err != nil {
				t.Errorf("FrameDecoder(python frame of %d bytes) error %v", len(p), err)
			}
			got = append(got, p)
		})
		if len(got) != 1 || !bytes.Equal(got[0], p) {
			t.Errorf("FrameDecoder(python frame of %d bytes) = %d packets, want the packet", len(p), len(got))
		}
	}
}

func TestFrameDecoderErrors(t *testing.T) {
	good, _ := EncodeFrame(goldenPacket(t, "echo_req"))
	crc := bytes.Clone(good)
	crc[len(crc)-3] ^= 1 // inside the base64 of the CRC
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"wrong CRC", string(crc), true},
		{"bad base64", "\x06\x09!!!!\n", true},
		{"length below CRC", "\x06\x09AAE=\n", true},                   // len 1
		{"extra bytes", "\x06\x09AAIAAAA=\n", true},                    // len 2 + 3 more bytes
		{"orphan continuation", "\x04\x14AAAA\n", false},               // skipped as log
		{"overlong log line", strings.Repeat("x", 5000) + "\n", false}, // dropped
		{"start without end", "\x06\x09AAoA\n", false},                 // abandoned by the next start
	}
	for _, tt := range tests {
		var d FrameDecoder
		var errs int
		var pkts [][]byte
		d.Feed([]byte(tt.in+string(good)), func(p []byte, err error) {
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("FrameDecoder(%s) error %v does not wrap ErrMalformed", tt.name, err)
				}
				errs++
				return
			}
			pkts = append(pkts, p)
		})
		if (errs > 0) != tt.wantErr {
			t.Errorf("FrameDecoder(%s) gave %d errors, want error %v", tt.name, errs, tt.wantErr)
		}
		if len(pkts) != 1 || !bytes.Equal(pkts[0], goldenPacket(t, "echo_req")) {
			t.Errorf("FrameDecoder(%s + good frame) = %x, want the good packet", tt.name, pkts)
		}
	}
}
