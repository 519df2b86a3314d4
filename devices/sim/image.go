// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// ImageMagic starts the header line of every simulated firmware image.
const ImageMagic = "FGSIM1"

// maxHeaderLen bounds the header line so a parser never scans a whole
// image looking for a newline.
const maxHeaderLen = 512

// Header is the parsed first line of a simulated firmware image:
//
//	FGSIM1 hw=<hardware-id> version=<version> size=<total bytes incl. header>\n
type Header struct {
	HardwareID string
	Version    string
	Size       int // total image size in bytes, header line included
	Len        int // length of the header line, newline included
}

// ErrBadImage is wrapped by every image-header and boot-check error.
var ErrBadImage = errors.New("bad image")

// MakeImage returns a simulated firmware image for hardware hw at version,
// size bytes long including its header line. The payload is deterministic
// pseudo-random bytes seeded from hw and version, so the same arguments
// always give the same image (and the same sha256). If size is smaller than
// the header line, the image is just the header (with a size that says so).
func MakeImage(hw, version string, size int) []byte {
	if size < 0 {
		size = 0
	}
	hdr := headerLine(hw, version, size)
	for size < len(hdr) {
		size = len(hdr)
		hdr = headerLine(hw, version, size)
	}
	img := make([]byte, size)
	copy(img, hdr)
	seed := sha256.Sum256([]byte("fieldgate-sim\x00" + hw + "\x00" + version))
	rng := rand.NewChaCha8(seed)
	_, _ = rng.Read(img[len(hdr):])
	return img
}

func headerLine(hw, version string, size int) string {
	return fmt.Sprintf("%s hw=%s version=%s size=%d\n", ImageMagic, hw, version, size)
}

// ParseImageHeader parses the header line at the start of b. It checks the
// syntax only; VerifyImage also checks the hardware id and the length.
func ParseImageHeader(b []byte) (Header, error) {
	n := bytes.IndexByte(b[:min(len(b), maxHeaderLen)], '\n')
	if n < 0 {
		return Header{}, fmt.Errorf("parse image header: %w: no header line in the first %d bytes", ErrBadImage, maxHeaderLen)
	}
	fields := strings.Split(string(b[:n]), " ")
	if len(fields) != 4 || fields[0] != ImageMagic {
		return Header{}, fmt.Errorf("parse image header: %w: want %q, got %q", ErrBadImage, ImageMagic+" hw=… version=… size=…", clip(string(b[:n]), 80))
	}
	h := Header{Len: n + 1}
	for i, key := range []string{"hw", "version", "size"} {
		k, v, ok := strings.Cut(fields[i+1], "=")
		if !ok || k != key || v == "" {
			return Header{}, fmt.Errorf("parse image header: %w: field %d is %q, want %s=<value>", ErrBadImage, i+2, clip(fields[i+1], 40), key)
		}
		switch key {
		case "hw":
			h.HardwareID = v
		case "version":
			h.Version = v
		case "size":
			size, err := strconv.Atoi(v)
			if err != nil || size < h.Len {
				return Header{}, fmt.Errorf("parse image header: %w: size %q is not a whole number ≥ the header length %d", ErrBadImage, clip(v, 20), h.Len)
			}
			h.Size = size
		}
	}
	return h, nil
}

// VerifyImage is the simulated boot check: img must carry a well-formed
// header for hardware hw, and be exactly as long as the header says.
func VerifyImage(img []byte, hw string) (Header, error) {
	h, err := ParseImageHeader(img)
	if err != nil {
		return Header{}, err
	}
	if h.HardwareID != hw {
		return h, fmt.Errorf("verify image: %w: built for hardware %q, this device is %q", ErrBadImage, h.HardwareID, hw)
	}
	if len(img) != h.Size {
		return h, fmt.Errorf("verify image: %w: header says %d bytes, got %d", ErrBadImage, h.Size, len(img))
	}
	return h, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
