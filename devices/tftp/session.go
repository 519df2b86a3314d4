// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"
)

// Defaults for retransmission.
const (
	DefaultTimeout = time.Second
	DefaultRetries = 5
	maxBackoff     = 8 // the retransmission interval grows to at most 8× its base
)

// session is one transfer over one UDP socket with one peer (its TID). It
// owns the socket for the length of the transfer; it is not safe for
// concurrent use.
type session struct {
	pc      *net.UDPConn
	peer    netip.AddrPort // the peer's TID; invalid until the first reply (client)
	p       params
	base    time.Duration // retransmission interval before backoff
	retries int
	log     *slog.Logger
	rx      []byte
	stop    func() bool // undoes the context hook
	ctx     context.Context
}

func newSession(ctx context.Context, pc *net.UDPConn, peer netip.AddrPort, base time.Duration, retries int, log *slog.Logger) *session {
	if base <= 0 {
		base = DefaultTimeout
	}
	if retries <= 0 {
		retries = DefaultRetries
	}
	s := &session{pc: pc, peer: peer, p: defaultParams(), base: base, retries: retries, log: log,
		rx: make([]byte, maxPacket+1), ctx: ctx}
	// Cancelling ctx unblocks a pending read at once.
	s.stop = context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Unix(1, 0)) })
	return s
}

func (s *session) close() { s.stop() }

// interval is the retransmission interval after attempt timeouts.
func (s *session) interval(attempt int) time.Duration {
	return s.base << min(attempt, 3) // 1, 2, 4, 8 × base
}

func (s *session) write(b []byte) error {
	if _, err := s.pc.WriteToUDPAddrPort(b, s.peer); err != nil {
		return fmt.Errorf("send to %s: %w", s.peer, err)
	}
	return nil
}

// abort sends an ERROR packet to the peer, best effort.
func (s *session) abort(code ErrorCode, msg string) {
	if !s.peer.IsValid() {
		return
	}
	_, _ = s.pc.WriteToUDPAddrPort(appendERROR(nil, code, msg), s.peer)
}

// errTimedOut is returned by read when the deadline passed.
var errTimedOut = errors.New("read deadline")

