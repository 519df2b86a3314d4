// SPDX-License-Identifier: Apache-2.0

package pdu

import "fmt"

// File-record geometry (Modbus application protocol 6.14/6.15).
const (
	RecordsPerFile = 10000 // registers in one file, numbered 0..9999
	MaxRecordRegs  = 122   // registers in a single-sub-request 0x15 PDU (byte count ≤ 0xFB)
	// MaxReadRecordRegs is the most registers one 0x14 sub-request can read:
	// the response's data length is at most 0xF5 ≥ 2 + 2·121.
	MaxReadRecordRegs = 121
	refType           = 0x06
)

// RecordRef names registers [Record, Record+Len) of File.
type RecordRef struct {
	File   uint16 // 1..65535
	Record uint16 // 0..9999
	Len    uint16 // registers
}

// Record is a RecordRef with its data (2·Len bytes).
type Record struct {
	File   uint16
	Record uint16
	Data   []byte
}

// Chunks splits the byte range [off, off+n) of a store that starts at file
// base into sub-requests of at most maxRegs registers that never cross a
// 10 000-register file. off and n must be even (registers are 16 bits); the
// byte at store offset x lives in file base+x/20000, record (x%20000)/2.
func Chunks(base uint16, off, n int64, maxRegs int) ([]RecordRef, error) {
	if base == 0 || off < 0 || n < 0 || off%2 != 0 || n%2 != 0 || maxRegs < 1 || maxRegs > MaxRecordRegs {
		return nil, fmt.Errorf("file-record chunks of [%d,+%d) from file %d by %d registers: invalid arguments", off, n, base, maxRegs)
	}
	var refs []RecordRef
	reg := off / 2
	end := (off + n) / 2
	for reg < end {
		file := int64(base) + reg/RecordsPerFile
		if file > 0xFFFF {
			return nil, fmt.Errorf("file-record chunks: byte %d is past file 65535", reg*2)
		}
		rec := reg % RecordsPerFile
		l := min(int64(maxRegs), end-reg, RecordsPerFile-rec)
		refs = append(refs, RecordRef{File: uint16(file), Record: uint16(rec), Len: uint16(l)})
		reg += l
	}
	return refs, nil
}

// Offset is the byte offset in a store starting at file base of ref's first
// register: ((file−base)·10000 + record)·2.
func Offset(base uint16, ref RecordRef) int64 {
	return (int64(ref.File-base)*RecordsPerFile + int64(ref.Record)) * 2
}

// EncodeWriteFileRecord builds a 0x15 request (the response echoes it).
func EncodeWriteFileRecord(recs []Record) (PDU, error) {
	data := []byte{0}
	for _, r := range recs {
		if len(r.Data)%2 != 0 || len(r.Data) == 0 {
			return PDU{}, fmt.Errorf("encode write file record: record %d/%d has %d bytes, want a positive even number", r.File, r.Record, len(r.Data))
		}
		data = append(data, refType)
		data = put16(data, r.File)
		data = put16(data, r.Record)
		data = put16(data, uint16(len(r.Data)/2))
		data = append(data, r.Data...)
	}
	if len(data)-1 > 0xFB {
		return PDU{}, fmt.Errorf("encode write file record: %d data bytes exceed one PDU", len(data)-1)
	}
	data[0] = byte(len(data) - 1)
	return PDU{Func: WriteFileRecord, Data: data}, nil
}

// DecodeWriteFileRecord parses the data of a 0x15 request or response.
// The returned records alias data.
func DecodeWriteFileRecord(data []byte) ([]Record, error) {
	body, err := byteCounted(data, 7, 0xFB, "write file record")
	if err != nil {
		return nil, err
	}
	var recs []Record
	for len(body) > 0 {
		if len(body) < 7 {
			return nil, fmt.Errorf("%w: write file record: %d trailing bytes", ErrMalformed, len(body))
		}
		if body[0] != refType {
			return nil, fmt.Errorf("%w: write file record: reference type 0x%02X, want 0x06", ErrMalformed, body[0])
		}
		r := Record{File: be16(body[1:]), Record: be16(body[3:])}
		n := int(be16(body[5:])) * 2
		body = body[7:]
		if n == 0 || n > len(body) {
			return nil, fmt.Errorf("%w: write file record: record length %d bytes, %d left", ErrMalformed, n, len(body))
		}
		r.Data = body[:n:n]
		body = body[n:]
		recs = append(recs, r)
	}
	return recs, nil
}

