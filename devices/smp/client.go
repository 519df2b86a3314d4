// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Client sends SMP requests over a Transport and waits for the matching
// responses. It is not safe for concurrent use: SMP devices serve one
// request at a time.
type Client struct {
	t   Transport
	log *slog.Logger
	seq uint8

	// Timeout bounds one attempt of a request; Retries is how many times a
	// request is sent again after a timeout (retransmissions carry the
	// same sequence number; upload chunks are idempotent thanks to off).
	Timeout time.Duration
	Retries int
	// LineRate, if not zero, is the transport's speed in bytes per second
	// (a serial line: baud/10). Each attempt then also allows the time the
	// request frame and a reply frame of up to replyBudget bytes take on
	// the line, so a slow line is not mistaken for a lost packet.
	LineRate int
}

// replyBudget is the reply size LineRate allows for: an image list.
const replyBudget = 512

// attemptTimeout is Timeout plus the line time of a request of n bytes and
// its reply.
func (c *Client) attemptTimeout(n int) time.Duration {
	if c.LineRate <= 0 {
		return c.Timeout
	}
	wire := FrameLen(n) + FrameLen(replyBudget)
	return c.Timeout + time.Duration(wire)*time.Second/time.Duration(c.LineRate)
}

// NewClient returns a client on t. seq is the first sequence number (pick
// it at random so a restarted client does not match stale replies).
func NewClient(t Transport, seq uint8, log *slog.Logger) *Client {
	return &Client{t: t, log: log, seq: seq, Timeout: 2 * time.Second, Retries: 3}
}

// Close closes the transport.
func (c *Client) Close() error { return c.t.Close() }

// Do sends one request and decodes the response body into rsp (which may be
// nil). Replies with another sequence number are stale and skipped;
// undecodable replies are skipped too (line noise) and reported if no good
// reply arrives. Errors: *DeviceError for a non-zero rc, ErrTimeout,
// ErrUnexpectedResponse, ErrMalformed, or ctx's error.
func (c *Client) Do(ctx context.Context, op Op, group uint16, id uint8, req, rsp any) error {
	if req == nil {
		req = Empty{}
	}
	body, err := Marshal(req)
	if err != nil {
		return err
	}
	c.seq++
	h := Header{Op: op, Group: group, ID: id, Seq: c.seq}
	pkt, err := EncodePacket(h, body)
	if err != nil {
		return err
	}
	var lastBad error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		if attempt > 0 {
			c.log.Debug("smp retransmit", "group", group, "id", id, "seq", h.Seq, "attempt", attempt)
		}
		if err := c.t.Send(pkt); err != nil {
			return fmt.Errorf("smp group %d command %d: %w", group, id, err)
		}
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout(len(pkt)))
		err := c.await(actx, h, rsp, &lastBad)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("smp group %d command %d: %w", group, id, ctx.Err())
			}
			return err
		}
	}
	if le, ok := c.t.(interface{ LastError() error }); ok && le.LastError() != nil && lastBad == nil {
		lastBad = le.LastError()
	}
	if lastBad != nil {
		return fmt.Errorf("smp group %d command %d: %w after %d attempts (last error: %w)", group, id, ErrTimeout, c.Retries+1, lastBad)
	}
	return fmt.Errorf("smp group %d command %d: %w after %d attempts", group, id, ErrTimeout, c.Retries+1)
}

// await receives until the reply to h arrives or ctx ends.
func (c *Client) await(ctx context.Context, h Header, rsp any, lastBad *error) error {
	for {
		p, err := c.t.Recv(ctx)
		if errors.Is(err, ErrMalformed) {
			*lastBad = err
			c.log.Debug("smp bad reply skipped", "err", err)
			continue
		}
		if err != nil {
			return err
		}
		rh, body, err := DecodePacket(p)
		if err != nil {
			*lastBad = err
			c.log.Debug("smp bad reply skipped", "err", err)
			continue
		}
		if rh.Seq != h.Seq {
			c.log.Debug("smp stale reply skipped", "got", rh.Seq, "want", h.Seq)
			continue
		}
		if rh.Op != h.Op+1 || rh.Group != h.Group || rh.ID != h.ID {
			return fmt.Errorf("smp %v: reply %v: %w", h, rh, ErrUnexpectedResponse)
		}
		if err := CheckStatus(rh, body); err != nil {
			return fmt.Errorf("smp group %d command %d: %w", h.Group, h.ID, err)
		}
		if rsp != nil {
			if err := Unmarshal(body, rsp); err != nil {
				return fmt.Errorf("smp group %d command %d: %w", h.Group, h.ID, err)
			}
		}
		return nil
	}
}

// Echo sends s and checks that the device echoes it.
func (c *Client) Echo(ctx context.Context, s string) error {
	var r EchoResponse
	if err := c.Do(ctx, OpWrite, GroupOS, CmdOSEcho, EchoRequest{D: s}, &r); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if r.R != s {
		return fmt.Errorf("echo: device answered %q, want %q: %w", r.R, s, ErrUnexpectedResponse)
	}
	return nil
}

// Params reads the device's MCUmgr buffer parameters.
func (c *Client) Params(ctx context.Context) (ParamsResponse, error) {
	var r ParamsResponse
	if err := c.Do(ctx, OpRead, GroupOS, CmdOSParams, nil, &r); err != nil {
		return r, fmt.Errorf("params: %w", err)
	}
	return r, nil
}

