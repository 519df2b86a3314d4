// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// FileInfo is what a YMODEM sender says about the file in block 0.
type FileInfo struct {
	Name string
	Size int64 // -1 when the sender did not say
}

// Receive receives one XMODEM(-1K) transfer in CRC mode into w and returns
// the number of bytes written. XMODEM has no length field: the count
// includes the sender's 0x1A padding of the last block, which the caller
// removes by the data's own length. Duplicate blocks (a lost ACK) are
// acknowledged and dropped; a bad block is NAKed after the line goes quiet.
// On error the peer is sent CAN CAN.
func Receive(ctx context.Context, p Port, w io.Writer, opt Options) (int64, error) {
	return receive(newConn(ctx, p), w, opt)
}

func receive(c *conn, w io.Writer, opt Options) (int64, error) {
	rc := &receiver{c: c, opt: opt.withDefaults(), w: w, size: -1}
	if err := rc.data(1, false); err != nil {
		return rc.n, rc.fail("xmodem receive", err)
	}
	rc.linger()
	return rc.n, nil
}

// ReceiveYMODEM receives the first file of a YMODEM batch into w, exactly
// as many bytes as block 0 announces (all received bytes if it announces no
// size), and returns what block 0 said. An empty batch (the sender has no
// file) is an error wrapping ErrProtocol. Further files in the batch are
// refused with CAN.
func ReceiveYMODEM(ctx context.Context, p Port, w io.Writer, opt Options) (FileInfo, error) {
	return receiveYMODEM(newConn(ctx, p), w, opt)
}

func receiveYMODEM(c *conn, w io.Writer, opt Options) (FileInfo, error) {
	rc := &receiver{c: c, opt: opt.withDefaults(), w: w, size: -1}
	blk, err := rc.block(0, true)
	if err != nil {
		return FileInfo{}, rc.fail("ymodem receive: header", err)
	}
	info, err := parseHeader(blk)
	if err != nil {
		rc.c.cancel()
		return FileInfo{}, fmt.Errorf("ymodem receive: %w", err)
	}
	if info.Name == "" {
		_ = rc.c.write([]byte{ack}, rc.opt.Timeout)
		return FileInfo{}, fmt.Errorf("ymodem receive: %w: the sender has no file (empty batch)", ErrProtocol)
	}
	rc.size = info.Size
	if err := rc.c.write([]byte{ack, crcReq}, rc.opt.Timeout); err != nil {
		return info, rc.fail("ymodem receive", err)
	}
	if err := rc.data(1, true); err != nil {
		return info, rc.fail("ymodem receive "+info.Name, err)
	}
	if rc.size >= 0 && rc.n != rc.size {
		rc.c.cancel()
		return info, fmt.Errorf("ymodem receive %s: %w: got %d bytes, header says %d", info.Name, ErrProtocol, rc.n, rc.size)
	}
	// End of batch: ask for the next file and expect the all-NUL block 0.
	rc.opt.StartTimeout = rc.opt.Timeout
	end, err := rc.block(0, true)
	for try := 0; errors.Is(err, errEOT) && try < rc.opt.Retries; try++ {
		// Our ACK of EOT was lost: the sender repeats EOT.
		if err = rc.c.write([]byte{ack}, rc.opt.Timeout); err == nil {
			end, err = rc.block(0, true)
		}
	}
	if err != nil {
		if err := c.ctx.Err(); err != nil {
			return info, err
		}
		rc.opt.Log.Warn("ymodem receive: no end-of-batch block; file is complete", "err", err)
		return info, nil
	}
	if end[0] != 0 {
		rc.opt.Log.Warn("ymodem receive: refusing further files in the batch")
		rc.c.cancel()
		return info, nil
	}
	_ = rc.c.write([]byte{ack}, rc.opt.Timeout)
	return info, nil
}

type receiver struct {
	c    *conn
	opt  Options
	w    io.Writer
	n    int64 // bytes written to w
	size int64 // bytes to write, -1 = all
}

func (rc *receiver) fail(op string, err error) error {
	if !errors.Is(err, ErrCanceled) {
		rc.c.cancel()
	}
	return fmt.Errorf("%s: %w", op, err)
}

// linger answers a repeated EOT for a moment after the last ACK: XMODEM
// has no later exchange, so a garbled final ACK would otherwise leave the
// sender retrying into a receiver that has gone.
func (rc *receiver) linger() {
	end := time.Now().Add(lingerFor)
	for {
		b, err := rc.c.getc(end)
		if err != nil {
			return
		}
		if b == eot && rc.c.quietFor(quiet) {
			_ = rc.c.write([]byte{ack}, rc.opt.Timeout)
		}
	}
}

// lingerFor is how long Receive keeps answering EOT after the transfer.
const lingerFor = 4 * quiet

// errEOT is returned by block when the sender ends the transfer.
var errEOT = errors.New("EOT")

