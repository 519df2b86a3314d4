// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// ErrorCode is the code carried by a TFTP ERROR packet.
type ErrorCode uint16

// Error codes (RFC 1350, RFC 2347).
const (
	ErrCodeUndefined   ErrorCode = 0
	ErrCodeNotFound    ErrorCode = 1
	ErrCodeAccess      ErrorCode = 2
	ErrCodeDiskFull    ErrorCode = 3
	ErrCodeIllegalOp   ErrorCode = 4
	ErrCodeUnknownTID  ErrorCode = 5
	ErrCodeFileExists  ErrorCode = 6
	ErrCodeNoSuchUser  ErrorCode = 7
	ErrCodeBadOptions  ErrorCode = 8
	maxPacket                    = 4 + MaxBlksize // the largest datagram TFTP allows
	defaultBlksize               = 512
	defaultTimeoutSecs           = 1
)

// Option limits (RFC 2348, RFC 2349, RFC 7440).
const (
	MinBlksize    = 8
	MaxBlksize    = 65464
	MaxWindowsize = 65535
	MaxTimeout    = 255
)

// ErrMalformed is wrapped by every decoding error: the bytes are not a TFTP
// packet this package understands.
var ErrMalformed = errors.New("malformed tftp packet")

// packet is one decoded TFTP datagram. Only the fields of its opcode are set.
type packet struct {
	op       uint16
	filename string    // RRQ, WRQ
	mode     string    // RRQ, WRQ, lower case
	opts     []option  // RRQ, WRQ, OACK, in wire order
	block    uint16    // DATA, ACK
	data     []byte    // DATA; aliases the datagram
	code     ErrorCode // ERROR
	msg      string    // ERROR
}

// option is one name/value pair of RFC 2347; names are lower case.
type option struct{ name, value string }

// decode parses one datagram. It never panics and never allocates more than
// the datagram's size; DATA payloads alias b.
func decode(b []byte) (packet, error) {
	if len(b) < 4 {
		return packet{}, fmt.Errorf("%w: %d bytes, want at least 4", ErrMalformed, len(b))
	}
	if len(b) > maxPacket {
		return packet{}, fmt.Errorf("%w: %d bytes, more than the %d TFTP allows", ErrMalformed, len(b), maxPacket)
	}
	p := packet{op: binary.BigEndian.Uint16(b)}
	switch p.op {
	case opRRQ, opWRQ:
		strs, err := cstrings(b[2:])
		if err != nil {
			return packet{}, err
		}
		if len(strs) < 2 {
			return packet{}, fmt.Errorf("%w: request without filename and mode", ErrMalformed)
		}
		if strs[0] == "" {
			return packet{}, fmt.Errorf("%w: empty filename", ErrMalformed)
		}
		p.filename, p.mode = strs[0], strings.ToLower(strs[1])
		// An odd trailing string (name without value) is ignored, as
		// tftp-hpa does; options are advisory.
		for i := 2; i+1 < len(strs); i += 2 {
			p.opts = append(p.opts, option{strings.ToLower(strs[i]), strs[i+1]})
		}
	case opOACK:
		strs, err := cstrings(b[2:])
		if err != nil {
			return packet{}, err
		}
		if len(strs)%2 != 0 {
			return packet{}, fmt.Errorf("%w: OACK option %q without a value", ErrMalformed, strs[len(strs)-1])
		}
		for i := 0; i+1 < len(strs); i += 2 {
			p.opts = append(p.opts, option{strings.ToLower(strs[i]), strs[i+1]})
		}
	case opDATA:
		p.block = binary.BigEndian.Uint16(b[2:])
		p.data = b[4:]
	case opACK:
		if len(b) != 4 {
			// Some stacks pad short datagrams; the ACK is the first 4 bytes.
			b = b[:4]
		}
		p.block = binary.BigEndian.Uint16(b[2:])
	case opERROR:
		p.code = ErrorCode(binary.BigEndian.Uint16(b[2:]))
		msg := b[4:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		p.msg = printable(msg)
	default:
		return packet{}, fmt.Errorf("%w: unknown opcode %d", ErrMalformed, p.op)
	}
	return p, nil
}

// cstrings splits NUL-terminated strings; the last one must be terminated.
func cstrings(b []byte) ([]string, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, fmt.Errorf("%w: strings not NUL-terminated", ErrMalformed)
	}
	parts := bytes.Split(b[:len(b)-1], []byte{0})
	out := make([]string, len(parts))
	for i, s := range parts {
		out[i] = string(s)
	}
	return out, nil
}

// printable keeps an untrusted message safe to log.
func printable(b []byte) string {
	const max = 200
	if len(b) > max {
		b = b[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, string(b))
}

func appendRequest(b []byte, op uint16, filename, mode string, opts []option) []byte {
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(append(b, filename...), 0)
	b = append(append(b, mode...), 0)
	return appendOptions(b, opts)
}

func appendOptions(b []byte, opts []option) []byte {
	for _, o := range opts {
		b = append(append(b, o.name...), 0)
		b = append(append(b, o.value...), 0)
	}
	return b
}

func appendOACK(b []byte, opts []option) []byte {
	return appendOptions(binary.BigEndian.AppendUint16(b, opOACK), opts)
}

func appendACK(b []byte, block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, opACK), block)
}

func appendDATA(b []byte, block uint16, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, opDATA), block)
	return append(b, data...)
}

func appendERROR(b []byte, code ErrorCode, msg string) []byte {
	if len(msg) > 200 {
		msg = msg[:200]
	}
	b = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, opERROR), uint16(code))
	return append(append(b, msg...), 0)
}

// params are the negotiated transfer parameters.
type params struct {
	blksize    int
	windowsize int
	timeout    int   // seconds, as negotiated; the local retransmission base
	tsize      int64 // -1 when unknown
}

func defaultParams() params {
	return params{blksize: defaultBlksize, windowsize: 1, timeout: defaultTimeoutSecs, tsize: -1}
}

// duplicate returns the name of the first option given more than once.
// RFC 2347 leaves no way to tell which of two values counts, so a server
// refuses such a request and a client such an OACK (error 8).
func duplicate(opts []option) (string, bool) {
	for i, o := range opts {
		for _, p := range opts[:i] {
			if p.name == o.name {
				return o.name, true
			}
		}
	}
	return "", false
}

// parseOption validates one option value. ok is false for values that do not
// parse or are out of range; a server ignores such options (atftp sends
// "tsize enable"), a client treats them in an OACK as a protocol error.
func parseOption(o option) (n int64, ok bool) {
	v, err := strconv.ParseInt(o.value, 10, 64)
	if err != nil {
		return 0, false
	}
	switch o.name {
	case "blksize":
		return v, v >= MinBlksize && v <= MaxBlksize
	case "windowsize":
		return v, v >= 1 && v <= MaxWindowsize
	case "timeout":
		return v, v >= 1 && v <= MaxTimeout
	case "tsize":
		return v, v >= 0
	}
	return 0, false
}
