// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// MCUboot image format constants (bootutil/image.h). Images are
// little-endian, as the targets are.
const (
	ImageMagic       = 0x96f3b83d
	TLVInfoMagic     = 0x6907 // unprotected TLV area
	TLVProtInfoMagic = 0x6908 // protected TLV area (covered by the hash)
	TLVSHA256        = 0x10

	imageHeaderLen = 32
	tlvInfoLen     = 4
	tlvHeaderLen   = 4
	// BuildHeaderSize is the header size BuildImage uses, imgtool's usual
	// --header-size for Zephyr.
	BuildHeaderSize = 0x200
)

// ImageVersion is MCUboot's image version.
type ImageVersion struct {
	Major, Minor uint8
	Revision     uint16
	Build        uint32
}

// String formats v as Zephyr's image list does: "major.minor.revision",
// with ".build" appended when the build number is not zero.
func (v ImageVersion) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Revision)
	if v.Build != 0 {
		s += "." + strconv.FormatUint(uint64(v.Build), 10)
	}
	return s
}

// ParseVersion parses "major[.minor[.revision[.build]]]"; imgtool's
// "major.minor.revision+build" is accepted too.
func ParseVersion(s string) (ImageVersion, error) {
	parts := strings.Split(strings.Replace(s, "+", ".", 1), ".")
	if s == "" || len(parts) > 4 {
		return ImageVersion{}, fmt.Errorf("parse image version %q: want major.minor.revision[.build]", s)
	}
	bits := []int{8, 8, 16, 32}
	var n [4]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, bits[i])
		if err != nil {
			return ImageVersion{}, fmt.Errorf("parse image version %q: component %d: %w", s, i+1, err)
		}
		n[i] = v
	}
	return ImageVersion{uint8(n[0]), uint8(n[1]), uint16(n[2]), uint32(n[3])}, nil
}

// ImageInfo is what ParseImage reads from an MCUboot image.
type ImageInfo struct {
	HeaderSize        int
	ImageSize         int // body bytes after the header
	ProtectedTLVSize  int
	Flags             uint32
	LoadAddr          uint32
	Version           ImageVersion
	Hash              [sha256.Size]byte // the SHA-256 TLV: what the device reports as the slot's hash
	Size              int               // header + body + TLV areas = the file size
	UnprotectedTLVLen int
}