// read waits until deadline for the next packet from the peer. Packets from
// other TIDs get an ERROR 5 and are skipped. With s.peer invalid, the
// first packet from host (any port) fixes the peer.
func (s *session) read(deadline time.Time, host netip.Addr) (packet, error) {
	for {
		if err := s.ctx.Err(); err != nil {
			return packet{}, err
		}
		_ = s.pc.SetReadDeadline(deadline)
		n, from, err := s.pc.ReadFromUDPAddrPort(s.rx)
		if err != nil {
			if s.ctx.Err() != nil {
				return packet{}, s.ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return packet{}, errTimedOut
			}
			return packet{}, fmt.Errorf("receive: %w", err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !s.peer.IsValid() {
			if host.IsValid() && from.Addr() != host {
				continue // not the server we asked
			}
			s.peer = from
		} else if from != s.peer {
			s.log.Debug("tftp packet from unknown TID", "from", from, "peer", s.peer)
			_, _ = s.pc.WriteToUDPAddrPort(appendERROR(nil, ErrCodeUnknownTID, "unknown transfer id"), from)
			continue
		}
		if n > len(s.rx)-1 {
			s.abort(ErrCodeIllegalOp, "oversized packet")
			return packet{}, fmt.Errorf("%w: datagram larger than %d bytes", ErrProtocol, maxPacket)
		}
		p, err := decode(s.rx[:n])
		if err != nil {
			s.abort(ErrCodeIllegalOp, "malformed packet")
			return packet{}, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return p, nil
	}
}

// unexpected turns a packet the state machine did not want into an error,
// telling the peer unless it was itself an ERROR.
func (s *session) unexpected(p packet, want string) error {
	if p.op == opERROR {
		return &RemoteError{Code: p.code, Msg: p.msg}
	}
	s.abort(ErrCodeIllegalOp, "unexpected opcode")
	return fmt.Errorf("%w: got opcode %d, want %s", ErrProtocol, p.op, want)
}

// send streams r as DATA blocks 1..n with the negotiated blksize and
// windowsize, and returns the bytes the peer acknowledged. Duplicate ACKs
// are ignored (no Sorcerer's Apprentice resends); only a timeout resends,
// and then the whole unacknowledged window (RFC 7440 go-back-N).
func (s *session) send(r io.Reader, progress func(int64)) (int64, error) {
	bs, ws := s.p.blksize, s.p.windowsize
	type block struct {
		pkt  []byte
		size int
	}
	var (
		window   []block // unacknowledged blocks base, base+1, ...
		base     uint64  = 1
		next     uint64  = 1 // next block to read from r
		eof      bool        // the last block is in window (or acked)
		acked    int64
		free     [][]byte
		attempts int
	)
	fill := func() error {
		for len(window) < ws && !eof {
			var buf []byte
			if n := len(free); n > 0 {
				buf, free = free[n-1], free[:n-1]
			} else {
				buf = make([]byte, 4+bs)
			}
			n, err := io.ReadFull(r, buf[4:4+bs])
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				eof = true
			case err != nil:
				s.abort(ErrCodeUndefined, "source read error")
				return fmt.Errorf("read block %d: %w", next, err)
			}
			pkt := appendDATA(buf[:0], uint16(next), nil)[:4+n]
			window = append(window, block{pkt, n})
			next++
		}
		return nil
	}
	sendWindow := func() error {
		for _, b := range window {
			if err := s.write(b.pkt); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fill(); err != nil {
		return 0, err
	}
	if err := sendWindow(); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(s.interval(0))
	for {
		p, err := s.read(deadline, netip.Addr{})
		if err == errTimedOut {
			attempts++
			if attempts > s.retries {
				return acked, fmt.Errorf("%w: no ACK for block %d after %d retransmissions", ErrTimeout, base, s.retries)
			}
			s.log.Debug("tftp retransmit", "block", base, "window", len(window), "attempt", attempts)
			if err := sendWindow(); err != nil {
				return acked, err
			}
			deadline = time.Now().Add(s.interval(attempts))
			continue
		}
		if err != nil {
			if s.ctx.Err() != nil {
				s.abort(ErrCodeUndefined, "transfer cancelled")
			}
			return acked, err
		}
		if p.op != opACK {
			return acked, s.unexpected(p, "ACK")
		}
		// Map the 16-bit block number onto the window (it rolls over).
		off := int(p.block - uint16(base-1))
		if off == 0 || off > len(window) {
			continue // duplicate or stale ACK: never resend on it
		}
		for _, b := range window[:off] {
			acked += int64(b.size)
			free = append(free, b.pkt[:cap(b.pkt)])
		}
		window = append(window[:0], window[off:]...)
		base += uint64(off)
		attempts = 0
		if progress != nil {
			progress(acked)
		}
		if eof && len(window) == 0 {
			return acked, nil
		}
		if err := fill(); err != nil {
			return acked, err
		}
		if err := sendWindow(); err != nil {
			return acked, err
		}
		deadline = time.Now().Add(s.interval(0))
	}
}

// receive writes DATA blocks 1..n to w, acknowledging every windowsize
// blocks and the last one. solicit is the packet that asks the peer for
// data (ACK 0, OACK, or a request); it is resent on timeout. first, if not
// nil, is a DATA packet already read. When dally is set, receive waits after
// the final ACK to answer a retransmitted last block (the ACK was lost).
// commit, if not nil, runs after the last block is written and before it is
// acknowledged: the final ACK means the data is stored.
func (s *session) receive(w io.Writer, solicit []byte, first *packet, limit int64, commit func() error, dally bool) (int64, error) {
	bs, ws := s.p.blksize, s.p.windowsize
	var (
		next      uint64 = 1
		total     int64
		inWindow  int
		outOfSeq  int
		attempts  int
		lastAck   = solicit
		ackBuf    = make([]byte, 0, 4)
		haveFirst = first != nil
	)
	sendAck := func() error {
		ackBuf = appendACK(ackBuf[:0], uint16(next-1))
		lastAck = ackBuf
		inWindow, outOfSeq = 0, 0
		return s.write(lastAck)
	}
	deadline := time.Now().Add(s.interval(0))
	for {
		var p packet
		if haveFirst {
			p, haveFirst = *first, false
		} else {
			var err error
			p, err = s.read(deadline, netip.Addr{})
			if err == errTimedOut {
				attempts++
				if attempts > s.retries {
					return total, fmt.Errorf("%w: no DATA block %d after %d retransmissions", ErrTimeout, next, s.retries)
				}
				s.log.Debug("tftp re-ack", "next", next, "attempt", attempts)
				if err := s.write(lastAck); err != nil {
					return total, err
				}
				deadline = time.Now().Add(s.interval(attempts))
				continue
			}
			if err != nil {
				if s.ctx.Err() != nil {
					s.abort(ErrCodeUndefined, "transfer cancelled")
				}
				return total, err
			}
		}
		if p.op != opDATA {
			return total, s.unexpected(p, "DATA")
		}
		if len(p.data) > bs {
			s.abort(ErrCodeIllegalOp, "block larger than blksize")
			return total, fmt.Errorf("%w: block %d has %d bytes, blksize is %d", ErrProtocol, p.block, len(p.data), bs)
		}
		if p.block != uint16(next) {
			// Out of order or a duplicate: acknowledge what we have, once
			// per window of such packets, so the sender goes back to next.
			if outOfSeq%ws == 0 {
				if err := sendAck(); err != nil {
					return total, err
				}
			}
			outOfSeq++
			continue
		}
		if limit >= 0 && total+int64(len(p.data)) > limit {
			s.abort(ErrCodeDiskFull, "file larger than allowed")
			return total, fmt.Errorf("%w: more than %d bytes", &RemoteError{Code: ErrCodeDiskFull, Msg: "too large"}, limit)
		}
		if _, err := w.Write(p.data); err != nil {
			s.abort(ErrCodeDiskFull, "write failed")
			return total, fmt.Errorf("write block %d: %w", next, err)
		}
		total += int64(len(p.data))
		next++
		inWindow++
		attempts = 0
		last := len(p.data) < bs
		if last && commit != nil {
			if err := commit(); err != nil {
				s.abort(ErrCodeDiskFull, "store failed")
				return total, err
			}
		}
		if last || inWindow >= ws {
			if err := sendAck(); err != nil {
				return total, err
			}
		}
		deadline = time.Now().Add(s.interval(0))
		if last {
			if dally {
				s.dally()
			}
			return total, nil
		}
	}
}

// dally re-acknowledges a retransmitted final block for a while, in case the
// final ACK was lost.
func (s *session) dally() {
	end := time.Now().Add(2 * s.base)
	for {
		p, err := s.read(end, netip.Addr{})
		if err != nil {
			return
		}
		if p.op != opDATA {
			return
		}
		_ = s.write(s.lastAckFor(p.block))
	}
}

func (s *session) lastAckFor(block uint16) []byte { return appendACK(nil, block) }

// negotiate applies the options of a request (server side). It returns the
// options to acknowledge; unknown or unparsable ones are ignored, as RFC 2347
// asks. size is the file size for an RRQ (tsize), or -1.
func (s *session) negotiate(opts []option, maxBlk, maxWin int, size int64) []option {
	var ack []option
	for _, o := range opts {
		v, ok := parseOption(o)
		if !ok {
			s.log.Debug("tftp option ignored", "name", o.name, "value", o.value)
			continue
		}
		switch o.name {
		case "blksize":
			v = min(v, int64(maxBlk))
			s.p.blksize = int(v)
		case "windowsize":
			v = min(v, int64(maxWin))
			s.p.windowsize = int(v)
		case "timeout":
			s.p.timeout = int(v)
			s.base = time.Duration(v) * time.Second
		case "tsize":
			if size >= 0 { // RRQ: tell the size
				v = size
			}
			s.p.tsize = v
		}
		ack = append(ack, option{o.name, fmt.Sprint(v)})
	}
	return ack
}

// accept applies the options of an OACK (client side). The server may only
// acknowledge options that were requested, each once, with values no larger
// than asked.
func (s *session) accept(requested, got []option) error {
	if name, dup := duplicate(got); dup {
		s.abort(ErrCodeBadOptions, "option given twice: "+name)
		return fmt.Errorf("%w: OACK has option %q twice", ErrProtocol, name)
	}
	for _, o := range got {
		var req *option
		for i := range requested {
			if requested[i].name == o.name {
				req = &requested[i]
			}
		}
		if req == nil {
			s.abort(ErrCodeBadOptions, "option not requested: "+o.name)
			return fmt.Errorf("%w: OACK has option %q that was not requested", ErrProtocol, o.name)
		}
		v, ok := parseOption(o)
		rv, _ := parseOption(*req)
		if !ok || (o.name != "tsize" && o.name != "timeout" && v > rv) || (o.name == "timeout" && v != rv) {
			s.abort(ErrCodeBadOptions, "bad option value: "+o.name)
			return fmt.Errorf("%w: OACK %s=%q, requested %s", ErrProtocol, o.name, o.value, req.value)
		}
		switch o.name {
		case "blksize":
			s.p.blksize = int(v)
		case "windowsize":
			s.p.windowsize = int(v)
		case "timeout":
			s.p.timeout = int(v)
		case "tsize":
			s.p.tsize = v
		}
	}
	return nil
}
