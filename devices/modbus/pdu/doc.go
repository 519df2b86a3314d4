// SPDX-License-Identifier: Apache-2.0

// Package pdu encodes and decodes the Modbus bytes that
// github.com/simonvetter/modbus does not cover: Read File Record (0x14),
// Write File Record (0x15) and Read Device Identification (0x2B/0x0E), the
// exception responses, and both ADU framings (MBAP for TCP, RTU with
// CRC-16/Modbus). The driver (package modbus) and the simulated device
// (package sim) share it, so both speak the same bytes; interop tests against
// pymodbus check that those bytes are the real ones.
//
// Every decoder reads untrusted bytes: it checks lengths before indexing,
// never allocates more than the frame holds, and returns an error wrapping
// ErrMalformed instead of panicking. Nothing here does I/O except ReadRTU and
// ReadMBAP, which read one frame from an io.Reader.
package pdu
