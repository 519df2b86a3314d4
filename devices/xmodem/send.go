// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"time"
)

// Send sends size bytes read from r with XMODEM-1K: 1024-byte blocks with
// CRC-16 (the tail in a 128-byte block when it fits), padded with 0x1A. If
// the receiver asks for checksum mode (NAK instead of 'C'), Send falls back
// to 128-byte checksum blocks. Console text before the receiver's 'C' is
// skipped. On error the peer is sent CAN CAN, and the error wraps one of
// ErrTimeout, ErrRetries, ErrCanceled, a read error, or ctx's error.
func Send(ctx context.Context, p Port, r io.Reader, size int64, opt Options) error {
	return send(newConn(ctx, p), r, size, opt)
}

func send(c *conn, r io.Reader, size int64, opt Options) error {
	s := &sender{c: c, opt: opt.withDefaults()}
	crc, err := s.waitStart(s.opt.StartTimeout)
	if err != nil {
		return s.fail("xmodem send: wait for receiver", err)
	}
	if err := s.sendData(r, size, crc); err != nil {
		return err
	}
	if err := s.sendEOT(false); err != nil {
		return s.fail("xmodem send: end", err)
	}
	return nil
}

// SendYMODEM sends one file as a YMODEM batch: block 0 with name and exact
// size, the data as in Send, EOT (repeated when the receiver NAKs the
// first, as lrzsz does), and the all-NUL block 0 that ends the batch. If
// the receiver never acknowledges that last block, the file has still
// arrived whole: SendYMODEM logs a warning and returns nil.
func SendYMODEM(ctx context.Context, p Port, name string, r io.Reader, size int64, opt Options) error {
	return sendYMODEM(newConn(ctx, p), name, r, size, opt)
}

func sendYMODEM(c *conn, name string, r io.Reader, size int64, opt Options) error {
	s := &sender{c: c, opt: opt.withDefaults()}
	crc, err := s.waitStart(s.opt.StartTimeout)
	if err != nil {
		return s.fail("ymodem send: wait for receiver", err)
	}
	if !crc {
		return s.fail("ymodem send", fmt.Errorf("%w: receiver asked for checksum mode; YMODEM needs CRC", ErrProtocol))
	}
	hdr := make([]byte, 128)
	name = path.Base(name)
	if len(name) > 100 {
		name = name[:100]
	}
	copy(hdr, name+"\x00"+strconv.FormatInt(size, 10))
	if err := s.sendBlock(0, hdr, true); err != nil {
		return s.fail("ymodem send: header block", err)
	}
	if _, err := s.waitStart(s.opt.Timeout); err != nil {
		return s.fail("ymodem send: wait for receiver after header", err)
	}
	if err := s.sendData(r, size, true); err != nil {
		return err
	}
	if err := s.sendEOT(true); err != nil {
		return s.fail("ymodem send: end", err)
	}
	// End of batch: the receiver asks for the next file with 'C' and gets
	// an all-NUL block 0. The file is complete already; losing this
	// exchange (a receiver that exits, a line that closes) is only a warning.
	if _, err := s.waitStart(s.opt.Timeout); err != nil {
		s.opt.Log.Warn("ymodem send: no request for the end-of-batch block; file was acknowledged", "err", err)
		return nil
	}
	s.opt.Retries = min(s.opt.Retries, 2)
	if err := s.sendBlock(0, make([]byte, 128), true); err != nil {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		s.opt.Log.Warn("ymodem send: end-of-batch block not acknowledged; file was acknowledged", "err", err)
	}
	return nil
}

type sender struct {
	c   *conn
	opt Options
}

// fail cancels the transfer on the line and wraps err with op.
func (s *sender) fail(op string, err error) error {
	if !errors.Is(err, ErrCanceled) {
		s.c.cancel()
	}
	return fmt.Errorf("%s: %w", op, err)
}

// waitStart waits for the receiver's handshake: a 'C' (CRC) or NAK
// (checksum) followed by a quiet line. A 'C' followed at once by other
// bytes is console text, not a handshake.
func (s *sender) waitStart(timeout time.Duration) (crc bool, err error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := s.c.getc(deadline)
		if err != nil {
			return false, err
		}
		switch b {
		case crcReq, nak:
			next, err := s.c.getc(time.Now().Add(quiet))
			if errors.Is(err, ErrTimeout) {
				s.opt.Log.Debug("receiver ready", "crc", b == crcReq)
				return b == crcReq, nil
			}
			if err != nil {
				return false, err
			}
			s.c.unread()
			_ = next
		case can:
			if s.c.isCancel() {
				return false, ErrCanceled
			}
		}
	}
}