// ParseImage checks that b is one complete MCUboot image and returns its
// header fields and SHA-256 TLV. The TLV must equal the SHA-256 of header,
// body and protected TLVs, otherwise MCUboot would refuse to boot it; such
// an image is refused here with an error wrapping ErrBadImage. Signatures
// are not checked (fieldgate does not hold the device's keys). Trailing
// bytes after the TLV area (a padded image) are refused.
func ParseImage(b []byte) (ImageInfo, error) {
	var info ImageInfo
	bad := func(format string, args ...any) (ImageInfo, error) {
		return ImageInfo{}, fmt.Errorf("parse MCUboot image: "+format+": %w", append(args, ErrBadImage)...)
	}
	if len(b) < imageHeaderLen {
		return bad("%d bytes, shorter than the header", len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint32(b); m != ImageMagic {
		return bad("magic 0x%08x, want 0x%08x", m, uint32(ImageMagic))
	}
	info.LoadAddr = le.Uint32(b[4:])
	info.HeaderSize = int(le.Uint16(b[8:]))
	info.ProtectedTLVSize = int(le.Uint16(b[10:]))
	info.ImageSize = int(le.Uint32(b[12:]))
	info.Flags = le.Uint32(b[16:])
	info.Version = ImageVersion{b[20], b[21], le.Uint16(b[22:]), le.Uint32(b[24:])}
	if info.HeaderSize < imageHeaderLen {
		return bad("header size %d below %d", info.HeaderSize, imageHeaderLen)
	}
	end := int64(info.HeaderSize) + int64(info.ImageSize)
	if end > int64(len(b)) {
		return bad("header %d + body %d bytes exceed the %d-byte file", info.HeaderSize, info.ImageSize, len(b))
	}
	off := int(end)
	var hash []byte
	if info.ProtectedTLVSize > 0 {
		n, h, err := parseTLVArea(b[off:], TLVProtInfoMagic)
		if err != nil {
			return bad("protected TLVs at %d: %v", off, err)
		}
		if n != info.ProtectedTLVSize {
			return bad("protected TLV area is %d bytes, header says %d", n, info.ProtectedTLVSize)
		}
		if h != nil {
			return bad("SHA-256 TLV in the protected area")
		}
		off += n
	}
	hashed := off
	n, hash, err := parseTLVArea(b[off:], TLVInfoMagic)
	if err != nil {
		return bad("TLVs at %d: %v", off, err)
	}
	info.UnprotectedTLVLen = n
	off += n
	if off != len(b) {
		return bad("%d bytes after the TLV area", len(b)-off)
	}
	if hash == nil {
		return bad("no SHA-256 TLV")
	}
	copy(info.Hash[:], hash)
	if sum := sha256.Sum256(b[:hashed]); !bytes.Equal(sum[:], hash) {
		return bad("SHA-256 TLV %x does not match the image body (%x)", hash, sum)
	}
	info.Size = len(b)
	return info, nil
}

// parseTLVArea reads one TLV area (info header then TLVs) from the start of
// b and returns its length and the SHA-256 TLV value if present.
func parseTLVArea(b []byte, magic uint16) (int, []byte, error) {
	if len(b) < tlvInfoLen {
		return 0, nil, fmt.Errorf("%d bytes, shorter than the TLV info", len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint16(b); m != magic {
		return 0, nil, fmt.Errorf("TLV info magic 0x%04x, want 0x%04x", m, magic)
	}
	tot := int(le.Uint16(b[2:]))
	if tot < tlvInfoLen || tot > len(b) {
		return 0, nil, fmt.Errorf("TLV area length %d out of range (have %d bytes)", tot, len(b))
	}
	var hash []byte
	for p := tlvInfoLen; p < tot; {
		if tot-p < tlvHeaderLen {
			return 0, nil, fmt.Errorf("truncated TLV header at %d", p)
		}
		typ, n := le.Uint16(b[p:]), int(le.Uint16(b[p+2:]))
		p += tlvHeaderLen
		if n > tot-p {
			return 0, nil, fmt.Errorf("TLV 0x%02x of %d bytes overruns the area", typ, n)
		}
		if typ == TLVSHA256 {
			if hash != nil {
				return 0, nil, fmt.Errorf("two SHA-256 TLVs")
			}
			if n != sha256.Size {
				return 0, nil, fmt.Errorf("SHA-256 TLV of %d bytes", n)
			}
			hash = b[p : p+n]
		}
		p += n
	}
	return tot, hash, nil
}

// BuildImage returns a valid, unsigned MCUboot image holding payload: a
// BuildHeaderSize header with version v, the payload, and a TLV area with
// the SHA-256 TLV. It is for tests, the simulator and demo firmware.
func BuildImage(v ImageVersion, payload []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, BuildHeaderSize, BuildHeaderSize+len(payload)+tlvInfoLen+tlvHeaderLen+sha256.Size)
	le.PutUint32(b, ImageMagic)
	le.PutUint16(b[8:], BuildHeaderSize)
	le.PutUint32(b[12:], uint32(len(payload)))
	b[20], b[21] = v.Major, v.Minor
	le.PutUint16(b[22:], v.Revision)
	le.PutUint32(b[24:], v.Build)
	b = append(b, payload...)
	sum := sha256.Sum256(b)
	b = le.AppendUint16(b, TLVInfoMagic)
	b = le.AppendUint16(b, tlvInfoLen+tlvHeaderLen+sha256.Size)
	b = le.AppendUint16(b, TLVSHA256)
	b = le.AppendUint16(b, sha256.Size)
	return append(b, sum[:]...)
}
