// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
	"github.com/fieldgate/fieldgate/devices/serialtest"
)

// Open binds the device's endpoint now, so a caller that asked for port 0
// (or waits for the pty link) learns the address before Run: the TCP
// listener's host:port, or the path of the pty link. Run calls it if the
// caller did not; Run's end releases what Open took.
func (d *ModbusDevice) Open() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.rtu {
		if d.ln == nil {
			ln, err := net.Listen("tcp", d.spec.Address)
			if err != nil {
				return "", fmt.Errorf("sim %s: listen: %w", d.spec.ID, err)
			}
			d.ln = ln
		}
		return d.ln.Addr().String(), nil
	}
	if d.port != nil {
		return d.spec.Address, nil
	}
	// The device end is a second descriptor of pty A's slave: unlike a pty
	// master, it supports read deadlines. Baud 0 relays at memory speed.
	pair, err := serialtest.NewPair(serialtest.Config{Baud: d.spec.Baud, Log: d.log})
	if err != nil {
		return "", fmt.Errorf("sim %s: %w", d.spec.ID, err)
	}
	port, err := pair.A.OpenSlave()
	if err == nil {
		err = pair.B.Link(d.spec.Address)
	}
	if err != nil {
		pair.Close()
		return "", fmt.Errorf("sim %s: %w", d.spec.ID, err)
	}
	d.pair, d.port = pair, port
	return d.spec.Address, nil
}

func (d *ModbusDevice) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ln != nil {
		d.ln.Close()
		d.ln = nil
	}
	if d.pair != nil {
		d.port.Close()
		d.pair.Close()
		d.pair = nil
	}
	d.port = nil
}

func (d *ModbusDevice) runTCP(ctx context.Context) error {
	if _, err := d.Open(); err != nil {
		return err
	}
	defer d.release()
	d.mu.Lock()
	ln := d.ln
	d.mu.Unlock()
	d.log.Info("modbus tcp device listening", "addr", ln.Addr().String(), "version", d.Version())
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim %s: accept: %w", d.spec.ID, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			d.serveTCP(c)
		}()
	}
}

// serveTCP answers requests on c until the client leaves, sends a
// malformed ADU, or the device goes off the bus (the connection drops, as
// it does when a PLC resets).
func (d *ModbusDevice) serveTCP(c net.Conn) {
	for {
		h, req, err := pdu.ReadMBAP(c)
		if err != nil {
			if errors.Is(err, pdu.ErrMalformed) {
				d.log.Debug("modbus tcp: dropping client", "err", err)
			}
			return
		}
		d.mu.Lock()
		off := d.offline()
		d.mu.Unlock()
		if off {
			return
		}
		resp := d.handle(req)
		if _, err := c.Write(pdu.AppendMBAP(nil, h, resp)); err != nil {
			return
		}
	}
}

func (d *ModbusDevice) runRTU(ctx context.Context) error {
	if _, err := d.Open(); err != nil {
		return err
	}
	defer d.release()
	d.mu.Lock()
	port := d.port
	d.mu.Unlock()
	d.log.Info("modbus rtu device on pty", "link", d.spec.Address, "baud", d.spec.Baud, "version", d.Version())
	// A frame ends when the bytes RTUFrameLen asks for are in; a partial
	// frame followed by this much silence is noise and is dropped.
	gap := 50 * time.Millisecond
	buf := make([]byte, 0, 4*pdu.MaxRTU)
	rd := make([]byte, 512)
	last := time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		_ = port.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := port.Read(rd)
		if n > 0 {
			buf = append(buf, rd[:n]...)
			last = time.Now()
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim %s: read pty: %w", d.spec.ID, err)
		}
		if n == 0 && len(buf) > 0 && time.Since(last) > gap {
			d.log.Debug("modbus rtu: dropping partial frame", "bytes", len(buf))
			buf = buf[:0]
		}
		for len(buf) > 0 {
			want, err := pdu.RTUFrameLen(buf, false)
			if err != nil {
				d.log.Debug("modbus rtu: dropping garbage", "err", err, "bytes", len(buf))
				buf = buf[:0]
				break
			}
			if want == 0 || len(buf) < want {
				break
			}
			frame := buf[:want]
			d.serveRTU(port, frame)
			buf = append(buf[:0], buf[want:]...)
		}
	}
}

func (d *ModbusDevice) serveRTU(port *os.File, frame []byte) {
	unit, req, err := pdu.ParseRTU(frame)
	if err != nil {
		d.log.Debug("modbus rtu: ignoring frame", "err", err) // a slave never answers a bad CRC
		return
	}
	if unit != d.p.Unit && unit != 0 {
		return
	}
	d.mu.Lock()
	off := d.offline()
	d.mu.Unlock()
	if off {
		return
	}
	resp := d.handle(pdu.PDU{Func: req.Func, Data: append([]byte(nil), req.Data...)})
	if unit == 0 {
		return // broadcast: act, never answer
	}
	if _, err := port.Write(pdu.AppendRTU(nil, unit, resp)); err != nil {
		d.log.Debug("modbus rtu: write", "err", err)
	}
}