// sendData sends size bytes from r as blocks 1, 2, … and reports progress.
// Each next block is read and framed while the current one is on the wire
// (89 ms at 115200 baud), so neither a slow image read (flash, a page-cache
// miss) nor the CRC sits between an ACK and the next block.
func (s *sender) sendData(r io.Reader, size int64, crc bool) error {
	buf := make([]byte, 1024)
	var done int64
	num := byte(1)
	frame, want, err := s.readFrame(r, buf, size, done, num, crc)
	for err == nil && frame != nil {
		var next []byte
		var nextWant int
		var nextErr error
		prepare := func() { next, nextWant, nextErr = s.readFrame(r, buf, size, done+int64(want), num+1, crc) }
		if err := s.deliver(num, frame, prepare); err != nil {
			return s.fail(fmt.Sprintf("xmodem send: block %d (offset %d)", num, done), err)
		}
		done += int64(want)
		num++
		if s.opt.Progress != nil {
			s.opt.Progress(done, size)
		}
		frame, want, err = next, nextWant, nextErr
	}
	if err != nil {
		s.c.cancel()
		return err
	}
	return nil
}

// readFrame reads the block that starts at offset done and frames it as
// block num; a nil frame means the image is complete.
func (s *sender) readFrame(r io.Reader, buf []byte, size, done int64, num byte, crc bool) ([]byte, int, error) {
	if done >= size {
		return nil, 0, nil
	}
	n := 1024
	if !crc || s.opt.Block128 || size-done <= 128 {
		n = 128
	}
	want := int(min(int64(n), size-done))
	if _, err := io.ReadFull(r, buf[:want]); err != nil {
		return nil, 0, fmt.Errorf("xmodem send: read image at %d of %d: %w", done, size, err)
	}
	for i := want; i < n; i++ {
		buf[i] = pad
	}
	return makeFrame(num, buf[:n], crc), want, nil
}

// makeFrame is one block on the wire: header, number, its complement, the
// data, and the CRC-16 (or the checksum).
func makeFrame(num byte, data []byte, crc bool) []byte {
	frame := make([]byte, 0, 3+len(data)+2)
	hdr := byte(soh)
	if len(data) == 1024 {
		hdr = stx
	}
	frame = append(frame, hdr, num, ^num)
	frame = append(frame, data...)
	if crc {
		c := CRC16(data)
		return append(frame, byte(c>>8), byte(c))
	}
	return append(frame, checksum(data))
}

// sendBlock sends one block until the receiver ACKs it.
func (s *sender) sendBlock(num byte, data []byte, crc bool) error {
	return s.deliver(num, makeFrame(num, data, crc), nil)
}

// deliver writes frame until the receiver ACKs it. onWire, if not nil, runs
// once after the first write, while the frame is still being sent.
func (s *sender) deliver(num byte, frame []byte, onWire func()) error {
	var last error = ErrTimeout
	for try := 0; try <= s.opt.Retries; try++ {
		if try > 0 {
			s.opt.Log.Debug("resend block", "block", num, "try", try, "after", last)
		}
		if err := s.c.write(frame, s.opt.Timeout); err != nil {
			return err
		}
		if onWire != nil {
			onWire()
			onWire = nil
		}
		reply, err := s.await(false)
		switch {
		case err != nil && !errors.Is(err, ErrTimeout):
			return err
		case err != nil:
			last = err
		case reply == ack:
			return nil
		case reply == nak:
			last = errors.New("NAK")
		default:
			last = fmt.Errorf("garbled answer %#02x", reply)
		}
	}
	return fmt.Errorf("%w (%d tries, last: %v)", ErrRetries, s.opt.Retries+1, last)
}

// await waits for ACK or NAK, skipping stale 'C's (with wantC, it
// returns a 'C' too). Any other byte is
// most likely a garbled ACK or NAK: await lets the line go quiet and returns
// it, and the caller sends again at once rather than after a timeout (a
// receiver that did get the block acknowledges the duplicate).
func (s *sender) await(wantC bool) (byte, error) {
	deadline := time.Now().Add(s.opt.Timeout)
	for {
		b, err := s.c.getc(deadline)
		if err != nil {
			return 0, err
		}
		switch b {
		case ack, nak:
			return b, nil
		case crcReq:
			if wantC {
				return b, nil
			}
			continue
		case can:
			if s.c.isCancel() {
				return 0, ErrCanceled
			}
		}
		if err := s.c.purge(quiet, s.opt.Timeout); err != nil {
			return 0, err
		}
		return b, nil
	}
}

// sendEOT sends EOT until it is acknowledged. In YMODEM, a 'C' (the
// receiver asking for the next file) also shows that EOT arrived, when
// its ACK was lost; the 'C' is left for the end-of-batch exchange.
func (s *sender) sendEOT(ymodem bool) error {
	var last error = ErrTimeout
	for try := 0; try <= s.opt.Retries; try++ {
		if err := s.c.write([]byte{eot}, s.opt.Timeout); err != nil {
			return err
		}
		reply, err := s.await(ymodem)
		if err == nil && reply == crcReq {
			s.c.unread()
			return nil
		}
		switch {
		case err != nil && !errors.Is(err, ErrTimeout):
			return err
		case err != nil:
			last = err
		case reply == ack:
			return nil
		case reply == nak:
			last = errors.New("NAK") // lrzsz NAKs the first EOT in YMODEM
		default:
			last = fmt.Errorf("garbled answer %#02x", reply)
		}
	}
	return fmt.Errorf("EOT: %w (last: %v)", ErrRetries, last)
}
