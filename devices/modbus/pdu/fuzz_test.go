// SPDX-License-Identifier: Apache-2.0

package pdu

import (
	"bytes"
	"testing"
)

func rtuSeeds() [][]byte {
	devid, _ := EncodeDeviceIDResponse(DeviceIDResponse{Code: 1, Objects: []Object{{0, []byte("v")}, {1, []byte("p")}, {2, []byte("1.0")}}})
	wfr, _ := EncodeWriteFileRecord([]Record{{File: 1, Record: 0, Data: []byte{1, 2, 3, 4}}})
	rfr, _ := EncodeReadFileRecordResponse([][]byte{{1, 2}, {3, 4}})
	return [][]byte{
		AppendRTU(nil, 1, devid),
		AppendRTU(nil, 1, wfr),
		AppendRTU(nil, 1, rfr),
		AppendRTU(nil, 1, ExceptionPDU(WriteFileRecord, ExDeviceBusy)),
		AppendRTU(nil, 1, PDU{Func: ReadHoldingRegisters, Data: []byte{2, 0, 1}}),
		AppendRTU(nil, 1, EncodeDeviceIDRequest(DevIDBasic, 0)),
		{1, 0x2B, 0x0E, 1, 0x81, 0, 0, 200, 0, 255},
	}
}

// FuzzReadRTU feeds arbitrary bytes to the RTU frame reader as both a
// response and a request stream; it must never panic, never read past one
// frame, and every frame it accepts must re-encode to the same bytes.
func FuzzReadRTU(f *testing.F) {
	for _, s := range rtuSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, response := range []bool{true, false} {
			r := bytes.NewReader(b)
			unit, p, err := ReadRTU(r, response)
			if err != nil {
				continue
			}
			used := len(b) - r.Len()
			if used > MaxRTU {
				t.Fatalf("ReadRTU consumed %d bytes, max %d", used, MaxRTU)
			}
			if again := AppendRTU(nil, unit, p); !bytes.Equal(again, b[:used]) {
				t.Fatalf("ReadRTU(% X) re-encodes to % X", b[:used], again)
			}
			decodeAll(p)
		}
	})
}

// FuzzReadMBAP does the same for Modbus TCP ADUs.
func FuzzReadMBAP(f *testing.F) {
	for _, s := range rtuSeeds() {
		unit, p, _ := ParseRTU(s)
		f.Add(AppendMBAP(nil, MBAP{Txn: 1, Unit: unit}, p))
	}
	f.Add([]byte{0, 1, 0, 0, 0xFF, 0xFF, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, p, err := ReadMBAP(r)
		if err != nil {
			return
		}
		used := len(b) - r.Len()
		if again := AppendMBAP(nil, h, p); !bytes.Equal(again, b[:used]) {
			t.Fatalf("ReadMBAP(% X) re-encodes to % X", b[:used], again)
		}
		decodeAll(p)
	})
}

// FuzzDecode runs every PDU decoder over arbitrary data; accepted inputs
// must round-trip through the matching encoder.
func FuzzDecode(f *testing.F) {
	for _, s := range rtuSeeds() {
		_, p, _ := ParseRTU(s)
		f.Add(p.Data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if recs, err := DecodeWriteFileRecord(data); err == nil {
			p, err := EncodeWriteFileRecord(recs)
			if err != nil || !bytes.Equal(p.Data, data) {
				t.Fatalf("write file record % X re-encodes to % X, %v", data, p.Data, err)
			}
		}
		if refs, err := DecodeReadFileRecordRequest(data); err == nil {
			if p, err := EncodeReadFileRecord(refs); err == nil && !bytes.Equal(p.Data, data) {
				t.Fatalf("read file record request % X re-encodes to % X", data, p.Data)
			}
		}
		if blocks, err := DecodeReadFileRecordResponse(data); err == nil {
			p, err := EncodeReadFileRecordResponse(blocks)
			if err != nil || !bytes.Equal(p.Data, data) {
				t.Fatalf("read file record response % X re-encodes to % X, %v", data, p.Data, err)
			}
		}
		if r, err := DecodeDeviceIDResponse(data); err == nil {
			p, err := EncodeDeviceIDResponse(r)
			if err == nil && !bytes.Equal(p.Data, data) {
				t.Fatalf("device id response % X re-encodes to % X", data, p.Data)
			}
		}
		_, _, _ = DecodeDeviceIDRequest(data)
	})
}

func decodeAll(p PDU) {
	_ = CheckResponse(p.Func&0x7F, p)
	_, _ = DecodeWriteFileRecord(p.Data)
	_, _ = DecodeReadFileRecordRequest(p.Data)
	_, _ = DecodeReadFileRecordResponse(p.Data)
	_, _ = DecodeDeviceIDResponse(p.Data)
}