// EncodeReadFileRecord builds a 0x14 request.
func EncodeReadFileRecord(refs []RecordRef) (PDU, error) {
	data := []byte{byte(7 * len(refs))}
	total := 2 // response: function + byte count
	for _, r := range refs {
		if r.Len == 0 {
			return PDU{}, fmt.Errorf("encode read file record: record %d/%d has length 0", r.File, r.Record)
		}
		data = append(data, refType)
		data = put16(data, r.File)
		data = put16(data, r.Record)
		data = put16(data, r.Len)
		total += 2 + 2*int(r.Len)
	}
	if len(refs) == 0 || 7*len(refs) > 0xF5 || total-2 > 0xF5 {
		return PDU{}, fmt.Errorf("encode read file record: %d sub-requests would need a %d-byte response, max %d", len(refs), total, MaxPDU)
	}
	return PDU{Func: ReadFileRecord, Data: data}, nil
}

// DecodeReadFileRecordRequest parses the data of a 0x14 request.
func DecodeReadFileRecordRequest(data []byte) ([]RecordRef, error) {
	body, err := byteCounted(data, 7, 0xF5, "read file record request")
	if err != nil {
		return nil, err
	}
	if len(body)%7 != 0 {
		return nil, fmt.Errorf("%w: read file record request: byte count %d is not a multiple of 7", ErrMalformed, len(body))
	}
	refs := make([]RecordRef, 0, len(body)/7)
	for ; len(body) > 0; body = body[7:] {
		if body[0] != refType {
			return nil, fmt.Errorf("%w: read file record request: reference type 0x%02X, want 0x06", ErrMalformed, body[0])
		}
		refs = append(refs, RecordRef{File: be16(body[1:]), Record: be16(body[3:]), Len: be16(body[5:])})
	}
	return refs, nil
}

// EncodeReadFileRecordResponse builds the 0x14 response carrying one data
// block per sub-request.
func EncodeReadFileRecordResponse(blocks [][]byte) (PDU, error) {
	data := []byte{0}
	for _, b := range blocks {
		if len(b)%2 != 0 || len(b)+1 > 0xFF {
			return PDU{}, fmt.Errorf("encode read file record response: block of %d bytes", len(b))
		}
		data = append(data, byte(len(b)+1), refType)
		data = append(data, b...)
	}
	if len(data)-1 > 0xF5 {
		return PDU{}, fmt.Errorf("encode read file record response: %d data bytes exceed one PDU", len(data)-1)
	}
	data[0] = byte(len(data) - 1)
	return PDU{Func: ReadFileRecord, Data: data}, nil
}

// DecodeReadFileRecordResponse parses the data of a 0x14 response into one
// data block per sub-request. The blocks alias data.
func DecodeReadFileRecordResponse(data []byte) ([][]byte, error) {
	body, err := byteCounted(data, 3, 0xF5, "read file record response")
	if err != nil {
		return nil, err
	}
	var blocks [][]byte
	for len(body) > 0 {
		if len(body) < 2 {
			return nil, fmt.Errorf("%w: read file record response: %d trailing bytes", ErrMalformed, len(body))
		}
		n := int(body[0])
		if n < 1 || n%2 != 1 || n > len(body)-1 {
			return nil, fmt.Errorf("%w: read file record response: sub-response length %d, %d bytes left", ErrMalformed, n, len(body)-1)
		}
		if body[1] != refType {
			return nil, fmt.Errorf("%w: read file record response: reference type 0x%02X, want 0x06", ErrMalformed, body[1])
		}
		blocks = append(blocks, body[2:1+n:1+n])
		body = body[1+n:]
	}
	return blocks, nil
}

// byteCounted checks data = count byte + count bytes, with min ≤ count ≤ max.
func byteCounted(data []byte, minN, maxN int, what string) ([]byte, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("%w: %s: no byte count", ErrMalformed, what)
	}
	n := int(data[0])
	if n < minN || n > maxN || n != len(data)-1 {
		return nil, fmt.Errorf("%w: %s: byte count %d with %d data bytes (allowed %d..%d)", ErrMalformed, what, n, len(data)-1, minN, maxN)
	}
	return data[1:], nil
}