// block receives block num (or, with start, asks for it with 'C' until it
// comes). It ACKs duplicates of the block before and returns the data of
// num without acknowledging it. EOT returns errEOT.
func (rc *receiver) block(num byte, start bool) ([]byte, error) {
	startBy := time.Now().Add(rc.opt.StartTimeout)
	wait := rc.opt.Timeout
	if start {
		wait = rc.opt.Poll
		if err := rc.c.write([]byte{crcReq}, rc.opt.Timeout); err != nil {
			return nil, err
		}
	}
	bad := 0
	var last error
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2+1024+2)
	for {
		if bad > rc.opt.Retries {
			return nil, fmt.Errorf("block %d: %w (last: %v)", num, ErrRetries, last)
		}
		h, err := rc.c.getc(deadline)
		if errors.Is(err, ErrTimeout) {
			if start {
				if time.Now().After(startBy) {
					return nil, fmt.Errorf("no block from the sender: %w", ErrTimeout)
				}
				if err := rc.c.write([]byte{crcReq}, rc.opt.Timeout); err != nil {
					return nil, err
				}
			} else {
				bad++
				last = err
				if err := rc.c.write([]byte{nak}, rc.opt.Timeout); err != nil {
					return nil, err
				}
			}
			deadline = time.Now().Add(wait)
			continue
		}
		if err != nil {
			return nil, err
		}
		var size int
		switch h {
		case soh:
			size = 128
		case stx:
			size = 1024
		case eot:
			// Like lrzsz, take EOT only when the line is quiet after it:
			// an 0x04 inside the tail of a garbled block is not the end.
			if rc.c.quietFor(quiet) {
				return nil, errEOT
			}
			continue
		case can:
			if rc.c.isCancel() {
				return nil, ErrCanceled
			}
			continue
		default:
			continue // line noise or console text: wait for a block header
		}
		frame := buf[:2+size+2]
		err = rc.c.readFull(frame, rc.opt.CharTimeout)
		switch {
		case errors.Is(err, ErrTimeout):
			last = fmt.Errorf("block %d truncated", num)
		case err != nil:
			return nil, err
		case frame[0] != ^frame[1]:
			last = fmt.Errorf("block number %d with complement %d", frame[0], frame[1])
		case CRC16(frame[2:2+size]) != uint16(frame[2+size])<<8|uint16(frame[3+size]):
			last = fmt.Errorf("block %d: CRC mismatch", frame[0])
		case frame[0] == num:
			return frame[2 : 2+size], nil
		case frame[0] == num-1:
			// Our ACK was lost; the sender repeats the block before.
			rc.opt.Log.Debug("duplicate block", "block", frame[0])
			reply := []byte{ack}
			if num == 1 {
				reply = append(reply, crcReq) // YMODEM header repeated
			}
			if err := rc.c.write(reply, rc.opt.Timeout); err != nil {
				return nil, err
			}
			deadline = time.Now().Add(rc.opt.Timeout)
			continue
		default:
			return nil, fmt.Errorf("%w: got block %d, want %d", ErrProtocol, frame[0], num)
		}
		// A bad or truncated block: let its tail pass, then NAK.
		bad++
		rc.opt.Log.Debug("bad block", "want", num, "err", last)
		if err := rc.c.purge(quiet, rc.opt.Timeout); err != nil {
			return nil, err
		}
		if err := rc.c.write([]byte{nak}, rc.opt.Timeout); err != nil {
			return nil, err
		}
		deadline = time.Now().Add(rc.opt.Timeout)
	}
}

// data receives blocks from first until EOT, writing them to w. With
// ymodem, the first EOT is NAKed and the second acknowledged, like lrzsz.
func (rc *receiver) data(first byte, ymodem bool) error {
	num := first
	start := !ymodem // XMODEM: the receiver starts the transfer with 'C'
	seenEOT := false
	for {
		blk, err := rc.block(num, start)
		if errors.Is(err, errEOT) {
			if ymodem && !seenEOT {
				seenEOT = true
				if err := rc.c.write([]byte{nak}, rc.opt.Timeout); err != nil {
					return err
				}
				continue
			}
			return rc.c.write([]byte{ack}, rc.opt.Timeout)
		}
		if err != nil {
			return fmt.Errorf("block %d: %w", num, err)
		}
		start = false
		if rc.size >= 0 {
			blk = blk[:min(int64(len(blk)), max(rc.size-rc.n, 0))]
		}
		if _, err := rc.w.Write(blk); err != nil {
			return fmt.Errorf("write block %d: %w", num, err)
		}
		rc.n += int64(len(blk))
		if err := rc.c.write([]byte{ack}, rc.opt.Timeout); err != nil {
			return err
		}
		if rc.opt.Progress != nil {
			rc.opt.Progress(rc.n, rc.size)
		}
		num++
	}
}

// parseHeader parses YMODEM block 0: "name\x00size [mtime [mode …]]".
func parseHeader(b []byte) (FileInfo, error) {
	name, rest, ok := bytes.Cut(b, []byte{0})
	if !ok {
		return FileInfo{}, fmt.Errorf("%w: header block without NUL after the name", ErrProtocol)
	}
	info := FileInfo{Name: string(name), Size: -1}
	if len(name) == 0 {
		return info, nil
	}
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	fields := strings.Fields(string(rest))
	if len(fields) > 0 {
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 {
			return FileInfo{}, fmt.Errorf("%w: header size %q is not a length", ErrProtocol, fields[0])
		}
		info.Size = n
	}
	return info, nil
}
