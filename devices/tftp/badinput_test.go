// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// peer is a scripted TFTP server for bad-input tests: it answers the first
// request from a fresh socket (a new TID) and follows the script.
type peer struct {
	t    *testing.T
	conn net.PacketConn
	to   net.Addr
	req  packet
}

func (p *peer) send(b []byte) {
	if _, err := p.conn.WriteTo(b, p.to); err != nil {
		p.t.Error(err)
	}
}

// recv returns the next packet, or ok false after a quiet second.
func (p *peer) recv() (packet, bool) {
	buf := make([]byte, maxPacket)
	_ = p.conn.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := p.conn.ReadFrom(buf)
	if err != nil {
		return packet{}, false
	}
	pk, err := decode(buf[:n])
	if err != nil {
		p.t.Errorf("peer got undecodable packet: %v", err)
		return packet{}, false
	}
	return pk, true
}

// scripted starts a listener whose first request runs script; it returns
// the listener address and a channel closed when the script ends.
func scripted(t *testing.T, script func(p *peer)) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ln.Close()
		buf := make([]byte, maxPacket)
		_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := ln.ReadFrom(buf)
		if err != nil {
			return
		}
		req, _ := decode(buf[:n])
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return
		}
		defer conn.Close()
		script(&peer{t: t, conn: conn, to: from, req: req})
	}()
	t.Cleanup(func() { <-done })
	return ln.LocalAddr().String(), done
}

func rawData(block uint16, n int) []byte { return appendDATA(nil, block, bytes.Repeat([]byte{'x'}, n)) }

