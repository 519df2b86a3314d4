// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// fakePort is an in-memory peer: peer sees every write and may queue
// answers; reads with nothing queued wait until the deadline (virtual time
// under synctest).
type fakePort struct {
	in       []byte
	deadline time.Time
	eof      bool
	peer     func(p *fakePort, b []byte)
	written  bytes.Buffer
}

func (p *fakePort) Read(b []byte) (int, error) {
	if len(p.in) > 0 {
		n := copy(b, p.in)
		p.in = p.in[n:]
		return n, nil
	}
	if p.eof {
		return 0, io.EOF
	}
	time.Sleep(time.Until(p.deadline))
	return 0, os.ErrDeadlineExceeded
}

func (p *fakePort) Write(b []byte) (int, error) {
	p.written.Write(b)
	if p.peer != nil {
		p.peer(p, b)
	}
	return len(b), nil
}

func (p *fakePort) SetReadDeadline(t time.Time) error { p.deadline = t; return nil }

// frame builds an XMODEM block.
func frame(num byte, data []byte) []byte {
	h := byte(soh)
	if len(data) == 1024 {
		h = stx
	}
	c := CRC16(data)
	return append(append([]byte{h, num, ^num}, data...), byte(c>>8), byte(c))
}

func TestSendBadReceiver(t *testing.T) {
	tests := []struct {
		name string
		peer func(p *fakePort, b []byte)
		init []byte
		want error
	}{
		{"silent", nil, nil, ErrTimeout},
		{"NAK storm", func(p *fakePort, b []byte) { p.in = append(p.in, nak) }, []byte{'C'}, ErrRetries},
		{"garbage", func(p *fakePort, b []byte) { p.in = append(p.in, 0x55, 0xAA, 'x') }, []byte{'C'}, ErrRetries},
		{"cancel at start", nil, []byte{can, can}, ErrCanceled},
		{"cancel after block", func(p *fakePort, b []byte) { p.in = append(p.in, can, can) }, []byte{'C'}, ErrCanceled},
		{"disconnect", func(p *fakePort, b []byte) { p.eof = true }, []byte{'C'}, io.ErrUnexpectedEOF},
		{"console text only", nil, []byte("Checking CRC of Config...\r\n"), ErrTimeout},
	}
	for _, tt := range tests {
		for _, ymodem := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					p := &fakePort{in: tt.init, peer: tt.peer}
					start := time.Now()
					data := bytes.Repeat([]byte{1}, 3000)
					var err error
					if ymodem {
						err = SendYMODEM(t.Context(), p, "f", bytes.NewReader(data), 3000, Options{})
					} else {
						err = Send(t.Context(), p, bytes.NewReader(data), 3000, Options{})
					}
					if !errors.Is(err, tt.want) {
						t.Fatalf("Send to a %s receiver = %v, want %v", tt.name, err, tt.want)
					}
					if d := time.Since(start); d > 5*time.Minute {
						t.Errorf("Send to a %s receiver took %v (virtual)", tt.name, d)
					}
					if tt.want != ErrCanceled && tt.want != io.ErrUnexpectedEOF && !bytes.HasSuffix(p.written.Bytes(), []byte{can, can}) {
						t.Errorf("Send to a %s receiver did not end with CAN CAN", tt.name)
					}
				})
			})
		}
	}
}

func TestSendContextCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		p := &fakePort{}
		err := Send(ctx, p, bytes.NewReader(nil), 0, Options{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send() with a 5 s context to a silent receiver = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestReceiveBadSender(t *testing.T) {
	good := frame(1, bytes.Repeat([]byte{7}, 128))
	badCRC := append([]byte(nil), good...)
	badCRC[10] ^= 1
	tests := []struct {
		name string
		peer func(p *fakePort, b []byte)
		init []byte
		want error
	}{
		{"silent", nil, nil, ErrTimeout},
		{"garbage", func(p *fakePort, b []byte) {
			if b[0] == 'C' || b[0] == nak {
				p.in = append(p.in, []byte("\xff\xfe hello \x00")...)
			}
		}, nil, ErrTimeout}, // no block ever started
		{"wrong CRC", func(p *fakePort, b []byte) {
			if b[0] == 'C' || b[0] == nak {
				p.in = append(p.in, badCRC...)
			}
		}, nil, ErrRetries},
		{"truncated", func(p *fakePort, b []byte) {
			if b[0] == 'C' || b[0] == nak {
				p.in = append(p.in, good[:50]...)
			}
		}, nil, ErrRetries},
		{"bad complement", func(p *fakePort, b []byte) {
			if b[0] == 'C' || b[0] == nak {
				f := append([]byte(nil), good...)
				f[2] = 0
				p.in = append(p.in, f...)
			}
		}, nil, ErrRetries},
		{"wrong sequence", func(p *fakePort, b []byte) {
			if b[0] == 'C' {
				p.in = append(p.in, frame(5, make([]byte, 128))...)
			}
		}, nil, ErrProtocol},
		{"cancel", func(p *fakePort, b []byte) {
			if b[0] == 'C' {
				p.in = append(p.in, can, can)
			}
		}, nil, ErrCanceled},
		{"disconnect mid-block", func(p *fakePort, b []byte) {
			if b[0] == 'C' {
				p.in = append(p.in, good[:60]...)
				p.eof = true
			}
		}, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, ymodem := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					p := &fakePort{in: tt.init, peer: tt.peer}
					var err error
					if ymodem {
						_, err = ReceiveYMODEM(t.Context(), p, io.Discard, Options{})
					} else {
						_, err = Receive(t.Context(), p, io.Discard, Options{})
					}
					if !errors.Is(err, tt.want) {
						t.Fatalf("Receive from a %s sender (ymodem %v) = %v, want %v", tt.name, ymodem, err, tt.want)
					}
				})
			})
		}
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in   string
		want FileInfo
		ok   bool
	}{
		{"fw.bin\x0012345 14600000000 100644\x00", FileInfo{"fw.bin", 12345}, true},
		{"fw.bin\x00", FileInfo{"fw.bin", -1}, true},
		{"\x00\x00", FileInfo{"", -1}, true},
		{"fw.bin\x00-5", FileInfo{}, false},
		{"fw.bin\x00big", FileInfo{}, false},
		{"no nul", FileInfo{}, false},
	}
	for _, tt := range tests {
		b := make([]byte, 128)
		copy(b, tt.in)
		if tt.in == "no nul" {
			b = bytes.Repeat([]byte("a"), 128)
		}
		got, err := parseHeader(b)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseHeader(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzReceive feeds arbitrary sender bytes to both receivers: they must end
// (virtual time) without panicking, and whatever they accept must be what
// well-formed blocks carried.
func FuzzReceive(f *testing.F) {
	blk := frame(1, bytes.Repeat([]byte{'a'}, 128))
	f.Add(append(append([]byte{}, blk...), eot))
	f.Add(append(frame(1, bytes.Repeat([]byte{'b'}, 1024)), eot, eot))
	hdr := make([]byte, 128)
	copy(hdr, "f\x00100")
	f.Add(append(append(frame(0, hdr), blk...), eot, eot))
	f.Add([]byte{can, can})
	f.Add([]byte{stx, 1, 0xfe, 1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, ymodem := range []bool{false, true} {
			synctest.Test(t, func(t *testing.T) {
				p := &fakePort{in: bytes.Clone(in)}
				opt := Options{StartTimeout: 10 * time.Second, Retries: 3}
				var out bytes.Buffer
				if ymodem {
					_, _ = ReceiveYMODEM(t.Context(), p, &out, opt)
				} else {
					n, _ := Receive(t.Context(), p, &out, opt)
					if n != int64(out.Len()) || n%128 != 0 {
						t.Fatalf("Receive() = %d with %d bytes written, want equal multiples of 128", n, out.Len())
					}
				}
			})
		}
	})
}
