// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is the SMP operation code in the low three bits of the header's first
// byte.
type Op uint8

// SMP operations.
const (
	OpRead     Op = 0
	OpReadRsp  Op = 1
	OpWrite    Op = 2
	OpWriteRsp Op = 3
)

// Management groups and command ids used by fieldgate.
const (
	GroupOS    uint16 = 0
	GroupImage uint16 = 1

	CmdOSEcho   uint8 = 0
	CmdOSReset  uint8 = 5
	CmdOSParams uint8 = 6
	CmdOSInfo   uint8 = 7

	CmdImageState  uint8 = 0
	CmdImageUpload uint8 = 1
	CmdImageErase  uint8 = 5
)

// HeaderSize is the length of the SMP header.
const HeaderSize = 8

// MaxPacket is the largest SMP packet this package accepts: the header's
// length field is 16 bits.
const MaxPacket = HeaderSize + 0xffff

// Header is the 8-byte big-endian SMP header.
type Header struct {
	Op      Op
	Version uint8 // 0: SMP version 1 (what fieldgate sends), 1: version 2
	Flags   uint8
	Len     uint16 // length of the CBOR body
	Group   uint16
	Seq     uint8
	ID      uint8
}

// ErrMalformed is wrapped by every error about bytes that are not a valid
// SMP packet or serial frame.
var ErrMalformed = errors.New("malformed SMP data")

// AppendHeader appends the encoded header to b.
func (h Header) AppendHeader(b []byte) []byte {
	return append(b,
		byte(h.Op&7)|(h.Version&3)<<3,
		h.Flags,
		byte(h.Len>>8), byte(h.Len),
		byte(h.Group>>8), byte(h.Group),
		h.Seq, h.ID)
}

// String describes the header for logs and errors.
func (h Header) String() string {
	return fmt.Sprintf("op=%d v=%d group=%d id=%d seq=%d len=%d", h.Op, h.Version+1, h.Group, h.ID, h.Seq, h.Len)
}

// DecodePacket splits an SMP packet into its header and CBOR body. It
// checks the header's length field against the bytes present and the
// reserved bits; it does not decode the body.
func DecodePacket(p []byte) (Header, []byte, error) {
	if len(p) < HeaderSize {
		return Header{}, nil, fmt.Errorf("decode packet: %d bytes, shorter than the %d-byte header: %w", len(p), HeaderSize, ErrMalformed)
	}
	h := Header{
		Op:      Op(p[0] & 7),
		Version: p[0] >> 3 & 3,
		Flags:   p[1],
		Len:     binary.BigEndian.Uint16(p[2:4]),
		Group:   binary.BigEndian.Uint16(p[4:6]),
		Seq:     p[6],
		ID:      p[7],
	}
	if p[0]>>5 != 0 {
		return h, nil, fmt.Errorf("decode packet: reserved bits set in 0x%02x: %w", p[0], ErrMalformed)
	}
	if got := len(p) - HeaderSize; got != int(h.Len) {
		return h, nil, fmt.Errorf("decode packet: header says %d body bytes, packet has %d: %w", h.Len, got, ErrMalformed)
	}
	return h, p[HeaderSize:], nil
}

// EncodePacket returns header h followed by body, with h.Len set.
func EncodePacket(h Header, body []byte) ([]byte, error) {
	if len(body) > 0xffff {
		return nil, fmt.Errorf("encode packet: body of %d bytes exceeds 65535", len(body))
	}
	h.Len = uint16(len(body))
	return append(h.AppendHeader(make([]byte, 0, HeaderSize+len(body))), body...), nil
}