// OSInfo reads the device's OS information in format (e.g. "b": board).
func (c *Client) OSInfo(ctx context.Context, format string) (string, error) {
	var r OSInfoResponse
	if err := c.Do(ctx, OpRead, GroupOS, CmdOSInfo, OSInfoRequest{Format: format}, &r); err != nil {
		return "", fmt.Errorf("os info: %w", err)
	}
	return r.Output, nil
}

// Reset asks the device to reboot.
func (c *Client) Reset(ctx context.Context) error {
	if err := c.Do(ctx, OpWrite, GroupOS, CmdOSReset, nil, nil); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// ImageList reads the image slots.
func (c *Client) ImageList(ctx context.Context) ([]Slot, error) {
	var r ImageStateResponse
	if err := c.Do(ctx, OpRead, GroupImage, CmdImageState, nil, &r); err != nil {
		return nil, fmt.Errorf("image list: %w", err)
	}
	return r.Images, nil
}

// ImageTest marks the image with TLV hash for one test boot.
func (c *Client) ImageTest(ctx context.Context, hash []byte) ([]Slot, error) {
	var r ImageStateResponse
	if err := c.Do(ctx, OpWrite, GroupImage, CmdImageState, ImageStateRequest{Hash: hash}, &r); err != nil {
		return nil, fmt.Errorf("image test %x: %w", hash, err)
	}
	return r.Images, nil
}

// ImageConfirm makes the image with TLV hash permanent; a nil hash confirms
// the running image.
func (c *Client) ImageConfirm(ctx context.Context, hash []byte) ([]Slot, error) {
	var r ImageStateResponse
	if err := c.Do(ctx, OpWrite, GroupImage, CmdImageState, ImageStateRequest{Hash: hash, Confirm: true}, &r); err != nil {
		return nil, fmt.Errorf("image confirm %x: %w", hash, err)
	}
	return r.Images, nil
}

// Erase erases slot (1, the update slot, in practice).
func (c *Client) Erase(ctx context.Context, slot uint32) error {
	if err := c.Do(ctx, OpWrite, GroupImage, CmdImageErase, EraseRequest{Slot: &slot}, nil); err != nil {
		return fmt.Errorf("image erase slot %d: %w", slot, err)
	}
	return nil
}

// maxUploadRestarts bounds how often Upload starts over after the device
// lost its upload state (it rebooted mid-upload).
const maxUploadRestarts = 2

// maxStalls bounds consecutive chunks the device answers without moving
// its offset forward.
const maxStalls = 8

// Upload writes img to the update slot in chunks that keep each packet
// within maxPacket bytes (the device's buf_size). It starts with the
// device's own offset: an interrupted upload of the same file (same SHA-256)
// resumes where the device stopped. progress, if set, gets the offset the
// device acknowledged.
func (c *Client) Upload(ctx context.Context, img []byte, maxPacket int, progress func(off int64)) error {
	sum := sha256.Sum256(img)
	total := uint64(len(img))
	var off uint64
	restarts, stalls := 0, 0
	zero := uint32(0)
	for {
		req := UploadRequest{Off: off}
		if off == 0 {
			req.Image, req.Len, req.SHA = &zero, total, sum[:]
		}
		n, err := chunkFor(req, maxPacket)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		req.Data = img[off:min(off+uint64(n), total)]
		var r UploadResponse
		err = c.Do(ctx, OpWrite, GroupImage, CmdImageUpload, req, &r)
		var de *DeviceError
		if errors.As(err, &de) && off != 0 && restarts < maxUploadRestarts && !de.Temporary() {
			// The device forgot the upload (it rebooted): start over.
			restarts++
			c.log.Info("smp upload restarts: device lost its upload state", "off", off, "err", err)
			off = 0
			continue
		}
		if err != nil {
			return fmt.Errorf("upload at offset %d of %d: %w", off, total, err)
		}
		if r.Off > total {
			return fmt.Errorf("upload: device asks for offset %d of a %d-byte image: %w", r.Off, total, ErrUnexpectedResponse)
		}
		if r.Off <= off && len(req.Data) > 0 {
			stalls++
		} else {
			stalls = 0
		}
		if stalls > maxStalls {
			return fmt.Errorf("upload: device stays at offset %d: %w", r.Off, ErrUnexpectedResponse)
		}
		if progress != nil {
			progress(int64(r.Off))
		}
		if r.Off == total {
			if r.Match != nil && !*r.Match {
				return fmt.Errorf("upload: device says the image does not match sha %x: %w", sum, ErrHashMismatch)
			}
			return nil
		}
		off = r.Off
	}
}

// chunkFor returns how many data bytes fit in req within maxPacket bytes.
func chunkFor(req UploadRequest, maxPacket int) (int, error) {
	req.Data = []byte{}
	b, err := Marshal(req)
	if err != nil {
		return 0, err
	}
	// An empty byte string is 1 byte; a data length up to 65535 needs up
	// to 3 bytes of CBOR head.
	n := maxPacket - HeaderSize - len(b) - 2
	if n < 1 {
		return 0, fmt.Errorf("packet size %d leaves no room for data", maxPacket)
	}
	return n, nil
}
