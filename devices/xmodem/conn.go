// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Port is the line a transfer runs over. *os.File (a pty or tty opened by
// the os package) satisfies it; a serial port library that has a read
// timeout instead of a deadline needs a small adapter (the driver in this
// package has one for go.bug.st/serial). A Read that hits the deadline must
// return an error wrapping os.ErrDeadlineExceeded. If the Port also has
// SetWriteDeadline, writes get deadlines too.
type Port interface {
	io.Reader
	io.Writer
	SetReadDeadline(t time.Time) error
}

type writeDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

// Errors a transfer ends with (wrapped, with the operation and block).
var (
	// ErrTimeout: the peer did not answer within the deadline.
	ErrTimeout = errors.New("no answer from the peer")
	// ErrRetries: the peer kept rejecting or garbling a block or EOT.
	ErrRetries = errors.New("too many retries")
	// ErrCanceled: the peer aborted the transfer with CAN CAN.
	ErrCanceled = errors.New("canceled by the peer")
	// ErrProtocol: the peer broke the protocol (block sequence, YMODEM header).
	ErrProtocol = errors.New("protocol violation")
)

const (
	soh    = 0x01
	stx    = 0x02
	eot    = 0x04
	ack    = 0x06
	nak    = 0x15
	can    = 0x18
	crcReq = 'C'
	pad    = 0x1A
)

// readSlice bounds one blocking Read so that a cancelled context is noticed
// quickly even on ports whose reads cannot be interrupted.
const readSlice = 200 * time.Millisecond

// conn is a buffered reader with deadlines and a context over a Port.
type conn struct {
	ctx  context.Context
	p    Port
	buf  [4096]byte
	r, w int
}

func newConn(ctx context.Context, p Port) *conn { return &conn{ctx: ctx, p: p} }

// fill reads at least one byte into the buffer before deadline.
func (c *conn) fill(deadline time.Time) error {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	for {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return ErrTimeout
		}
		step := now.Add(readSlice)
		if deadline.Before(step) {
			step = deadline
		}
		if err := c.p.SetReadDeadline(step); err != nil {
			return fmt.Errorf("set read deadline: %w", err)
		}
		n, err := c.p.Read(c.buf[c.w:])
		c.w += n
		if n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read: %w", err)
		}
	}
}

// getc returns the next byte, waiting until deadline.
func (c *conn) getc(deadline time.Time) (byte, error) {
	if c.r == c.w {
		if err := c.fill(deadline); err != nil {
			return 0, err
		}
	}
	b := c.buf[c.r]
	c.r++
	return b, nil
}

// quietFor reports whether no byte arrives within d. A byte that does
// arrive stays in the buffer.
func (c *conn) quietFor(d time.Duration) bool {
	if c.r < c.w {
		return false
	}
	return errors.Is(c.fill(time.Now().Add(d)), ErrTimeout)
}

// unread pushes back the byte getc just returned.
func (c *conn) unread() { c.r-- }

// readFull fills b, allowing at most charTimeout of silence between bytes.
func (c *conn) readFull(b []byte, charTimeout time.Duration) error {
	for len(b) > 0 {
		if c.r == c.w {
			if err := c.fill(time.Now().Add(charTimeout)); err != nil {
				return err
			}
		}
		n := copy(b, c.buf[c.r:c.w])
		c.r += n
		b = b[n:]
	}
	return nil
}

// purge discards input until the line has been quiet for quiet, or until
// limit has passed.
func (c *conn) purge(quiet, limit time.Duration) error {
	c.r, c.w = 0, 0
	end := time.Now().Add(limit)
	for {
		d := time.Now().Add(quiet)
		if end.Before(d) {
			d = end
		}
		err := c.fill(d)
		c.r, c.w = 0, 0
		switch {
		case errors.Is(err, ErrTimeout):
			return nil
		case err != nil:
			return err
		case !time.Now().Before(end):
			return nil
		}
	}
}

// drain discards whatever input is already buffered or arrives within d.
func (c *conn) drain(d time.Duration) { _ = c.purge(d, d) }

func (c *conn) write(b []byte, timeout time.Duration) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if wd, ok := c.p.(writeDeadliner); ok {
		_ = wd.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := c.p.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("write: %w", ErrTimeout)
		}
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// cancel tells the peer to abort: CAN CAN (a third one for receivers that
// lost one to line noise), best effort.
func (c *conn) cancel() {
	if wd, ok := c.p.(writeDeadliner); ok {
		_ = wd.SetWriteDeadline(time.Now().Add(time.Second))
	}
	_, _ = c.p.Write([]byte{can, can, can})
}

// isCancel reads the byte after a CAN: a second CAN within a second is the
// peer's abort. Any other byte is pushed back.
func (c *conn) isCancel() bool {
	b, err := c.getc(time.Now().Add(time.Second))
	if err != nil {
		return false
	}
	if b == can {
		return true
	}
	c.unread()
	return false
}
