// SPDX-License-Identifier: Apache-2.0

package pdu

import (
	"errors"
	"fmt"
)

// Function codes used by fieldgate.
const (
	ReadCoils            byte = 0x01
	ReadDiscreteInputs   byte = 0x02
	ReadHoldingRegisters byte = 0x03
	ReadInputRegisters   byte = 0x04
	WriteSingleCoil      byte = 0x05
	WriteSingleRegister  byte = 0x06
	WriteMultipleCoils   byte = 0x0F
	WriteMultipleRegs    byte = 0x10
	ReadFileRecord       byte = 0x14
	WriteFileRecord      byte = 0x15
	Encapsulated         byte = 0x2B // MEI transport; 0x0E is Read Device Identification
	MEIReadDeviceID      byte = 0x0E
)

// Size limits from the Modbus application protocol and serial line specs.
const (
	MaxPDU = 253 // function code + data
	MaxRTU = 256 // unit + PDU + CRC
	MaxADU = 260 // MBAP header (7) + PDU
)

// ErrMalformed is wrapped by every decoding error: the bytes do not form a
// valid frame or PDU.
var ErrMalformed = errors.New("malformed modbus frame")

// PDU is a Modbus protocol data unit: a function code and its data.
type PDU struct {
	Func byte
	Data []byte
}

// Len is the encoded length of p (function code + data).
func (p PDU) Len() int { return 1 + len(p.Data) }

// Exception codes.
const (
	ExIllegalFunction    byte = 0x01
	ExIllegalDataAddress byte = 0x02
	ExIllegalDataValue   byte = 0x03
	ExDeviceFailure      byte = 0x04
	ExAcknowledge        byte = 0x05
	ExDeviceBusy         byte = 0x06
	ExMemoryParity       byte = 0x08
	ExGatewayPath        byte = 0x0A
	ExGatewayTarget      byte = 0x0B
)

// Exception is a Modbus exception response: the device understood the
// request and refused it.
type Exception struct {
	Func byte // the request's function code (without the 0x80 bit)
	Code byte
}

func (e *Exception) Error() string {
	return fmt.Sprintf("modbus exception 0x%02X (%s) to function 0x%02X", e.Code, ExceptionName(e.Code), e.Func)
}

// ExceptionName names an exception code as the Modbus specification does.
func ExceptionName(code byte) string {
	switch code {
	case ExIllegalFunction:
		return "illegal function"
	case ExIllegalDataAddress:
		return "illegal data address"
	case ExIllegalDataValue:
		return "illegal data value"
	case ExDeviceFailure:
		return "server device failure"
	case ExAcknowledge:
		return "acknowledge"
	case ExDeviceBusy:
		return "server device busy"
	case ExMemoryParity:
		return "memory parity error"
	case ExGatewayPath:
		return "gateway path unavailable"
	case ExGatewayTarget:
		return "gateway target device failed to respond"
	}
	return "unknown exception"
}

// ExceptionPDU returns the exception response to function fn.
func ExceptionPDU(fn, code byte) PDU { return PDU{Func: fn | 0x80, Data: []byte{code}} }

// CheckResponse checks that resp answers a request with function fn: it
// returns an *Exception for an exception response and an ErrMalformed error
// for a response to another function.
func CheckResponse(fn byte, resp PDU) error {
	if resp.Func == fn|0x80 {
		if len(resp.Data) != 1 {
			return fmt.Errorf("%w: exception response with %d data bytes", ErrMalformed, len(resp.Data))
		}
		return &Exception{Func: fn, Code: resp.Data[0]}
	}
	if resp.Func != fn {
		return fmt.Errorf("%w: response function 0x%02X to request 0x%02X", ErrMalformed, resp.Func, fn)
	}
	return nil
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func put16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }
