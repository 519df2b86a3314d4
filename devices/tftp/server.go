// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Upload receives the bytes of one WRQ. Commit runs after the last block is
// written and before it is acknowledged, so the client's final ACK means the
// file is stored; Abort runs when the transfer fails.
type Upload interface {
	io.Writer
	Commit() error
	Abort()
}

// Server answers TFTP requests on one socket, with a new socket per
// transfer (RFC 1350 TIDs). It serves what its handlers allow and nothing
// else: with Write nil it is read-only, with Read nil write-only. Options
// blksize, windowsize, timeout and tsize are negotiated; unknown and
// unparsable options are ignored; a request that gives an option twice is
// refused with error 8 (RFC 2347). Only octet mode is served.
type Server struct {
	// Read opens name for an RRQ and returns its size. An error wrapping
	// fs.ErrNotExist is sent as "file not found"; a *RemoteError as itself.
	Read func(name string) (io.ReadCloser, int64, error)
	// Write opens name for a WRQ of size bytes (-1 when the client did not
	// send tsize).
	Write func(name string, size int64) (Upload, error)
	// Allow, if valid, is the only client address served; others get
	// "access violation".
	Allow netip.Addr
	// MaxBlksize and MaxWindowsize cap what clients may negotiate
	// (0: MaxBlksize and 64).
	MaxBlksize, MaxWindowsize int
	// MaxSize bounds a WRQ's bytes (0: no bound).
	MaxSize int64
	// Timeout and Retries tune retransmission as for Client.
	Timeout time.Duration
	Retries int
	// Done, if not nil, is called after every transfer with its outcome.
	Done func(op, name string, n int64, err error)
	Log  *slog.Logger
}

// maxTransfers bounds concurrent transfers of one server.
const maxTransfers = 8

// Serve answers requests on pc until ctx ends, then waits for running
// transfers to stop and returns nil. The caller owns pc and closes it after
// Serve returns.
func (srv *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	log := srv.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxTransfers)
	buf := make([]byte, maxPacket+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tftp serve %s: %w", pc.LocalAddr(), err)
		}
		p, err := decode(buf[:n])
		if err != nil || (p.op != opRRQ && p.op != opWRQ) {
			log.Debug("tftp server ignores packet", "from", from, "err", err)
			_, _ = pc.WriteTo(appendERROR(nil, ErrCodeIllegalOp, "expected RRQ or WRQ"), from)
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			_, _ = pc.WriteTo(appendERROR(nil, ErrCodeUndefined, "server busy"), from)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			srv.handle(ctx, log, pc.LocalAddr(), from, p)
		}()
	}
}

func (srv *Server) handle(ctx context.Context, log *slog.Logger, local, from net.Addr, req packet) {
	op := "read"
	if req.op == opWRQ {
		op = "write"
	}
	log = log.With("op", op, "file", req.filename, "client", from)
	n, err := srv.transfer(ctx, log, local, from, req)
	if err != nil && ctx.Err() == nil {
		log.Info("tftp transfer failed", "bytes", n, "err", err)
	} else if err == nil {
		log.Debug("tftp transfer done", "bytes", n)
	}
	if srv.Done != nil {
		srv.Done(op, req.filename, n, err)
	}
}

func (srv *Server) transfer(ctx context.Context, log *slog.Logger, local, from net.Addr, req packet) (int64, error) {
	ip := net.IPv4zero
	if ua, ok := local.(*net.UDPAddr); ok {
		ip = ua.IP
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return 0, fmt.Errorf("open transfer socket: %w", err)
	}
	defer pc.Close()
	var peer netip.AddrPort
	if ua, ok := from.(*net.UDPAddr); ok {
		peer = ua.AddrPort()
		peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	}
	s := newSession(ctx, pc, peer, srv.Timeout, srv.Retries, log)
	defer s.close()
	refuse := func(code ErrorCode, msg string) error {
		s.abort(code, msg)
		return &RemoteError{Code: code, Msg: msg}
	}
	if srv.Allow.IsValid() && peer.Addr() != srv.Allow.Unmap() {
		return 0, refuse(ErrCodeAccess, "client not allowed")
	}
	if req.mode != "octet" {
		return 0, refuse(ErrCodeIllegalOp, "only octet mode is served")
	}
	if name, dup := duplicate(req.opts); dup {
		return 0, refuse(ErrCodeBadOptions, "option "+name+" given twice")
	}
	name := strings.TrimLeft(req.filename, "/")
	maxBlk, maxWin := srv.MaxBlksize, srv.MaxWindowsize
	if maxBlk == 0 {
		maxBlk = MaxBlksize
	}
	if maxWin == 0 {
		maxWin = 64
	}
	if req.op == opRRQ {
		if srv.Read == nil {
			return 0, refuse(ErrCodeAccess, "reading is not allowed")
		}
		r, size, err := srv.Read(name)
		if err != nil {
			return 0, refuse(handlerCode(err))
		}
		defer r.Close()
		ack := s.negotiate(req.opts, maxBlk, maxWin, size)
		if len(ack) > 0 {
			if err := s.oack(ack); err != nil {
				return 0, err
			}
		}
		return s.send(r, nil)
	}
	if srv.Write == nil {
		return 0, refuse(ErrCodeAccess, "writing is not allowed")
	}
	ack := s.negotiate(req.opts, maxBlk, maxWin, -1)
	if srv.MaxSize > 0 && s.p.tsize > srv.MaxSize {
		return 0, refuse(ErrCodeDiskFull, fmt.Sprintf("file larger than %d bytes", srv.MaxSize))
	}
	up, err := srv.Write(name, s.p.tsize)
	if err != nil {
		return 0, refuse(handlerCode(err))
	}
	solicit := appendACK(nil, 0)
	if len(ack) > 0 {
		solicit = appendOACK(nil, ack)
	}
	if err := s.write(solicit); err != nil {
		up.Abort()
		return 0, err
	}
	limit := int64(-1)
	if srv.MaxSize > 0 {
		limit = srv.MaxSize
	}
	cw := &countWriter{w: up}
	commit := func() error {
		if s.p.tsize >= 0 && cw.n != s.p.tsize {
			return fmt.Errorf("%w: received %d bytes, client announced tsize %d", ErrProtocol, cw.n, s.p.tsize)
		}
		return up.Commit()
	}
	n, err := s.receive(cw, solicit, nil, limit, commit, true)
	if err != nil {
		up.Abort()
		return n, err
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// oack sends the OACK of an RRQ and waits for its ACK 0.
func (s *session) oack(opts []option) error {
	pkt := appendOACK(nil, opts)
	for attempt := 0; ; attempt++ {
		if err := s.write(pkt); err != nil {
			return err
		}
		p, err := s.read(time.Now().Add(s.interval(attempt)), netip.Addr{})
		if err == errTimedOut {
			if attempt >= s.retries {
				return fmt.Errorf("%w: no ACK of the OACK", ErrTimeout)
			}
			continue
		}
		if err != nil {
			return err
		}
		if p.op == opACK && p.block == 0 {
			return nil
		}
		if p.op == opACK {
			continue
		}
		return s.unexpected(p, "ACK 0")
	}
}

func handlerCode(err error) (ErrorCode, string) {
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		return re.Code, re.Msg
	case errors.Is(err, fs.ErrNotExist):
		return ErrCodeNotFound, "file not found"
	case errors.Is(err, fs.ErrPermission):
		return ErrCodeAccess, "access violation"
	case errors.Is(err, fs.ErrExist):
		return ErrCodeFileExists, "file exists"
	}
	return ErrCodeUndefined, err.Error()
}
