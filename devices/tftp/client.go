// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Client pushes files to and reads files from a TFTP server. The zero value
// speaks plain RFC 1350 (512-byte blocks, lockstep) with a 1 s
// retransmission interval doubling up to 8 s, and 5 retransmissions. A
// Client is safe for concurrent use; every transfer uses its own socket.
type Client struct {
	// Blksize is requested with the blksize option when not 0 or 512.
	Blksize int
	// Windowsize is requested with the windowsize option when above 1.
	// Servers that ignore it (tftpd-hpa) fall back to lockstep.
	Windowsize int
	// Timeout is the retransmission interval before backoff. Whole seconds
	// of 1 s or more are also sent as the timeout option.
	Timeout time.Duration
	// Retries is how many retransmissions end a transfer with ErrTimeout.
	Retries int
	// Log receives protocol detail at DEBUG; nil discards it.
	Log *slog.Logger
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func (c *Client) options(tsize int64) []option {
	var opts []option
	if c.Blksize != 0 && c.Blksize != defaultBlksize {
		opts = append(opts, option{"blksize", strconv.Itoa(c.Blksize)})
	}
	if c.Windowsize > 1 {
		opts = append(opts, option{"windowsize", strconv.Itoa(c.Windowsize)})
	}
	if c.Timeout >= time.Second && c.Timeout%time.Second == 0 && c.Timeout <= MaxTimeout*time.Second {
		opts = append(opts, option{"timeout", strconv.Itoa(int(c.Timeout / time.Second))})
	}
	opts = append(opts, option{"tsize", strconv.FormatInt(tsize, 10)})
	return opts
}

// Check reports a client configuration that no server would accept.
func (c *Client) Check() error {
	if c.Blksize != 0 && (c.Blksize < MinBlksize || c.Blksize > MaxBlksize) {
		return fmt.Errorf("blksize %d out of range %d..%d", c.Blksize, MinBlksize, MaxBlksize)
	}
	if c.Windowsize < 0 || c.Windowsize > MaxWindowsize {
		return fmt.Errorf("windowsize %d out of range 1..%d", c.Windowsize, MaxWindowsize)
	}
	return nil
}

// dial resolves addr and opens the transfer socket.
func (c *Client) dial(ctx context.Context, addr string) (netip.AddrPort, *net.UDPConn, error) {
	if err := c.Check(); err != nil {
		return netip.AddrPort{}, nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	network := "udp4"
	if !ap.Addr().Is4() {
		network = "udp6"
	}
	pc, err := net.ListenUDP(network, nil)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("open socket: %w", err)
	}
	return ap, pc, nil
}

// Put writes size bytes from r to name on the server at addr (WRQ). It
// returns once the server has acknowledged the last block. progress, if not
// nil, is called with the bytes acknowledged so far.
func (c *Client) Put(ctx context.Context, addr, name string, r io.Reader, size int64, progress func(done int64)) error {
	server, pc, err := c.dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("tftp put %s to %s: %w", name, addr, err)
	}
	defer pc.Close()
	s := newSession(ctx, pc, netip.AddrPort{}, c.Timeout, c.Retries, c.log())
	defer s.close()
	opts := c.options(size)
	req := appendRequest(nil, opWRQ, name, "octet", opts)
	p, err := c.request(s, server, req)
	if err != nil {
		return fmt.Errorf("tftp put %s to %s: %w", name, addr, err)
	}
	switch {
	case p.op == opOACK:
		if err := s.accept(opts, p.opts); err != nil {
			return fmt.Errorf("tftp put %s to %s: %w", name, addr, err)
		}
	case p.op == opACK && p.block == 0:
	default:
		return fmt.Errorf("tftp put %s to %s: %w", name, addr, s.unexpected(p, "OACK or ACK 0"))
	}
	c.log().Debug("tftp put", "name", name, "server", s.peer, "blksize", s.p.blksize, "windowsize", s.p.windowsize)
	n, err := s.send(io.LimitReader(r, size), progress)
	if err != nil {
		return fmt.Errorf("tftp put %s to %s: %w", name, addr, err)
	}
	if n != size {
		return fmt.Errorf("tftp put %s to %s: source gave %d bytes, want %d", name, addr, n, size)
	}
	return nil
}

// Get reads name from the server at addr (RRQ) into w and returns its
// length.
func (c *Client) Get(ctx context.Context, addr, name string, w io.Writer) (int64, error) {
	server, pc, err := c.dial(ctx, addr)
	if err != nil {
		return 0, fmt.Errorf("tftp get %s from %s: %w", name, addr, err)
	}
	defer pc.Close()
	s := newSession(ctx, pc, netip.AddrPort{}, c.Timeout, c.Retries, c.log())
	defer s.close()
	opts := c.options(0)
	req := appendRequest(nil, opRRQ, name, "octet", opts)
	p, err := c.request(s, server, req)
	if err != nil {
		return 0, fmt.Errorf("tftp get %s from %s: %w", name, addr, err)
	}
	var first *packet
	var solicit []byte
	switch p.op {
	case opOACK:
		if err := s.accept(opts, p.opts); err != nil {
			return 0, fmt.Errorf("tftp get %s from %s: %w", name, addr, err)
		}
		solicit = appendACK(nil, 0)
		if err := s.write(solicit); err != nil {
			return 0, fmt.Errorf("tftp get %s from %s: %w", name, addr, err)
		}
	case opDATA:
		first = &p
		solicit = appendACK(nil, 0) // never matches: the peer resends DATA 1
	default:
		return 0, fmt.Errorf("tftp get %s from %s: %w", name, addr, s.unexpected(p, "OACK or DATA"))
	}
	n, err := s.receive(w, solicit, first, -1, nil, false)
	if err != nil {
		return n, fmt.Errorf("tftp get %s from %s: %w", name, addr, err)
	}
	if s.p.tsize > 0 && n != s.p.tsize {
		return n, fmt.Errorf("tftp get %s from %s: got %d bytes, server announced tsize %d", name, addr, n, s.p.tsize)
	}
	return n, nil
}

// request sends req to the server's well-known port until the first answer
// arrives from the server's host; that answer's port becomes the peer TID.
func (c *Client) request(s *session, server netip.AddrPort, req []byte) (packet, error) {
	for attempt := 0; ; attempt++ {
		if _, err := s.pc.WriteToUDPAddrPort(req, server); err != nil {
			return packet{}, fmt.Errorf("send request: %w", err)
		}
		p, err := s.read(time.Now().Add(s.interval(attempt)), server.Addr())
		if err == errTimedOut {
			if attempt >= s.retries {
				return packet{}, fmt.Errorf("%w: no answer to the request after %d retransmissions", ErrTimeout, s.retries)
			}
			continue
		}
		if err != nil {
			return packet{}, err
		}
		if p.op == opERROR {
			return packet{}, &RemoteError{Code: p.code, Msg: p.msg}
		}
		return p, nil
	}
}
