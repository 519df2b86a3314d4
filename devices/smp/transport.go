// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"go.bug.st/serial"
)

// Transport carries whole SMP packets. Recv blocks until a packet arrives
// or ctx ends, and returns ctx's error then; a packet that could not be
// decoded is returned as an error wrapping ErrMalformed, and the transport
// stays usable. A Transport is used by one goroutine at a time.
type Transport interface {
	Send(pkt []byte) error
	Recv(ctx context.Context) ([]byte, error)
	Close() error
}

// DefaultUDPPort is the SMP UDP port.
const DefaultUDPPort = "1337"

// UDPTransport sends one SMP packet per datagram to a device.
type UDPTransport struct {
	conn *net.UDPConn
	buf  []byte
}

// DialUDP returns a transport to addr ("host" or "host:port"; port 1337 by
// default). It sends nothing.
func DialUDP(addr string) (*UDPTransport, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, DefaultUDPPort)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial smp udp %s: %w", addr, err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("dial smp udp %s: %w", addr, err)
	}
	return &UDPTransport{conn: c, buf: make([]byte, MaxPacket+1)}, nil
}

// Send writes pkt as one datagram. A refused port (the device is
// rebooting) is not an error: the reply just does not come.
func (t *UDPTransport) Send(pkt []byte) error {
	if _, err := t.conn.Write(pkt); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Recv returns the next datagram.
func (t *UDPTransport) Recv(ctx context.Context) ([]byte, error) {
	dl, _ := ctx.Deadline()
	if err := t.conn.SetReadDeadline(dl); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { t.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		n, err := t.conn.Read(t.buf)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, syscall.ECONNREFUSED):
			continue // ICMP from an earlier datagram; keep waiting
		case errors.Is(err, net.ErrClosed):
			return nil, fmt.Errorf("receive: %w", err)
		case err != nil:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, context.DeadlineExceeded
			}
			return nil, fmt.Errorf("receive: %w", err)
		case n > MaxPacket:
			return nil, fmt.Errorf("receive: datagram over %d bytes: %w", MaxPacket, ErrMalformed)
		}
		return append([]byte(nil), t.buf[:n]...), nil
	}
}

// Close closes the socket.
func (t *UDPTransport) Close() error { return t.conn.Close() }

// SerialTransport carries SMP packets in console frames over a serial port,
// skipping the device's log lines.
type SerialTransport struct {
	port  serial.Port
	dec   FrameDecoder
	queue [][]byte
	errs  []error
	buf   []byte
}

// pollInterval is how often a blocked serial Recv looks at its context.
const pollInterval = 20 * time.Millisecond

// OpenSerial opens path at baud 8N1. logLine, if set, receives each
// console line that is not an SMP frame.
func OpenSerial(path string, baud int, logLine func([]byte)) (*SerialTransport, error) {
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("open smp serial %s: %w", path, err)
	}
	if err := p.SetReadTimeout(pollInterval); err != nil {
		p.Close()
		return nil, fmt.Errorf("open smp serial %s: %w", path, err)
	}
	t := &SerialTransport{port: p, buf: make([]byte, 4096)}
	t.dec.Log = logLine
	return t, nil
}

// Send writes pkt as one console frame.
func (t *SerialTransport) Send(pkt []byte) error {
	f, err := EncodeFrame(pkt)
	if err != nil {
		return err
	}
	if _, err := t.port.Write(f); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Recv returns the next packet reassembled from console frames.
func (t *SerialTransport) Recv(ctx context.Context) ([]byte, error) {
	for {
		if len(t.errs) > 0 {
			err := t.errs[0]
			t.errs = t.errs[1:]
			return nil, err
		}
		if len(t.queue) > 0 {
			p := t.queue[0]
			t.queue = t.queue[1:]
			return p, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := t.port.Read(t.buf)
		if err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
		t.dec.Feed(t.buf[:n], func(p []byte, err error) {
			if err != nil {
				t.errs = append(t.errs, err)
				return
			}
			t.queue = append(t.queue, p)
		})
	}
}

// Close closes the port.
func (t *SerialTransport) Close() error { return t.port.Close() }

// Reopener is a Transport that opens its underlying transport on first use
// and again after an I/O error (a USB serial port vanishes while the device
// reboots; a pty is replaced when a simulator restarts). An I/O error looks
// like a lost packet to the Client, which retransmits on the new transport;
// LastError keeps the cause for the timeout message.
type Reopener struct {
	Open func() (Transport, error)
	log  func(err error)

	t       Transport
	lastErr error
}

// NewReopener returns a Reopener over open; logErr, if set, sees each I/O
// error.
func NewReopener(open func() (Transport, error), logErr func(error)) *Reopener {
	return &Reopener{Open: open, log: logErr}
}

func (r *Reopener) broken(err error) {
	r.lastErr = err
	if r.log != nil {
		r.log(err)
	}
	if r.t != nil {
		r.t.Close()
		r.t = nil
	}
}

// Send sends pkt, reopening the transport first if needed. An I/O error
// is kept for LastError, not returned: the packet counts as lost.
func (r *Reopener) Send(pkt []byte) error {
	if r.t == nil {
		t, err := r.Open()
		if err != nil {
			r.broken(err)
			return nil
		}
		r.t = t
	}
	if err := r.t.Send(pkt); err != nil {
		r.broken(err)
	}
	return nil
}

// Recv receives from the current transport; without one, or after an I/O
// error, it waits for ctx like a lost reply does.
func (r *Reopener) Recv(ctx context.Context) ([]byte, error) {
	if r.t != nil {
		p, err := r.t.Recv(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrMalformed) || errors.Is(err, context.DeadlineExceeded) {
			return p, err
		}
		r.broken(err)
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// LastError returns the last I/O error, or nil.
func (r *Reopener) LastError() error { return r.lastErr }

// Close closes the current transport.
func (r *Reopener) Close() error {
	if r.t == nil {
		return nil
	}
	err := r.t.Close()
	r.t = nil
	return err
}
