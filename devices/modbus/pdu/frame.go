// SPDX-License-Identifier: Apache-2.0

package pdu

import (
	"errors"
	"fmt"
	"io"
)

// ErrCRC is wrapped when an RTU frame's CRC does not match its bytes.
var ErrCRC = errors.New("modbus rtu crc mismatch")

// AppendRTU appends the RTU ADU of p for unit (address, PDU, CRC low byte
// first) to dst.
func AppendRTU(dst []byte, unit byte, p PDU) []byte {
	start := len(dst)
	dst = append(dst, unit, p.Func)
	dst = append(dst, p.Data...)
	crc := CRC16(dst[start:])
	return append(dst, byte(crc), byte(crc>>8))
}

// ParseRTU checks the CRC of one whole RTU frame and splits it. The PDU's
// data aliases frame.
func ParseRTU(frame []byte) (unit byte, p PDU, err error) {
	if len(frame) < 4 || len(frame) > MaxRTU {
		return 0, PDU{}, fmt.Errorf("%w: rtu frame of %d bytes", ErrMalformed, len(frame))
	}
	n := len(frame) - 2
	if got, want := uint16(frame[n])|uint16(frame[n+1])<<8, CRC16(frame[:n]); got != want {
		return 0, PDU{}, fmt.Errorf("%w: got 0x%04X, computed 0x%04X", ErrCRC, got, want)
	}
	return frame[0], PDU{Func: frame[1], Data: frame[2:n:n]}, nil
}

// RTUFrameLen returns the total length (with CRC) of the RTU frame starting
// at b, or 0 if more bytes are needed to tell. RTU has no length field, so
// the length follows from the function code and, for variable-length PDUs,
// a byte count; response says whether b is a response (true) or a request.
// Function codes it does not know are an error: the caller resynchronises on
// line silence.
func RTUFrameLen(b []byte, response bool) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fn := b[1]
	need := func(i int) bool { return len(b) <= i }
	var n int
	switch {
	case response && fn&0x80 != 0:
		n = 5
	case fn == ReadCoils, fn == ReadDiscreteInputs, fn == ReadHoldingRegisters, fn == ReadInputRegisters:
		if !response {
			n = 8
			break
		}
		if need(2) {
			return 0, nil
		}
		n = 3 + int(b[2]) + 2
	case fn == WriteSingleCoil, fn == WriteSingleRegister:
		n = 8
	case fn == WriteMultipleCoils, fn == WriteMultipleRegs:
		if response {
			n = 8
			break
		}
		if need(6) {
			return 0, nil
		}
		n = 7 + int(b[6]) + 2
	case fn == ReadFileRecord, fn == WriteFileRecord:
		if need(2) {
			return 0, nil
		}
		n = 3 + int(b[2]) + 2
	case fn == Encapsulated:
		if !response {
			n = 7
			break
		}
		// unit, 0x2B, 0x0E, code, conformity, more, next, count, objects…
		if need(7) {
			return 0, nil
		}
		if b[2] != MEIReadDeviceID {
			return 0, fmt.Errorf("%w: rtu 0x2B response with MEI type 0x%02X", ErrMalformed, b[2])
		}
		i, count := 8, int(b[7])
		for range count {
			if need(i + 1) {
				return 0, nil
			}
			i += 2 + int(b[i+1])
			if i+2 > MaxRTU {
				break
			}
		}
		n = i + 2
	default:
		return 0, fmt.Errorf("%w: rtu frame with unknown function code 0x%02X", ErrMalformed, fn)
	}
	if n > MaxRTU {
		return 0, fmt.Errorf("%w: rtu frame of %d bytes (max %d)", ErrMalformed, n, MaxRTU)
	}
	return n, nil
}

// ReadRTU reads one RTU frame from r, using RTUFrameLen to know where it
// ends, and checks its CRC. A reader that returns (0, nil) is retried; the
// caller bounds the wait with a deadline on r.
func ReadRTU(r io.Reader, response bool) (unit byte, p PDU, err error) {
	buf := make([]byte, 0, MaxRTU)
	want := 0
	for want == 0 || len(buf) < want {
		ask := 2
		if want > 0 {
			ask = want - len(buf)
		} else if len(buf) >= 2 {
			ask = 1
		}
		k, err := r.Read(buf[len(buf) : len(buf)+ask])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, PDU{}, err
		}
		if want == 0 {
			if want, err = RTUFrameLen(buf, response); err != nil {
				return 0, PDU{}, err
			}
		}
	}
	return ParseRTU(buf)
}

// MBAP is the Modbus TCP application header.
type MBAP struct {
	Txn  uint16
	Unit byte
}

// AppendMBAP appends the MBAP ADU of p to dst.
func AppendMBAP(dst []byte, h MBAP, p PDU) []byte {
	dst = put16(dst, h.Txn)
	dst = put16(dst, 0)
	dst = put16(dst, uint16(2+len(p.Data)))
	dst = append(dst, h.Unit, p.Func)
	return append(dst, p.Data...)
}

// ParseMBAP splits one whole MBAP ADU. The PDU's data aliases adu.
func ParseMBAP(adu []byte) (MBAP, PDU, error) {
	if len(adu) < 8 || len(adu) > MaxADU {
		return MBAP{}, PDU{}, fmt.Errorf("%w: mbap adu of %d bytes", ErrMalformed, len(adu))
	}
	if proto := be16(adu[2:]); proto != 0 {
		return MBAP{}, PDU{}, fmt.Errorf("%w: mbap protocol id %d, want 0", ErrMalformed, proto)
	}
	if l := int(be16(adu[4:])); l != len(adu)-6 {
		return MBAP{}, PDU{}, fmt.Errorf("%w: mbap length %d, frame has %d", ErrMalformed, l, len(adu)-6)
	}
	return MBAP{Txn: be16(adu), Unit: adu[6]}, PDU{Func: adu[7], Data: adu[8:len(adu):len(adu)]}, nil
}

// ReadMBAP reads one MBAP ADU from r. It rejects a length field outside
// 2..254 before reading the body, so a hostile peer cannot make it wait for
// or allocate more than one ADU.
func ReadMBAP(r io.Reader) (MBAP, PDU, error) {
	buf := make([]byte, MaxADU)
	if _, err := io.ReadFull(r, buf[:6]); err != nil {
		return MBAP{}, PDU{}, err
	}
	l := int(be16(buf[4:]))
	if l < 2 || 6+l > MaxADU {
		return MBAP{}, PDU{}, fmt.Errorf("%w: mbap length field %d (allowed 2..%d)", ErrMalformed, l, MaxADU-6)
	}
	if _, err := io.ReadFull(r, buf[6:6+l]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return MBAP{}, PDU{}, err
	}
	return ParseMBAP(buf[:6+l])
}
