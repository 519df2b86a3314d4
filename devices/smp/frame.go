// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/fieldgate/fieldgate/devices/internal/crc16"
)

// Serial framing markers: a packet's first line starts with FrameStart, its
// continuation lines with FrameCont. Any other line on the console is log
// output and is skipped.
var (
	FrameStart = []byte{0x06, 0x09}
	FrameCont  = []byte{0x04, 0x14}
)

// MaxLine is the longest console line of a frame, newline included, and
// lineB64 the base64 characters that fit in it beside marker and newline
// (a multiple of 4, so every line decodes on its own as Zephyr does).
const (
	MaxLine = 127
	lineB64 = MaxLine - 3
)

// maxLogLine bounds how much of a console line without a newline the
// decoder buffers; longer lines are log noise and are dropped.
const maxLogLine = 4096

// CRC16 returns the CRC-16/XMODEM (CCITT polynomial 0x1021, initial value 0,
// no reflection) of p, the checksum of SMP serial frames: the same CRC the
// XMODEM blocks carry.
func CRC16(p []byte) uint16 { return crc16.XMODEM(p) }

// EncodeFrame returns the console lines carrying one SMP packet:
// base64(len16be(len(pkt)+2) | pkt | crc16be(pkt)) cut into lines of at most
// MaxLine bytes, the first marked FrameStart, the rest FrameCont, each
// ending in '\n'.
func EncodeFrame(pkt []byte) ([]byte, error) {
	if len(pkt)+2 > 0xffff {
		return nil, fmt.Errorf("encode frame: packet of %d bytes too long", len(pkt))
	}
	raw := make([]byte, 0, len(pkt)+4)
	raw = binary.BigEndian.AppendUint16(raw, uint16(len(pkt)+2))
	raw = append(raw, pkt...)
	raw = binary.BigEndian.AppendUint16(raw, CRC16(pkt))
	b64 := base64.StdEncoding.EncodeToString(raw)
	out := make([]byte, 0, len(b64)+(len(b64)/lineB64+1)*3)
	for i := 0; i < len(b64); i += lineB64 {
		if i == 0 {
			out = append(out, FrameStart...)
		} else {
			out = append(out, FrameCont...)
		}
		out = append(out, b64[i:min(i+lineB64, len(b64))]...)
		out = append(out, '\n')
	}
	return out, nil
}

// FrameLen returns the number of bytes EncodeFrame produces for a packet of
// n bytes: what one packet costs on the line.
func FrameLen(n int) int {
	b := base64.StdEncoding.EncodedLen(n + 4)
	lines := (b + lineB64 - 1) / lineB64
	return b + 3*lines
}

// FrameDecoder reassembles SMP packets from console bytes, skipping log
// lines. It keeps at most one frame and one line in memory. The zero value
// is ready to use; it is not safe for concurrent use.
type FrameDecoder struct {
	// Log, if set, receives each skipped console line (without newline).
	Log func(line []byte)

	line    []byte
	skip    bool // dropping the rest of an overlong line
	inFrame bool
	want    int // frame length field: packet + CRC
	buf     []byte
}

// Feed consumes console bytes and calls emit for every complete packet (err
// nil) and for every broken frame (pkt nil, err wrapping ErrMalformed). A
// broken frame is dropped; decoding continues with the next line.
func (d *FrameDecoder) Feed(p []byte, emit func(pkt []byte, err error)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.appendLine(p)
			return
		}
		d.appendLine(p[:i])
		p = p[i+1:]
		if !d.skip {
			d.handleLine(bytes.TrimSuffix(d.line, []byte{'\r'}), emit)
		}
		d.line, d.skip = d.line[:0], false
	}
}

func (d *FrameDecoder) appendLine(p []byte) {
	if d.skip {
		return
	}
	if len(d.line)+len(p) > maxLogLine {
		d.skip, d.line = true, d.line[:0]
		return
	}
	d.line = append(d.line, p...)
}

func (d *FrameDecoder) handleLine(line []byte, emit func([]byte, error)) {
	switch {
	case bytes.HasPrefix(line, FrameStart):
		d.inFrame, d.want, d.buf = true, -1, d.buf[:0]
	case bytes.HasPrefix(line, FrameCont) && d.inFrame:
	default:
		if d.Log != nil {
			d.Log(line)
		}
		return
	}
	fail := func(format string, args ...any) {
		d.inFrame = false
		emit(nil, fmt.Errorf("decode frame: "+format+": %w", append(args, ErrMalformed)...))
	}
	body := line[2:]
	n := base64.StdEncoding.DecodedLen(len(body))
	start := len(d.buf)
	d.buf = append(d.buf, make([]byte, n)...)
	m, err := base64.StdEncoding.Decode(d.buf[start:], body)
	if err != nil {
		fail("bad base64: %v", err)
		return
	}
	d.buf = d.buf[:start+m]
	if d.want < 0 && len(d.buf) >= 2 {
		d.want = int(binary.BigEndian.Uint16(d.buf))
		if d.want < 2 {
			fail("length field %d shorter than the CRC", d.want)
			return
		}
	}
	if d.want < 0 || len(d.buf) < 2+d.want {
		return
	}
	d.inFrame = false
	if len(d.buf) > 2+d.want {
		fail("%d bytes after the %d announced", len(d.buf)-2-d.want, d.want)
		return
	}
	pkt := d.buf[2 : len(d.buf)-2]
	got, want := binary.BigEndian.Uint16(d.buf[len(d.buf)-2:]), CRC16(pkt)
	if got != want {
		d.inFrame = true // so that fail reports and resets uniformly
		fail("CRC 0x%04x, computed 0x%04x", got, want)
		return
	}
	emit(bytes.Clone(pkt), nil)
}
