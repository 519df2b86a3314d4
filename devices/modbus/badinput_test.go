// SPDX-License-Identifier: Apache-2.0

package modbus_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
	"github.com/fieldgate/fieldgate/devices/serialtest"
)

// reply decides what a fake device sends back for one request: raw bytes
// (nil: stay silent), and whether to hang up afterwards.
type reply func(unit byte, txn uint16, req pdu.PDU) (out []byte, hangUp bool)

// fakeTCP is a Modbus TCP "device" that answers by script. It answers
// register writes (the driver's length announcement) normally so the
// scripted reply meets the request under test.
func fakeTCP(t *testing.T, r reply) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				go func() { <-t.Context().Done(); c.Close() }()
				for {
					h, req, err := pdu.ReadMBAP(c)
					if err != nil {
						return
					}
					if req.Func == pdu.WriteMultipleRegs {
						c.Write(pdu.AppendMBAP(nil, h, pdu.PDU{Func: req.Func, Data: req.Data[:4]}))
						continue
					}
					out, hangUp := r(h.Unit, h.Txn, req)
					c.Write(out)
					if hangUp {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

func mbap(txn uint16, unit byte, p pdu.PDU) []byte {
	return pdu.AppendMBAP(nil, pdu.MBAP{Txn: txn, Unit: unit}, p)
}

func TestBadTCPResponses(t *testing.T) {
	devid, _ := pdu.EncodeDeviceIDResponse(pdu.DeviceIDResponse{Code: 1, Objects: []pdu.Object{{ID: 2, Value: []byte("1.0")}}})
	tests := []struct {
		name      string
		r         reply
		transient bool
		exception byte // want a *pdu.Exception with this code, 0: none
	}{
		{"exception illegal function", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return mbap(x, u, pdu.ExceptionPDU(q.Func, pdu.ExIllegalFunction)), false
		}, false, pdu.ExIllegalFunction},
		{"exception busy", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return mbap(x, u, pdu.ExceptionPDU(q.Func, pdu.ExDeviceBusy)), false
		}, true, pdu.ExDeviceBusy},
		{"silent", func(byte, uint16, pdu.PDU) ([]byte, bool) { return nil, false }, true, 0},
		{"hang up", func(byte, uint16, pdu.PDU) ([]byte, bool) { return nil, true }, true, 0},
		{"truncated", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			b := mbap(x, u, devid)
			return b[:len(b)/2], true
		}, true, 0},
		{"oversized length field", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return []byte{byte(x >> 8), byte(x), 0, 0, 0x02, 0x00, u, 0x2B}, false
		}, false, 0},
		{"garbage", func(byte, uint16, pdu.PDU) ([]byte, bool) {
			return []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), true
		}, false, 0},
		{"wrong transaction", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return mbap(x+7, u, devid), false
		}, false, 0},
		{"wrong function", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return mbap(x, u, pdu.PDU{Func: 0x03, Data: []byte{2, 0, 0}}), false
		}, false, 0},
		{"object count beyond the frame", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return mbap(x, u, pdu.PDU{Func: 0x2B, Data: []byte{0x0E, 1, 0x81, 0, 0, 9, 2, 3, '1', '.', '0'}}), false
		}, false, 0},
		{"no version", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			p, _ := pdu.EncodeDeviceIDResponse(pdu.DeviceIDResponse{Code: 1, Objects: []pdu.Object{{ID: 0, Value: []byte("v")}}})
			return mbap(x, u, p), false
		}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeTCP(t, tt.r)
			d := openDriver(t, "modbus-tcp", addr, 0, map[string]string{"timeout": "1s", "retries": "0"})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := d.Identify(ctx)
			checkErr(t, "Identify", err, tt.transient, tt.exception)
			if ctx.Err() != nil {
				t.Errorf("Identify waited for the test's deadline instead of its own")
			}
		})
	}
}

func checkErr(t *testing.T, op string, err error, transient bool, exception byte) {
	t.Helper()
	var de *devices.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s = %v, want a *devices.Error", op, err)
	}
	if devices.IsTransient(err) != transient {
		t.Errorf("%s = %v, want transient %v", op, err, transient)
	}
	var ex *pdu.Exception
	if exception != 0 && (!errors.As(err, &ex) || ex.Code != exception) {
		t.Errorf("%s = %v, want exception code %d", op, err, exception)
	}
}

func TestBadTransferResponses(t *testing.T) {
	tests := []struct {
		name      string
		r         reply
		transient bool
	}{
		{"illegal address", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			return mbap(x, u, pdu.ExceptionPDU(q.Func, pdu.ExIllegalDataAddress)), false
		}, false},
		{"echo differs", func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			b := bytes.Clone(q.Data)
			b[len(b)-1] ^= 1
			return mbap(x, u, pdu.PDU{Func: q.Func, Data: b}), false
		}, false},
		{"disconnect mid-transfer", func() reply {
			n := 0
			return func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
				n++
				if n > 3 {
					return nil, true
				}
				return mbap(x, u, q), false
			}
		}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeTCP(t, tt.r)
			d := openDriver(t, "modbus-tcp", addr, 0, map[string]string{"timeout": "1s", "retries": "0"})
			img, b := image("2.0.0", 5000)
			err := d.Transfer(context.Background(), img, bytes.NewReader(b), nil)
			checkErr(t, "Transfer", err, tt.transient, 0)
		})
	}
}

