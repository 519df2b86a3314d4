// SPDX-License-Identifier: Apache-2.0

package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRC16(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		{"123456789", 0x4B37},
		{"", 0xFFFF},
		// Read holding registers 0x006B×3 from unit 0x11: CRC 0x8776 (wire: 76 87).
		{"\x11\x03\x00\x6B\x00\x03", 0x8776},
	}
	for _, tt := range tests {
		if got := CRC16([]byte(tt.in)); got != tt.want {
			t.Errorf("CRC16(%q) = 0x%04X, want 0x%04X", tt.in, got, tt.want)
		}
	}
}

// The request and response examples of the Modbus application protocol
// specification (sections 6.14 and 6.15).
func TestFileRecordSpecExamples(t *testing.T) {
	readReq := unhex(t, "14 0E 0600040001000206000300090002")
	p, err := EncodeReadFileRecord([]RecordRef{{4, 1, 2}, {3, 9, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if got := append([]byte{p.Func}, p.Data...); !bytes.Equal(got, readReq) {
		t.Errorf("EncodeReadFileRecord = % X, want % X", got, readReq)
	}
	refs, err := DecodeReadFileRecordRequest(readReq[1:])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]RecordRef{{4, 1, 2}, {3, 9, 2}}, refs); diff != "" {
		t.Errorf("DecodeReadFileRecordRequest (-want +got):\n%s", diff)
	}

	readResp := unhex(t, "14 0C 05060DFE0020 050633CD0040")
	blocks, err := DecodeReadFileRecordResponse(readResp[1:])
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{unhex(t, "0DFE0020"), unhex(t, "33CD0040")}
	if diff := cmp.Diff(want, blocks); diff != "" {
		t.Errorf("DecodeReadFileRecordResponse (-want +got):\n%s", diff)
	}
	p, err = EncodeReadFileRecordResponse(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := append([]byte{p.Func}, p.Data...); !bytes.Equal(got, readResp) {
		t.Errorf("EncodeReadFileRecordResponse = % X, want % X", got, readResp)
	}

	writeReq := unhex(t, "15 0D 06 0004 0007 0003 06AF04BE100D")
	p, err = EncodeWriteFileRecord([]Record{{File: 4, Record: 7, Data: unhex(t, "06AF04BE100D")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := append([]byte{p.Func}, p.Data...); !bytes.Equal(got, writeReq) {
		t.Errorf("EncodeWriteFileRecord = % X, want % X", got, writeReq)
	}
	recs, err := DecodeWriteFileRecord(writeReq[1:])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{{File: 4, Record: 7, Data: unhex(t, "06AF04BE100D")}}, recs); diff != "" {
		t.Errorf("DecodeWriteFileRecord (-want +got):\n%s", diff)
	}
}

func TestChunks(t *testing.T) {
	tests := []struct {
		name      string
		base      uint16
		off, n    int64
		max       int
		want      []RecordRef
		wantError bool
	}{
		{"empty", 1, 0, 0, 122, nil, false},
		{"one", 1, 0, 10, 122, []RecordRef{{1, 0, 5}}, false},
		{"split", 1, 0, 500, 122, []RecordRef{{1, 0, 122}, {1, 122, 122}, {1, 244, 6}}, false},
		{"file boundary", 1, 19990, 30, 122, []RecordRef{{1, 9995, 5}, {2, 0, 10}}, false},
		{"base 5 second file", 5, 20000, 4, 122, []RecordRef{{6, 0, 2}}, false},
		{"odd offset", 1, 1, 4, 122, nil, true},
		{"odd length", 1, 0, 3, 122, nil, true},
		{"base 0", 0, 0, 4, 122, nil, true},
		{"too many registers", 1, 0, 4, 123, nil, true},
		{"past file 65535", 65535, 0, 40000, 122, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Chunks(tt.base, tt.off, tt.n, tt.max)
			if (err != nil) != tt.wantError {
				t.Fatalf("Chunks(%d, %d, %d, %d) error = %v, want error %v", tt.base, tt.off, tt.n, tt.max, err, tt.wantError)
			}
			if tt.wantError {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Chunks(%d, %d, %d, %d) (-want +got):\n%s", tt.base, tt.off, tt.n, tt.max, diff)
			}
			for _, r := range got {
				if int(r.Record)+int(r.Len) > RecordsPerFile {
					t.Errorf("chunk %+v crosses a file", r)
				}
			}
		})
	}
	if got := Offset(1, RecordRef{File: 2, Record: 3}); got != 20006 {
		t.Errorf("Offset(1, {2,3}) = %d, want 20006", got)
	}
}

func TestDeviceIDRoundTrip(t *testing.T) {
	r := DeviceIDResponse{Code: DevIDBasic, Conformity: 0x81, Objects: []Object{
		{ObjVendorName, []byte("fieldgate")}, {ObjProductCode, []byte("sim-hw")}, {ObjMajorMinorRevision, []byte("1.2.3")},
	}}
	p, err := EncodeDeviceIDResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	frame := AppendRTU(nil, 7, p)
	n, err := RTUFrameLen(frame, true)
	if err != nil || n != len(frame) {
		t.Fatalf("RTUFrameLen(device id response) = %d, %v, want %d, nil", n, err, len(frame))
	}
	unit, q, err := ReadRTU(bytes.NewReader(frame), true)
	if err != nil || unit != 7 {
		t.Fatalf("ReadRTU = %d, %v, want 7, nil", unit, err)
	}
	got, err := DecodeDeviceIDResponse(q.Data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("device id round trip (-want +got):\n%s", diff)
	}
}

func TestReadRTUErrors(t *testing.T) {
	good := AppendRTU(nil, 1, PDU{Func: WriteSingleRegister, Data: []byte{0, 100, 0, 2}})
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xFF
	tests := []struct {
		name     string
		in       []byte
		response bool
		want     error
	}{
		{"wrong crc", bad, true, ErrCRC},
		{"truncated", good[:5], true, io.ErrUnexpectedEOF},
		{"empty", nil, true, io.EOF},
		{"unknown function", []byte{1, 0x42, 0, 0, 0}, true, ErrMalformed},
		{"oversized byte count", []byte{1, 0x14, 0xFF}, true, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadRTU(bytes.NewReader(tt.in), tt.response)
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadRTU(% X) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestReadMBAP(t *testing.T) {
	p := PDU{Func: ReadFileRecord, Data: []byte{7, 6, 0, 1, 0, 0, 0, 1}}
	adu := AppendMBAP(nil, MBAP{Txn: 0x1234, Unit: 9}, p)
	h, q, err := ReadMBAP(bytes.NewReader(adu))
	if err != nil {
		t.Fatal(err)
	}
	if h != (MBAP{0x1234, 9}) || q.Func != p.Func || !bytes.Equal(q.Data, p.Data) {
		t.Errorf("ReadMBAP(AppendMBAP(%v)) = %v %v, want the same", p, h, q)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"length too big", unhex(t, "0001 0000 0200 01 03"), ErrMalformed},
		{"length too small", unhex(t, "0001 0000 0001 01"), ErrMalformed},
		{"protocol id", unhex(t, "0001 0001 0002 01 03"), ErrMalformed},
		{"truncated body", unhex(t, "0001 0000 0006 01 03 00"), io.ErrUnexpectedEOF},
		{"truncated header", unhex(t, "0001 00"), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ReadMBAP(bytes.NewReader(tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("ReadMBAP(% X) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	var ex *Exception
	err := CheckResponse(WriteFileRecord, ExceptionPDU(WriteFileRecord, ExIllegalDataAddress))
	if !errors.As(err, &ex) || ex.Code != ExIllegalDataAddress {
		t.Errorf("CheckResponse(exception 2) = %v, want *Exception code 2", err)
	}
	if err := CheckResponse(WriteFileRecord, PDU{Func: ReadFileRecord}); !errors.Is(err, ErrMalformed) {
		t.Errorf("CheckResponse(other function) = %v, want ErrMalformed", err)
	}
	if err := CheckResponse(WriteFileRecord, PDU{Func: WriteFileRecord}); err != nil {
		t.Errorf("CheckResponse(same function) = %v, want nil", err)
	}
}
