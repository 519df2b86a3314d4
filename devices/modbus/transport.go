// SPDX-License-Identifier: Apache-2.0

package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.bug.st/serial"

	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
)

// conn carries the PDUs simonvetter/modbus cannot send (0x14, 0x15, 0x2B)
// over one TCP connection (MBAP) or one serial port (RTU framing). It is
// opened per device step and closed at its end, so an RTU port is never held
// by two clients at once. Not safe for concurrent use.
type conn struct {
	unit    byte
	timeout time.Duration
	retries int // extra attempts after a missing or garbled answer

	nc  net.Conn // TCP
	txn uint16

	port   serial.Port // RTU
	t35    time.Duration
	lastIO time.Time
}

func dialTCP(ctx context.Context, addr string, p Profile) (*conn, error) {
	d := net.Dialer{Timeout: p.Timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{unit: p.Unit, timeout: p.Timeout, retries: p.Retries, nc: nc}, nil
}

func openRTU(path string, mode *serial.Mode, p Profile) (*conn, error) {
	port, err := serial.Open(path, mode)
	if err != nil {
		return nil, err
	}
	_ = port.ResetInputBuffer() // stale bytes from an earlier conversation
	return &conn{unit: p.Unit, timeout: p.Timeout, retries: p.Retries, port: port, t35: frameGap(mode.BaudRate)}, nil
}

// frameGap is the RTU inter-frame silence t3.5: 3.5 characters of 11 bits,
// fixed at 1.75 ms above 19200 baud (Modbus over serial line, 2.5.1.1).
func frameGap(baud int) time.Duration {
	if baud <= 0 || baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(float64(time.Second) * 38.5 / float64(baud))
}

func (c *conn) Close() error {
	if c.nc != nil {
		return c.nc.Close()
	}
	return c.port.Close()
}

// do sends req and returns the device's response, checked to answer req
// (an exception response is returned as *pdu.Exception). Each attempt waits
// at most c.timeout, less if ctx ends sooner; a request that got no answer,
// or a garbled one, is sent again up to c.retries times. Only idempotent
// requests go through do (file records, identification).
func (c *conn) do(ctx context.Context, req pdu.PDU) (pdu.PDU, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, req)
		if err == nil || attempt >= c.retries || ctx.Err() != nil || !c.retryable(err) {
			return resp, err
		}
	}
}

// retryable reports whether err means the answer was lost or garbled on
// the way, as opposed to the device's own answer.
func (c *conn) retryable(err error) bool {
	var ex *pdu.Exception
	if errors.As(err, &ex) {
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, pdu.ErrCRC) {
		return true
	}
	return c.port != nil && errors.Is(err, pdu.ErrMalformed)
}

func (c *conn) once(ctx context.Context, req pdu.PDU) (pdu.PDU, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var resp pdu.PDU
	var err error
	if c.nc != nil {
		resp, err = c.doTCP(ctx, deadline, req)
	} else {
		resp, err = c.doRTU(ctx, deadline, req)
	}
	if err != nil {
		if ctx.Err() != nil {
			return pdu.PDU{}, ctx.Err()
		}
		return pdu.PDU{}, err
	}
	return resp, pdu.CheckResponse(req.Func, resp)
}

func (c *conn) doTCP(ctx context.Context, deadline time.Time, req pdu.PDU) (pdu.PDU, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	if err := c.nc.SetDeadline(deadline); err != nil {
		return pdu.PDU{}, err
	}
	c.txn++
	if _, err := c.nc.Write(pdu.AppendMBAP(nil, pdu.MBAP{Txn: c.txn, Unit: c.unit}, req)); err != nil {
		return pdu.PDU{}, err
	}
	h, resp, err := pdu.ReadMBAP(c.nc)
	// A late answer to an earlier attempt carries an older transaction id:
	// skip it.
	for err == nil && h.Txn != c.txn && c.txn-h.Txn < 0x8000 {
		h, resp, err = pdu.ReadMBAP(c.nc)
	}
	if err != nil {
		return pdu.PDU{}, err
	}
	if h.Txn != c.txn || h.Unit != c.unit {
		return pdu.PDU{}, fmt.Errorf("%w: response for transaction %d unit %d, want %d unit %d", pdu.ErrMalformed, h.Txn, h.Unit, c.txn, c.unit)
	}
	return resp, nil
}

func (c *conn) doRTU(ctx context.Context, deadline time.Time, req pdu.PDU) (pdu.PDU, error) {
	if wait := time.Until(c.lastIO.Add(c.t35)); wait > 0 {
		time.Sleep(wait)
	}
	if _, err := c.port.Write(pdu.AppendRTU(nil, c.unit, req)); err != nil {
		return pdu.PDU{}, err
	}
	r := &deadlineReader{ctx: ctx, port: c.port, deadline: deadline}
	unit, resp, err := pdu.ReadRTU(r, true)
	c.lastIO = time.Now()
	if err != nil {
		if errors.Is(err, pdu.ErrMalformed) || errors.Is(err, pdu.ErrCRC) || errors.Is(err, os.ErrDeadlineExceeded) {
			c.resync(time.Now().Add(c.timeout))
		}
		return pdu.PDU{}, err
	}
	if unit != c.unit {
		return pdu.PDU{}, fmt.Errorf("%w: response from unit %d, want %d", pdu.ErrMalformed, unit, c.unit)
	}
	return resp, nil
}

// resync drops whatever follows a bad frame until the line has been quiet
// for t3.5, so the next request starts on a frame boundary.
func (c *conn) resync(deadline time.Time) {
	buf := make([]byte, 256)
	quiet := max(c.t35, 5*time.Millisecond)
	for time.Now().Before(deadline) {
		_ = c.port.SetReadTimeout(quiet)
		n, err := c.port.Read(buf)
		if n == 0 || err != nil {
			break
		}
	}
	_ = c.port.ResetInputBuffer()
	c.lastIO = time.Now()
}

// deadlineReader turns go.bug.st/serial's "0 bytes, nil error on timeout"
// into os.ErrDeadlineExceeded at deadline, and stops when ctx ends. It polls
// in short slices so a cancelled step does not wait for the whole timeout.
type deadlineReader struct {
	ctx      context.Context
	port     serial.Port
	deadline time.Time
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		left := time.Until(r.deadline)
		if left <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		if err := r.port.SetReadTimeout(min(left, 50*time.Millisecond)); err != nil {
			return 0, err
		}
		n, err := r.port.Read(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
}