func TestClientBadPeers(t *testing.T) {
	fast := Client{Timeout: 30 * time.Millisecond, Retries: 2, Blksize: 512}
	tests := []struct {
		name     string
		get      bool
		script   func(p *peer)
		wantErr  error
		wantCode ErrorCode // ERROR packet the client must send the peer; 0xffff none
	}{
		{"unrequested option in OACK", false, func(p *peer) {
			p.send(appendOACK(nil, []option{{"blksize", "512"}, {"bogus", "1"}}))
		}, ErrProtocol, ErrCodeBadOptions},
		{"blksize above requested", false, func(p *peer) {
			p.send(appendOACK(nil, []option{{"blksize", "9000"}}))
		}, ErrProtocol, ErrCodeBadOptions},
		{"option twice in OACK", true, func(p *peer) {
			p.send(appendOACK(nil, []option{{"tsize", "2000"}, {"tsize", "2000"}}))
		}, ErrProtocol, ErrCodeBadOptions},
		{"option twice in OACK, other case", false, func(p *peer) {
			p.send(appendOACK(nil, []option{{"tsize", "2000"}, {"TSIZE", "2000"}}))
		}, ErrProtocol, ErrCodeBadOptions},
		{"unparsable option value", false, func(p *peer) {
			p.send(appendOACK(nil, []option{{"tsize", "enable"}}))
		}, ErrProtocol, ErrCodeBadOptions},
		{"malformed packet", true, func(p *peer) {
			p.send([]byte{0, 3})
		}, ErrProtocol, ErrCodeIllegalOp},
		{"unknown opcode", true, func(p *peer) {
			p.send([]byte{0, 9, 0, 0})
		}, ErrProtocol, ErrCodeIllegalOp},
		{"oversized DATA", true, func(p *peer) {
			p.send(rawData(1, 600))
		}, ErrProtocol, ErrCodeIllegalOp},
		{"ERROR mid-transfer", false, func(p *peer) {
			p.send(appendACK(nil, 0))
			p.recv()
			p.send(appendERROR(nil, ErrCodeDiskFull, "flash full"))
		}, &RemoteError{}, 0xffff},
		{"silent after ACK 0", false, func(p *peer) {
			p.send(appendACK(nil, 0))
			for {
				if _, ok := p.recv(); !ok {
					return
				}
			}
		}, ErrTimeout, 0xffff},
		{"silent server", true, func(p *peer) {}, ErrTimeout, 0xffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotCode ErrorCode = 0xffff
			addr, done := scripted(t, func(p *peer) {
				tt.script(p)
				if tt.wantCode == 0xffff {
					return
				}
				for {
					pk, ok := p.recv()
					if !ok {
						return
					}
					if pk.op == opERROR {
						gotCode = pk.code
						return
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if tt.get {
				_, err = fast.Get(ctx, addr, "f", &bytes.Buffer{})
			} else {
				err = fast.Put(ctx, addr, "f", bytes.NewReader(make([]byte, 2000)), 2000, nil)
			}
			var re *RemoteError
			if _, isRemote := tt.wantErr.(*RemoteError); isRemote {
				if !errors.As(err, &re) {
					t.Fatalf("error = %v, want a RemoteError", err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if ctx.Err() != nil {
				t.Fatalf("client returned only at the test deadline")
			}
			<-done
			if gotCode != tt.wantCode {
				t.Errorf("client sent ERROR code %d, want %d", gotCode, tt.wantCode)
			}
		})
	}
}

// TestClientNoSorcerersApprentice sends duplicate ACKs and checks that no
// DATA block is ever sent twice.
func TestClientNoSorcerersApprentice(t *testing.T) {
	sent := map[uint16]int{}
	addr, done := scripted(t, func(p *peer) {
		p.send(appendACK(nil, 0))
		for {
			pk, ok := p.recv()
			if !ok || pk.op != opDATA {
				return
			}
			sent[pk.block]++
			for range 3 { // every ACK arrives three times
				p.send(appendACK(nil, pk.block))
			}
			if len(pk.data) < 512 {
				// Drain: a client with the syndrome would send more now.
				for {
					pk, ok := p.recv()
					if !ok {
						return
					}
					sent[pk.block]++
				}
			}
		}
	})
	c := Client{Timeout: time.Second}
	if err := c.Put(context.Background(), addr, "f", bytes.NewReader(make([]byte, 512*4+10)), 512*4+10, nil); err != nil {
		t.Fatalf("Put() = %v", err)
	}
	<-done
	for b, n := range sent {
		if n != 1 {
			t.Errorf("DATA %d sent %d times, want once", b, n)
		}
	}
	if len(sent) != 5 {
		t.Errorf("%d distinct blocks sent, want 5", len(sent))
	}
}

// TestClientOutOfOrder delivers blocks out of order and duplicated; the
// client re-acknowledges what it has and assembles the file correctly.
func TestClientOutOfOrder(t *testing.T) {
	blk := func(b uint16) []byte { return appendDATA(nil, b, bytes.Repeat([]byte{byte(b)}, 512)) }
	var acks []uint16
	addr, done := scripted(t, func(p *peer) {
		p.send(blk(2)) // before block 1: the client acks 0
		if pk, ok := p.recv(); ok {
			acks = append(acks, pk.block)
		}
		p.send(blk(1))
		if pk, ok := p.recv(); ok {
			acks = append(acks, pk.block)
		}
		p.send(blk(1)) // duplicate: re-ack 1
		if pk, ok := p.recv(); ok {
			acks = append(acks, pk.block)
		}
		p.send(blk(2))
		if pk, ok := p.recv(); ok {
			acks = append(acks, pk.block)
		}
		p.send(appendDATA(nil, 3, []byte("end")))
		if pk, ok := p.recv(); ok {
			acks = append(acks, pk.block)
		}
	})
	var buf bytes.Buffer
	n, err := (&Client{Timeout: time.Second}).Get(context.Background(), addr, "f", &buf)
	<-done
	want := append(append(bytes.Repeat([]byte{1}, 512), bytes.Repeat([]byte{2}, 512)...), "end"...)
	if err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Get() = %d, %v; want %d bytes in block order", n, err, len(want))
	}
	if wantAcks := []uint16{0, 1, 1, 2, 3}; !equalU16(acks, wantAcks) {
		t.Errorf("ACKs = %v, want %v", acks, wantAcks)
	}
}

func equalU16(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestServerBadRequests sends malformed and odd requests to Server.
func TestServerBadRequests(t *testing.T) {
	m := &memFS{files: map[string][]byte{"fw.bin": payload(700)}}
	addr := serve(t, m.server())
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to, _ := net.ResolveUDPAddr("udp4", addr)
	exchange := func(t *testing.T, req []byte) packet {
		t.Helper()
		if _, err := conn.WriteTo(req, to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, maxPacket)
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to %q: %v", req, err)
		}
		p, err := decode(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		p.data = bytes.Clone(p.data)
		return p
	}
	tests := []struct {
		name  string
		req   []byte
		op    uint16
		code  ErrorCode
		block uint16
	}{
		{"short packet", []byte{0, 1}, opERROR, ErrCodeIllegalOp, 0},
		{"no terminator", []byte("\x00\x01fw.bin\x00octet"), opERROR, ErrCodeIllegalOp, 0},
		{"DATA to the listener", rawData(1, 10), opERROR, ErrCodeIllegalOp, 0},
		{"oversized", make([]byte, maxPacket+30), opERROR, ErrCodeIllegalOp, 0},
		{"netascii refused", appendRequest(nil, opRRQ, "fw.bin", "netascii", nil), opERROR, ErrCodeIllegalOp, 0},
		{"unparsable options ignored", appendRequest(nil, opRRQ, "fw.bin", "octet",
			[]option{{"tsize", "enable"}, {"blksize", "abc"}, {"windowsize", "0"}, {"foo", "bar"}}), opDATA, 0, 1},
		{"tsize answered", appendRequest(nil, opRRQ, "fw.bin", "OCTET", []option{{"tsize", "0"}, {"blksize", "99999"}}), opOACK, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exchange(t, tt.req)
			if p.op != tt.op || (p.op == opERROR && p.code != tt.code) || (p.op == opDATA && p.block != tt.block) {
				t.Fatalf("answer = op %d code %d block %d (%q), want op %d code %d block %d", p.op, p.code, p.block, p.msg, tt.op, tt.code, tt.block)
			}
			if p.op == opOACK {
				want := []option{{"tsize", "700"}}
				if len(p.opts) != 1 || p.opts[0] != want[0] {
					t.Errorf("OACK options = %v, want %v (blksize 99999 out of range is ignored)", p.opts, want)
				}
			}
		})
	}
}

// TestServerRefusesDuplicateOptions: a request that gives one option twice
// is answered with error 8 (RFC 2347), not an OACK echoing both values,
// and nothing is read or written.
func TestServerRefusesDuplicateOptions(t *testing.T) {
	tests := []struct {
		name string
		op   uint16
		opts []option
	}{
		{"blksize twice", opRRQ, []option{{"blksize", "512"}, {"blksize", "1024"}}},
		{"same value twice", opRRQ, []option{{"tsize", "0"}, {"windowsize", "4"}, {"tsize", "0"}}},
		{"names differing in case", opWRQ, []option{{"tsize", "10"}, {"TSize", "10"}}},
		{"unknown option twice", opRRQ, []option{{"foo", "1"}, {"foo", "2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFS{files: map[string][]byte{"fw.bin": payload(700)}}
			addr := serve(t, m.server())
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			to, _ := net.ResolveUDPAddr("udp4", addr)
			name := "fw.bin"
			if tt.op == opWRQ {
				name = "new.bin"
			}
			if _, err := conn.WriteTo(appendRequest(nil, tt.op, name, "octet", tt.opts), to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, maxPacket)
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			p, err := decode(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if p.op != opERROR || p.code != ErrCodeBadOptions {
				t.Fatalf("answer to %v = op %d code %d opts %v, want ERROR %d", tt.opts, p.op, p.code, p.opts, ErrCodeBadOptions)
			}
			if _, ok := m.get("new.bin"); ok {
				t.Errorf("refused WRQ created new.bin")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(appendRequest(nil, opRRQ, "fw.bin", "octet", []option{{"blksize", "1428"}, {"tsize", "enable"}}))
	f.Add(appendRequest(nil, opWRQ, "a", "netascii", nil))
	f.Add(appendOACK(nil, []option{{"windowsize", "8"}}))
	f.Add(rawData(65535, 12))
	f.Add(appendACK(nil, 7))
	f.Add(appendERROR(nil, ErrCodeDiskFull, "full\xff\x01"))
	f.Add([]byte{0, 6})
	f.Add([]byte{0, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes the same.
		var enc []byte
		switch p.op {
		case opRRQ, opWRQ:
			enc = appendRequest(nil, p.op, p.filename, p.mode, p.opts)
		case opOACK:
			enc = appendOACK(nil, p.opts)
		case opDATA:
			enc = appendDATA(nil, p.block, p.data)
		case opACK:
			enc = appendACK(nil, p.block)
		case opERROR:
			enc = appendERROR(nil, p.code, p.msg)
		}
		q, err := decode(enc)
		if err != nil {
			t.Fatalf("decode(encode(%+v)) = %v", p, err)
		}
		if q.op != p.op || q.block != p.block || q.filename != p.filename || q.code != p.code || !bytes.Equal(q.data, p.data) || len(q.opts) != len(p.opts) {
			t.Fatalf("round trip %+v -> %+v", p, q)
		}
		// parseOption never panics and validates its range.
		for _, o := range p.opts {
			if v, ok := parseOption(o); ok && v < 0 {
				t.Fatalf("parseOption(%v) = %d, ok", o, v)
			}
		}
	})
}