// fakeRTU is a Modbus RTU "device" on the far end of a pty pair.
func fakeRTU(t *testing.T, r func(req []byte) []byte) string {
	t.Helper()
	pair, err := serialtest.NewPair(serialtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	port, err := pair.A.OpenSlave()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); wg.Wait(); port.Close(); pair.Close() })
	wg.Go(func() {
		var buf []byte
		rd := make([]byte, 256)
		for {
			select {
			case <-done:
				return
			default:
			}
			port.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, err := port.Read(rd)
			buf = append(buf, rd[:n]...)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			if want, err := pdu.RTUFrameLen(buf, false); err != nil {
				buf = nil
			} else if want > 0 && len(buf) >= want {
				if out := r(buf[:want]); out != nil {
					port.Write(out)
				}
				buf = buf[want:]
			}
		}
	})
	return pair.B.Path
}

func TestBadRTUResponses(t *testing.T) {
	good := func(unit byte) []byte {
		p, _ := pdu.EncodeDeviceIDResponse(pdu.DeviceIDResponse{Code: 1, Objects: []pdu.Object{{ID: 2, Value: []byte("1.0")}}})
		return pdu.AppendRTU(nil, unit, p)
	}
	tests := []struct {
		name      string
		r         func(req []byte) []byte
		transient bool
		exception byte
	}{
		{"good", nil, false, 0},
		{"wrong crc", func([]byte) []byte { b := good(1); b[len(b)-1] ^= 0x55; return b }, true, 0},
		{"silent", func([]byte) []byte { return nil }, true, 0},
		{"truncated", func([]byte) []byte { return good(1)[:6] }, true, 0},
		{"exception", func(q []byte) []byte {
			return pdu.AppendRTU(nil, 1, pdu.ExceptionPDU(q[1], pdu.ExIllegalDataAddress))
		}, false, pdu.ExIllegalDataAddress},
		{"garbage", func([]byte) []byte { return []byte{0x01, 0x42, 0xde, 0xad, 0xbe, 0xef} }, true, 0},
		{"other unit", func([]byte) []byte { return good(2) }, true, 0},
		{"oversized", func([]byte) []byte {
			return append([]byte{1, 0x2B, 0x0E, 1, 0x81, 0, 0, 3, 0, 250}, make([]byte, 260)...)
		}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			if r == nil {
				r = func([]byte) []byte { return good(1) }
			}
			path := fakeRTU(t, r)
			d := openDriver(t, "modbus-rtu", path, 115200, map[string]string{"timeout": "1s", "retries": "0"})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id, err := d.Identify(ctx)
			if tt.r == nil {
				if err != nil || id.Version != "1.0" {
					t.Fatalf("Identify from a well-behaved fake = %+v, %v, want version 1.0", id, err)
				}
				return
			}
			checkErr(t, "Identify", err, tt.transient, tt.exception)
			if ctx.Err() != nil {
				t.Errorf("Identify waited for the test's deadline instead of its own")
			}
		})
	}
}

func TestCancelDuringSilence(t *testing.T) {
	for _, kind := range []string{"modbus-tcp", "modbus-rtu"} {
		t.Run(kind, func(t *testing.T) {
			var addr string
			if kind == "modbus-tcp" {
				addr = fakeTCP(t, func(byte, uint16, pdu.PDU) ([]byte, bool) { return nil, false })
			} else {
				addr = fakeRTU(t, func([]byte) []byte { return nil })
			}
			d := openDriver(t, kind, addr, 115200, map[string]string{"timeout": "1h"})
			ctx, cancel := context.WithCancel(context.Background())
			go cancel()
			_, err := d.Identify(ctx)
			if !errors.Is(err, context.Canceled) || devices.IsTransient(err) {
				t.Errorf("Identify cancelled = %v, want a permanent error wrapping context.Canceled", err)
			}
		})
	}
}

// TestRetriesRecoverLostAnswers: with the default retries, a first answer
// that is lost (TCP) or garbled (RTU) costs one more attempt, not the step.
func TestRetriesRecoverLostAnswers(t *testing.T) {
	devid, _ := pdu.EncodeDeviceIDResponse(pdu.DeviceIDResponse{Code: 1, Objects: []pdu.Object{{ID: 1, Value: []byte(testHW)}, {ID: 2, Value: []byte("1.0")}}})
	t.Run("tcp", func(t *testing.T) {
		n := 0
		addr := fakeTCP(t, func(u byte, x uint16, q pdu.PDU) ([]byte, bool) {
			n++
			if n == 1 {
				return nil, false
			}
			return mbap(x, u, devid), false
		})
		d := openDriver(t, "modbus-tcp", addr, 0, map[string]string{"timeout": "300ms"})
		if id, err := d.Identify(context.Background()); err != nil || id.Version != "1.0" {
			t.Errorf("Identify after one lost answer = %+v, %v, want version 1.0", id, err)
		}
	})
	t.Run("rtu", func(t *testing.T) {
		n := 0
		path := fakeRTU(t, func([]byte) []byte {
			n++
			b := pdu.AppendRTU(nil, 1, devid)
			if n == 1 {
				b[len(b)-1] ^= 0xFF
			}
			return b
		})
		d := openDriver(t, "modbus-rtu", path, 115200, map[string]string{"timeout": "300ms"})
		if id, err := d.Identify(context.Background()); err != nil || id.Version != "1.0" {
			t.Errorf("Identify after one garbled answer = %+v, %v, want version 1.0", id, err)
		}
	})
}
