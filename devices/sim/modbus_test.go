// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
)

func startModbusTCP(t *testing.T, opts map[string]string, faults ...string) (*ModbusDevice, net.Conn) {
	t.Helper()
	d, err := NewModbusTCP(Spec{ID: "m1", Kind: "modbus-tcp", HardwareID: "hw1", Version: "1.0.0", StateDir: t.TempDir(), Address: "127.0.0.1:0", Faults: faults, Options: opts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := d.Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.Run(ctx); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); cancel(); wg.Wait() })
	return d, c
}

func roundTrip(t *testing.T, c net.Conn, req pdu.PDU) pdu.PDU {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(pdu.AppendMBAP(nil, pdu.MBAP{Txn: 1, Unit: 1}, req)); err != nil {
		t.Fatal(err)
	}
	_, resp, err := pdu.ReadMBAP(c)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestModbusSimExceptions(t *testing.T) {
	write := func(file, rec uint16, n int) pdu.PDU {
		p, err := pdu.EncodeWriteFileRecord([]pdu.Record{{File: file, Record: rec, Data: make([]byte, n)}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(file, rec, n uint16) pdu.PDU {
		p, err := pdu.EncodeReadFileRecord([]pdu.RecordRef{{File: file, Record: rec, Len: n}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		req  pdu.PDU
		want byte // exception code, 0: a normal answer
	}{
		{"unknown function", pdu.PDU{Func: 0x42, Data: []byte{1, 2}}, pdu.ExIllegalFunction},
		{"write file 1", write(1, 0, 244), 0},
		{"write crossing a file", write(1, 9990, 40), pdu.ExIllegalDataAddress},
		{"write the running image", write(1001, 0, 2), pdu.ExIllegalDataAddress},
		{"write file 0", write(0, 0, 2), pdu.ExIllegalDataAddress},
		{"read past the running image", read(1001, 9000, 10), pdu.ExIllegalDataAddress},
		{"read the running image", read(1001, 0, 121), 0},
		{"malformed file record", pdu.PDU{Func: pdu.WriteFileRecord, Data: []byte{9, 6, 0}}, pdu.ExIllegalDataValue},
		{"write the status register", pdu.PDU{Func: pdu.WriteSingleRegister, Data: []byte{0, 101, 0, 2}}, pdu.ExIllegalDataAddress},
		{"unknown command", pdu.PDU{Func: pdu.WriteSingleRegister, Data: []byte{0, 100, 0, 9}}, pdu.ExIllegalDataValue},
		{"revert on a single slot", pdu.PDU{Func: pdu.WriteSingleRegister, Data: []byte{0, 100, 0, 3}}, pdu.ExIllegalDataValue},
		{"unknown identification object", pdu.EncodeDeviceIDRequest(pdu.DevIDIndividual, 0x99), pdu.ExIllegalDataAddress},
		{"serial object", pdu.EncodeDeviceIDRequest(pdu.DevIDIndividual, 0x80), 0},
		{"too many registers", pdu.PDU{Func: pdu.ReadHoldingRegisters, Data: []byte{0, 0, 0, 126}}, pdu.ExIllegalDataValue},
		{"registers past 0xFFFF", pdu.PDU{Func: pdu.ReadHoldingRegisters, Data: []byte{0xFF, 0xFF, 0, 2}}, pdu.ExIllegalDataAddress},
		{"input registers past 0xFFFF", pdu.PDU{Func: pdu.ReadInputRegisters, Data: []byte{0xFF, 0x90, 0, 125}}, pdu.ExIllegalDataAddress},
		{"last register", pdu.PDU{Func: pdu.ReadHoldingRegisters, Data: []byte{0xFF, 0xFF, 0, 1}}, 0},
		{"coils past 0xFFFF", pdu.PDU{Func: pdu.ReadCoils, Data: []byte{0xFF, 0xF0, 0, 32}}, pdu.ExIllegalDataAddress},
		{"too many coils", pdu.PDU{Func: pdu.ReadCoils, Data: []byte{0, 0, 0x07, 0xD1}}, pdu.ExIllegalDataValue},
		{"register write past 0xFFFF", pdu.PDU{Func: pdu.WriteMultipleRegs, Data: []byte{0xFF, 0xFF, 0, 2, 4, 0, 0, 0, 0}}, pdu.ExIllegalDataAddress},
		{"read file reference type 5", pdu.PDU{Func: pdu.ReadFileRecord, Data: []byte{7, 5, 0x03, 0xE9, 0, 0, 0, 1}}, pdu.ExIllegalDataAddress},
		{"read file second reference type 0", pdu.PDU{Func: pdu.ReadFileRecord, Data: []byte{14, 6, 0x03, 0xE9, 0, 0, 0, 1, 0, 0x03, 0xE9, 0, 0, 0, 1}}, pdu.ExIllegalDataAddress},
		{"write file reference type 7", pdu.PDU{Func: pdu.WriteFileRecord, Data: []byte{9, 7, 0, 1, 0, 0, 0, 1, 0xAB, 0xCD}}, pdu.ExIllegalDataAddress},
		{"write file second reference type 0", pdu.PDU{Func: pdu.WriteFileRecord, Data: []byte{18, 6, 0, 1, 0, 0, 0, 1, 0xAB, 0xCD, 0, 0, 1, 0, 1, 0, 1, 0xAB, 0xCD}}, pdu.ExIllegalDataAddress},
		{"read file byte count out of range", pdu.PDU{Func: pdu.ReadFileRecord, Data: []byte{6, 5, 0x03, 0xE9, 0, 0, 0}}, pdu.ExIllegalDataValue},
	}
	_, c := startModbusTCP(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip(t, c, tt.req)
			err := pdu.CheckResponse(tt.req.Func, resp)
			var ex *pdu.Exception
			switch {
			case tt.want == 0 && err != nil:
				t.Errorf("request % X = %v, want a normal answer", tt.req.Data, err)
			case tt.want != 0 && (!errors.As(err, &ex) || ex.Code != tt.want):
				t.Errorf("request % X = %v, want exception %d", tt.req.Data, err, tt.want)
			}
		})
	}
}

// TestModbusSimDeviceIDCategories: Read Device Identification streams the
// objects of the category asked for and of the ones below it (read code 1
// basic, 2 basic and regular, 3 all), and code 4 one object.
func TestModbusSimDeviceIDCategories(t *testing.T) {
	_, c := startModbusTCP(t, map[string]string{"vendor": "acme", "model": "io16"})
	tests := []struct {
		name      string
		code, obj byte
		want      []byte // object ids
	}{
		{"basic", pdu.DevIDBasic, 0, []byte{0, 1, 2}},
		{"regular", pdu.DevIDRegular, 0, []byte{0, 1, 2, 4, 5}},
		{"extended", pdu.DevIDExtended, 0, []byte{0, 1, 2, 4, 5, 0x80}},
		{"individual", pdu.DevIDIndividual, 5, []byte{5}},
		{"regular from product name", pdu.DevIDRegular, 4, []byte{4, 5}},
		{"regular from an extended object restarts", pdu.DevIDRegular, 0x80, []byte{0, 1, 2, 4, 5}},
		{"basic from a regular object restarts", pdu.DevIDBasic, 4, []byte{0, 1, 2}},
		{"extended from an unknown object restarts", pdu.DevIDExtended, 0x33, []byte{0, 1, 2, 4, 5, 0x80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := pdu.EncodeDeviceIDRequest(tt.code, tt.obj)
			resp := roundTrip(t, c, req)
			if err := pdu.CheckResponse(req.Func, resp); err != nil {
				t.Fatalf("read code %d object 0x%02X = %v", tt.code, tt.obj, err)
			}
			r, err := pdu.DecodeDeviceIDResponse(resp.Data)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, o := range r.Objects {
				got = append(got, o.ID)
			}
			if !bytes.Equal(got, tt.want) || r.More || r.Code != tt.code {
				t.Errorf("read code %d object 0x%02X = code %d objects % X more %v, want code %d objects % X and no more", tt.code, tt.obj, r.Code, got, r.More, tt.code, tt.want)
			}
		})
	}
}

// TestModbusSimDeviceIDMoreFollows: objects that do not fit one PDU come
// in several, the client asking again from Next.
func TestModbusSimDeviceIDMoreFollows(t *testing.T) {
	long := strings.Repeat("v", 200)
	_, c := startModbusTCP(t, map[string]string{"vendor": long, "model": long})
	var got []byte
	obj, requests := byte(0), 0
	for ; requests < 10; requests++ {
		req := pdu.EncodeDeviceIDRequest(pdu.DevIDExtended, obj)
		resp := roundTrip(t, c, req)
		if err := pdu.CheckResponse(req.Func, resp); err != nil {
			t.Fatalf("read code 3 object 0x%02X = %v", obj, err)
		}
		r, err := pdu.DecodeDeviceIDResponse(resp.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range r.Objects {
			got = append(got, o.ID)
		}
		if !r.More {
			break
		}
		obj = r.Next
	}
	if want := []byte{0, 1, 2, 4, 5, 0x80}; !bytes.Equal(got, want) || requests < 1 {
		t.Errorf("objects over %d requests = % X, want % X over more than one", requests+1, got, want)
	}
}

func TestModbusSimSlowFlashAndRunning(t *testing.T) {
	d, c := startModbusTCP(t, map[string]string{"image_size": "100"}, "slow-flash", "process-running")
	img := MakeImage("hw1", "2.0.0", 200)
	p, _ := pdu.EncodeWriteFileRecord([]pdu.Record{{File: 1, Record: 0, Data: img}})
	if err := pdu.CheckResponse(p.Func, roundTrip(t, c, p)); err != nil {
		t.Fatal(err)
	}
	length := pdu.PDU{Func: pdu.WriteMultipleRegs, Data: []byte{0, 102, 0, 2, 4, 0, 0, 0, 200}}
	if err := pdu.CheckResponse(length.Func, roundTrip(t, c, length)); err != nil {
		t.Fatal(err)
	}
	verify := pdu.PDU{Func: pdu.WriteSingleRegister, Data: []byte{0, 100, 0, 1}}
	if err := pdu.CheckResponse(verify.Func, roundTrip(t, c, verify)); err != nil {
		t.Fatal(err)
	}
	status := roundTrip(t, c, pdu.PDU{Func: pdu.ReadHoldingRegisters, Data: []byte{0, 101, 0, 1}})
	if got := status.Data; len(got) != 3 || got[2] != 1 {
		t.Errorf("status right after verify with slow-flash = % X, want busy (1)", got)
	}
	activate := pdu.PDU{Func: pdu.WriteSingleRegister, Data: []byte{0, 100, 0, 2}}
	var ex *pdu.Exception
	if err := pdu.CheckResponse(activate.Func, roundTrip(t, c, activate)); !errors.As(err, &ex) || ex.Code != pdu.ExDeviceBusy {
		t.Errorf("activate while busy and running = %v, want exception busy", err)
	}
	if v := d.Version(); v != "1.0.0" {
		t.Errorf("Version = %s, want 1.0.0", v)
	}
}

func TestModbusSimOptions(t *testing.T) {
	tests := []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"process_running": "maybe"}, "process_running"},
		{map[string]string{"colour": "red"}, `unknown option "colour"`},
		{map[string]string{"slots": "3"}, "slots"},
		{map[string]string{"image_size": "-1"}, "image_size"},
	}
	for _, tt := range tests {
		_, err := NewModbusTCP(Spec{ID: "m", Kind: "modbus-tcp", HardwareID: "hw", Version: "1", StateDir: t.TempDir(), Address: "127.0.0.1:0", Options: tt.opts}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewModbusTCP(options %v) = %v, want an error containing %q", tt.opts, err, tt.want)
		}
	}
}

// FuzzModbusSimHandle feeds arbitrary request PDUs to the simulated
// device: it must answer every one (normally or with an exception) and
// never panic, whatever a client sends.
func FuzzModbusSimHandle(f *testing.F) {
	seeds := []pdu.PDU{
		{Func: pdu.ReadHoldingRegisters, Data: []byte{0, 100, 0, 12}},
		{Func: pdu.WriteMultipleRegs, Data: []byte{0, 102, 0, 2, 4, 0, 0, 0, 9}},
		{Func: pdu.WriteSingleRegister, Data: []byte{0, 100, 0, 1}},
		{Func: pdu.ReadCoils, Data: []byte{0, 0, 0, 9}},
		pdu.EncodeDeviceIDRequest(pdu.DevIDBasic, 0),
		{Func: pdu.ReadFileRecord, Data: []byte{7, 6, 0x03, 0xE9, 0, 0, 0, 1}},
		{Func: pdu.ReadFileRecord, Data: []byte{7, 6, 0x03, 0xE9, 0, 51, 0, 0}}, // zero registers just past the image
		{Func: pdu.WriteFileRecord, Data: []byte{9, 6, 0, 1, 0, 0, 0, 1, 0xAB, 0xCD}},
	}
	for _, s := range seeds {
		f.Add(append([]byte{s.Func}, s.Data...))
	}
	d, err := NewModbusTCP(Spec{ID: "fz", Kind: "modbus-tcp", HardwareID: "hw", Version: "1", StateDir: f.TempDir(), Address: "127.0.0.1:0", Options: map[string]string{"image_size": "101", "boot_time": "0s"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || len(b) > pdu.MaxPDU {
			return
		}
		resp := d.handle(pdu.PDU{Func: b[0], Data: b[1:]})
		if resp.Len() > pdu.MaxPDU {
			t.Fatalf("answer to % X is %d bytes, max %d", b, resp.Len(), pdu.MaxPDU)
		}
		d.mu.Lock()
		d.tick()
		d.mu.Unlock()
	})
}
