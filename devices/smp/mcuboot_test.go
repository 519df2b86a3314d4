// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
)

func TestBuildParseImage(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 70000} {
		payload := bytes.Repeat([]byte{0x5a}, n)
		v := ImageVersion{1, 2, 3, 4}
		img := BuildImage(v, payload)
		info, err := ParseImage(img)
		if err != nil {
			t.Fatalf("ParseImage(BuildImage(%v, %d bytes)) error %v", v, n, err)
		}
		want := sha256.Sum256(img[:BuildHeaderSize+n])
		if info.Hash != want || info.Version != v || info.ImageSize != n || info.HeaderSize != BuildHeaderSize || info.Size != len(img) {
			t.Errorf("ParseImage(BuildImage(%v, %d bytes)) = %+v, want hash %x", v, n, info, want)
		}
	}
}

// withProtectedTLVs builds an image with a protected TLV area (as imgtool
// does for a security counter) to check the hash covers it.
func withProtectedTLVs(payload []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 32, 64)
	le.PutUint32(b, ImageMagic)
	le.PutUint16(b[8:], 32)
	prot := []byte{}
	prot = le.AppendUint16(prot, TLVProtInfoMagic)
	prot = le.AppendUint16(prot, 4+4+4)
	prot = le.AppendUint16(prot, 0x50) // security counter
	prot = le.AppendUint16(prot, 4)
	prot = le.AppendUint32(prot, 7)
	le.PutUint16(b[10:], uint16(len(prot)))
	le.PutUint32(b[12:], uint32(len(payload)))
	b = append(b, payload...)
	b = append(b, prot...)
	sum := sha256.Sum256(b)
	b = le.AppendUint16(b, TLVInfoMagic)
	b = le.AppendUint16(b, 4+4+32+4+3)
	b = le.AppendUint16(b, 0x01) // keyhash, ignored
	b = le.AppendUint16(b, 3)
	b = append(b, 1, 2, 3)
	b = le.AppendUint16(b, TLVSHA256)
	b = le.AppendUint16(b, 32)
	return append(b, sum[:]...)
}

func TestParseImageProtectedTLVs(t *testing.T) {
	img := withProtectedTLVs([]byte("firmware"))
	info, err := ParseImage(img)
	if err != nil {
		t.Fatalf("ParseImage(protected TLVs) error %v", err)
	}
	if info.ProtectedTLVSize != 12 {
		t.Errorf("ParseImage(protected TLVs).ProtectedTLVSize = %d, want 12", info.ProtectedTLVSize)
	}
}

func TestParseImageBad(t *testing.T) {
	good := BuildImage(ImageVersion{Major: 1}, []byte("some firmware body"))
	tlv := BuildHeaderSize + len("some firmware body")
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		img  []byte
	}{
		{"empty", nil},
		{"short header", good[:31]},
		{"bad magic", mod(func(b []byte) []byte { b[0] ^= 1; return b })},
		{"header size below 32", mod(func(b []byte) []byte { b[8], b[9] = 16, 0; return b })},
		{"body beyond file", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<31); return b })},
		{"body byte flipped", mod(func(b []byte) []byte { b[BuildHeaderSize] ^= 1; return b })},
		{"header byte flipped", mod(func(b []byte) []byte { b[20] ^= 1; return b })},
		{"no TLV area", good[:tlv]},
		{"TLV info magic", mod(func(b []byte) []byte { b[tlv] ^= 1; return b })},
		{"TLV total too long", mod(func(b []byte) []byte { b[tlv+2] = 0xff; return b })},
		{"TLV overruns area", mod(func(b []byte) []byte { b[tlv+6] = 33; return b })},
		{"hash TLV wrong length", mod(func(b []byte) []byte { b[tlv+6] = 16; return b })},
		{"no hash TLV", mod(func(b []byte) []byte { b[tlv+4] = 0x11; return b })},
		{"hash flipped", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"trailing bytes", append(bytes.Clone(good), 0xff)},
		{"truncated TLV", good[:len(good)-1]},
		{"protected size mismatch", mod(func(b []byte) []byte { b[10] = 4; return b })},
	}
	for _, tt := range tests {
		if _, err := ParseImage(tt.img); !errors.Is(err, ErrBadImage) {
			t.Errorf("ParseImage(%s) = %v, want ErrBadImage", tt.name, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    ImageVersion
		str     string
		wantErr bool
	}{
		{"1.2.3", ImageVersion{1, 2, 3, 0}, "1.2.3", false},
		{"1.2.3.4", ImageVersion{1, 2, 3, 4}, "1.2.3.4", false},
		{"1.2.3+4", ImageVersion{1, 2, 3, 4}, "1.2.3.4", false},
		{"2", ImageVersion{2, 0, 0, 0}, "2.0.0", false},
		{"255.255.65535.4294967295", ImageVersion{255, 255, 65535, 4294967295}, "255.255.65535.4294967295", false},
		{"256.0.0", ImageVersion{}, "", true},
		{"1.2.3-rc1", ImageVersion{}, "", true},
		{"", ImageVersion{}, "", true},
		{"1.2.3.4.5", ImageVersion{}, "", true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v, want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.str {
			t.Errorf("ParseVersion(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
	}
}

// interopImageScript parses an MCUboot image with Python's struct and
// hashlib, following bootutil/image.h.
const interopImageScript = `
import hashlib, json, struct, sys
img = bytes.fromhex(json.load(sys.stdin))
magic, load, hdr, prot, size, flags, maj, mnr, rev, build = struct.unpack("<IIHHIIBBHI", img[:28])
assert magic == 0x96f3b83d
end = hdr + size + prot
tmagic, tot = struct.unpack("<HH", img[end:end+4])
assert tmagic == 0x6907 and end + tot == len(img)
p, tlvhash = end + 4, None
while p < end + tot:
    t, n = struct.unpack("<HH", img[p:p+4])
    if t == 0x10: tlvhash = img[p+4:p+4+n].hex()
    p += 4 + n
json.dump({"version": "%d.%d.%d.%d" % (maj, mnr, rev, build), "tlv": tlvhash,
           "sha256": hashlib.sha256(img[:end]).hexdigest()}, sys.stdout)
`

func TestInteropMCUbootImage(t *testing.T) {
	img := BuildImage(ImageVersion{3, 1, 4, 15}, bytes.Repeat([]byte("fw"), 5000))
	info, err := ParseImage(img)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Version, TLV, SHA256 string }
	python(t, interopImageScript, hex.EncodeToString(img), &out)
	if out.Version != "3.1.4.15" || out.TLV != out.SHA256 || out.TLV != hex.EncodeToString(info.Hash[:]) {
		t.Errorf("python parse of BuildImage = %+v, want version 3.1.4.15 and TLV = sha256 = %x", out, info.Hash)
	}
}

func FuzzParseImage(f *testing.F) {
	f.Add(BuildImage(ImageVersion{1, 0, 0, 0}, []byte("x")))
	f.Add(withProtectedTLVs([]byte("firmware")))
	f.Add([]byte{0x3d, 0xb8, 0xf3, 0x96})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseImage(b)
		if err != nil {
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("ParseImage error %v does not wrap ErrBadImage", err)
			}
			return
		}
		if info.Size != len(b) || sha256.Sum256(b[:info.HeaderSize+info.ImageSize+info.ProtectedTLVSize]) != info.Hash {
			t.Fatalf("ParseImage accepted an image whose hash TLV does not match: %+v", info)
		}
	})
}
