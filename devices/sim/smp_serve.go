// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"context"

	"fmt"
	"io"
	"net"
	"time"

	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/smp"
)

// Run serves the device until ctx ends and returns nil then; call it once.
// UDP kinds listen on Spec.Address; serial kinds create a pty and link its
// terminal side at Spec.Address (removed again on return), paced by a
// serialtest.Line when Spec.Baud is set.
func (d *SMPDevice) Run(ctx context.Context) error {
	if d.spec.Kind == KindSMPSerial {
		return d.runSerial(ctx)
	}
	return d.runUDP(ctx)
}

// Ready is closed once Run listens (UDP) or the pty link exists (serial).
func (d *SMPDevice) Ready() <-chan struct{} { return d.ready }

// Traffic returns the bytes received and sent on the transport so far:
// datagram payloads for UDP, console bytes (frames and log lines) for
// serial.
func (d *SMPDevice) Traffic() (rx, tx int64) { return d.rx.Load(), d.tx.Load() }

// Addr returns the bound UDP address or the pty link once Run listens
// (useful with port 0), or "" before.
func (d *SMPDevice) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

func (d *SMPDevice) runUDP(ctx context.Context) error {
	addr := d.spec.Address
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, smp.DefaultUDPPort)
	}
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("smp device %s: %w", d.spec.ID, err)
	}
	d.mu.Lock()
	d.addr = conn.LocalAddr().String()
	d.mu.Unlock()
	close(d.ready)
	d.log.Info("smp device listening", "addr", d.addr)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	buf := make([]byte, smp.MaxPacket+1)
	for {
		n, from, err := conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("smp device %s: %w", d.spec.ID, err)
		}
		d.rx.Add(int64(n))
		if reply := d.Handle(buf[:n]); reply != nil {
			d.tx.Add(int64(len(reply)))
			if _, err := conn.WriteTo(reply, from); err != nil {
				d.log.Debug("smp reply", "err", err)
			}
		}
	}
}

// serialWriteTimeout bounds a console write nobody reads (no client on the
// pty): the bytes are dropped rather than blocking the device.
const serialWriteTimeout = 2 * time.Second

// uart is the device's end of its serial line.
type uart interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// openUART creates the pty a client opens at Spec.Address and returns the
// device's end of the line: the pty master itself when unpaced, or one end
// of a pipe relayed to the pty by a serialtest.Line at Spec.Baud.
func (d *SMPDevice) openUART() (uart, func(), error) {
	p, err := serialtest.OpenPTY()
	if err != nil {
		return nil, nil, err
	}
	if err := p.Link(d.spec.Address); err != nil {
		p.Close()
		return nil, nil, err
	}
	if d.spec.Baud <= 0 {
		return p, func() { p.Close() }, nil
	}
	dev, lineEnd := net.Pipe()
	l := serialtest.Connect(p, lineEnd, serialtest.Config{Baud: d.spec.Baud})
	return dev, func() { dev.Close(); l.Close(); p.Close() }, nil
}

func (d *SMPDevice) runSerial(ctx context.Context) error {
	u, closeUART, err := d.openUART()
	if err != nil {
		return fmt.Errorf("smp device %s: %w", d.spec.ID, err)
	}
	defer closeUART()
	d.mu.Lock()
	d.addr = d.spec.Address
	d.mu.Unlock()
	close(d.ready)
	d.log.Info("smp device on pty", "link", d.spec.Address, "baud", d.spec.Baud)

	write := func(b []byte) {
		d.tx.Add(int64(len(b)))
		u.SetWriteDeadline(time.Now().Add(serialWriteTimeout))
		if _, err := u.Write(b); err != nil {
			d.log.Debug("smp console write", "err", err)
		}
	}
	d.mu.Lock()
	d.console = func(s string) { write([]byte(s + "\n")) }
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.console = nil
		d.mu.Unlock()
	}()

	stop := context.AfterFunc(ctx, func() { u.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var dec smp.FrameDecoder
	buf := make([]byte, 4096)
	for {
		n, err := u.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("smp device %s: read console: %w", d.spec.ID, err)
		}
		d.rx.Add(int64(n))
		dec.Feed(buf[:n], func(pkt []byte, err error) {
			if err != nil {
				d.log.Debug("smp: bad frame dropped", "err", err)
				return
			}
			reply := d.Handle(pkt)
			if reply == nil {
				return
			}
			f, err := smp.EncodeFrame(reply)
			if err != nil {
				return
			}
			if d.spec.HasFault(FaultChatty) {
				write([]byte("[00:00:01.000,000] <inf> app: still alive\n"))
			}
			write(f)
		})
	}
}
