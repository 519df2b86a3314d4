// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

// fakeTransport answers each sent packet with what reply returns; a nil
// element is delivered as a broken frame (ErrMalformed from Recv).
type fakeTransport struct {
	reply func(req []byte) [][]byte
	q     chan []byte
	sent  int
}

func newFake(reply func([]byte) [][]byte) *fakeTransport {
	return &fakeTransport{reply: reply, q: make(chan []byte, 64)}
}

func (f *fakeTransport) Send(p []byte) error {
	f.sent++
	for _, r := range f.reply(p) {
		f.q <- r
	}
	return nil
}

func (f *fakeTransport) Recv(ctx context.Context) ([]byte, error) {
	select {
	case p := <-f.q:
		if p == nil {
			return nil, errors.Join(errors.New("decode frame: CRC mismatch"), ErrMalformed)
		}
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeTransport) Close() error { return nil }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// reply builds the response packet to req with body v (a CBOR value, or
// raw []byte used as the body as is), adjusting header fields by mod.
func reply(req []byte, v any, mod func(*Header)) []byte {
	h, _, _ := DecodePacket(req)
	h.Op++
	if mod != nil {
		mod(&h)
	}
	body, ok := v.([]byte)
	if !ok {
		body, _ = Marshal(v)
	}
	p, _ := EncodePacket(h, body)
	return p
}

func TestClientBadReplies(t *testing.T) {
	ok := EchoResponse{R: "x"}
	tests := []struct {
		name  string
		reply func(req []byte) [][]byte
		want  error
		sent  int // packets sent, when checked
	}{
		{"good", func(r []byte) [][]byte { return [][]byte{reply(r, ok, nil)} }, nil, 1},
		{"stale seq first", func(r []byte) [][]byte {
			return [][]byte{reply(r, ok, func(h *Header) { h.Seq-- }), reply(r, ok, nil)}
		}, nil, 1},
		{"only stale seq", func(r []byte) [][]byte { return [][]byte{reply(r, ok, func(h *Header) { h.Seq++ })} }, ErrTimeout, 4},
		{"no reply", func([]byte) [][]byte { return nil }, ErrTimeout, 4},
		{"bad frame then good", func(r []byte) [][]byte { return [][]byte{nil, reply(r, ok, nil)} }, nil, 1},
		{"bad frames only", func([]byte) [][]byte { return [][]byte{nil} }, ErrMalformed, 4},
		{"length field lies", func(r []byte) [][]byte { p := reply(r, ok, nil); return [][]byte{p[:len(p)-1]} }, ErrTimeout, 4},
		{"wrong op", func(r []byte) [][]byte { return [][]byte{reply(r, ok, func(h *Header) { h.Op = OpReadRsp })} }, ErrUnexpectedResponse, 1},
		{"wrong group", func(r []byte) [][]byte { return [][]byte{reply(r, ok, func(h *Header) { h.Group = 9 })} }, ErrUnexpectedResponse, 1},
		{"malformed CBOR", func(r []byte) [][]byte { return [][]byte{reply(r, []byte{0xa1, 0x61}, nil)} }, ErrMalformed, 1},
		{"not a map", func(r []byte) [][]byte { return [][]byte{reply(r, []byte{0x01}, nil)} }, ErrMalformed, 1},
		{"trailing CBOR", func(r []byte) [][]byte { return [][]byte{reply(r, []byte{0xa0, 0xa0}, nil)} }, ErrMalformed, 1},
		{"wrong type", func(r []byte) [][]byte { return [][]byte{reply(r, map[string]int{"r": 5}, nil)} }, ErrMalformed, 1},
		{"duplicate key", func(r []byte) [][]byte {
			return [][]byte{reply(r, []byte{0xa2, 0x61, 'r', 0x61, 'x', 0x61, 'r', 0x61, 'x'}, nil)}
		}, ErrMalformed, 1},
		{"oversized array", func(r []byte) [][]byte {
			return [][]byte{reply(r, map[string][]int{"r": make([]int, 5000)}, nil)}
		}, ErrMalformed, 1},
		{"deep nesting", func(r []byte) [][]byte {
			return [][]byte{reply(r, append(bytes.Repeat([]byte{0x81}, 100), 0), nil)}
		}, ErrMalformed, 1},
		{"rc error", func(r []byte) [][]byte { return [][]byte{reply(r, map[string]int{"rc": RCBadState}, nil)} }, &DeviceError{}, 1},
		{"v2 error", func(r []byte) [][]byte {
			return [][]byte{reply(r, map[string]any{"err": map[string]int{"group": 0, "rc": 3}}, nil)}
		}, &DeviceError{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(tt.reply)
				c := NewClient(f, 200, discard)
				start := time.Now()
				err := c.Echo(context.Background(), "x")
				var de *DeviceError
				switch {
				case tt.want == nil && err != nil:
					t.Fatalf("Echo() = %v, want nil", err)
				case tt.want != nil && errors.As(tt.want, &de):
					if !errors.As(err, &de) {
						t.Fatalf("Echo() = %v, want a *DeviceError", err)
					}
				case tt.want != nil && !errors.Is(err, tt.want):
					t.Fatalf("Echo() = %v, want %v", err, tt.want)
				}
				if f.sent != tt.sent {
					t.Errorf("Echo() sent %d packets, want %d", f.sent, tt.sent)
				}
				if d := time.Since(start); d > time.Duration(c.Retries+1)*c.Timeout {
					t.Errorf("Echo() took %v, want ≤ %v", d, time.Duration(c.Retries+1)*c.Timeout)
				}
			})
		})
	}
}

func TestClientCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewClient(newFake(func([]byte) [][]byte { return nil }), 0, discard)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		err := c.Echo(ctx, "x")
		if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Errorf("Echo(cancelled after 1s) = %v after %v, want context.Canceled after 1s", err, time.Since(start))
		}
	})
}

// fakeUploader is an in-memory img_mgmt upload with knobs.
type fakeUploader struct {
	img       []byte
	sha       []byte
	off       uint64
	active    bool
	forgetAt  uint64 // lose the upload state once off passes this (a reboot)
	forgotten bool
	stall     bool // never advance
	jump      uint64
	match     *bool
	maxPacket int
	chunks    int
}

func (u *fakeUploader) handle(req []byte) [][]byte {
	_, body, _ := DecodePacket(req)
	if u.maxPacket > 0 && len(req) > u.maxPacket {
		return [][]byte{reply(req, map[string]int{"rc": RCMsgSize}, nil)}
	}
	var r UploadRequest
	if err := Unmarshal(body, &r); err != nil {
		return [][]byte{reply(req, map[string]int{"rc": RCInval}, nil)}
	}
	u.chunks++
	switch {
	case r.Off == 0 && r.Len > 0:
		if !u.active || !bytes.Equal(r.SHA, u.sha) {
			u.img, u.sha, u.off, u.active = make([]byte, r.Len), r.SHA, 0, true
		} else {
			return [][]byte{reply(req, UploadResponse{Off: u.off}, nil)}
		}
	case !u.active:
		return [][]byte{reply(req, map[string]int{"rc": RCInval}, nil)}
	}
	if u.jump > 0 {
		return [][]byte{reply(req, UploadResponse{Off: u.jump}, nil)}
	}
	if r.Off == u.off && !u.stall {
		copy(u.img[r.Off:], r.Data)
		u.off += uint64(len(r.Data))
	}
	if u.forgetAt > 0 && !u.forgotten && u.off > u.forgetAt {
		u.forgotten, u.active = true, false
		return nil // rebooted before answering
	}
	return [][]byte{reply(req, UploadResponse{Off: u.off, Match: u.match}, nil)}
}

func TestUpload(t *testing.T) {
	img := BuildImage(ImageVersion{Major: 2}, bytes.Repeat([]byte("0123456789abcdef"), 700))
	f := false
	tests := []struct {
		name string
		u    *fakeUploader
		want error
	}{
		{"plain", &fakeUploader{maxPacket: 512}, nil},
		{"reboot mid-upload", &fakeUploader{maxPacket: 512, forgetAt: 5000}, nil},
		{"stall", &fakeUploader{stall: true}, ErrUnexpectedResponse},
		{"offset beyond image", &fakeUploader{jump: 1 << 30}, ErrUnexpectedResponse},
		{"device says no match", &fakeUploader{match: &f}, ErrHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewClient(newFake(tt.u.handle), 0, discard)
				var last int64
				err := c.Upload(context.Background(), img, 512, func(off int64) { last = off })
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("Upload() = %v, want %v", err, tt.want)
				}
				if tt.want == nil && (!bytes.Equal(tt.u.img, img) || last != int64(len(img))) {
					t.Errorf("Upload() device holds %d bytes (equal %v), last progress %d, want the %d-byte image",
						len(tt.u.img), bytes.Equal(tt.u.img, img), last, len(img))
				}
			})
		})
	}
}

func TestUploadResume(t *testing.T) {
	img := BuildImage(ImageVersion{Major: 2}, bytes.Repeat([]byte("x"), 20000))
	u := &fakeUploader{maxPacket: 1024}
	synctest.Test(t, func(t *testing.T) {
		c := NewClient(newFake(u.handle), 0, discard)
		ctx, cancel := context.WithCancel(context.Background())
		err := c.Upload(ctx, img, 1024, func(off int64) {
			if off > 10000 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Upload(cancelled) = %v, want context.Canceled", err)
		}
		before := u.chunks
		var first int64 = -1
		if err := c.Upload(context.Background(), img, 1024, func(off int64) {
			if first < 0 {
				first = off
			}
		}); err != nil {
			t.Fatalf("Upload(resume) = %v", err)
		}
		if first <= 10000 || !bytes.Equal(u.img, img) {
			t.Errorf("Upload(resume) started at offset %d, want > 10000 (image intact %v)", first, bytes.Equal(u.img, img))
		}
		if n := u.chunks - before; n > 12 {
			t.Errorf("Upload(resume) sent %d chunks, want ≤ 12", n)
		}
	})
}

func TestChunkFitsPacket(t *testing.T) {
	img := bytes.Repeat([]byte{0xff}, 100000) // worst case: long lengths
	for _, size := range []int{128, 384, 1024, 2048, 65535} {
		u := &fakeUploader{maxPacket: size}
		c := NewClient(newFake(u.handle), 0, discard)
		if err := c.Upload(context.Background(), img, size, nil); err != nil {
			t.Errorf("Upload(packet %d) = %v", size, err)
		}
	}
}

func FuzzDecodePacket(f *testing.F) {
	for _, g := range golden {
		f.Add(goldenPacket(f, g.name))
	}
	f.Add([]byte{0x1f, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, body, err := DecodePacket(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodePacket error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := CheckStatus(h, body); err != nil {
			var de *DeviceError
			if !errors.Is(err, ErrMalformed) && !errors.As(err, &de) {
				t.Fatalf("CheckStatus error %v is neither ErrMalformed nor *DeviceError", err)
			}
		}
		for _, v := range []any{&ImageStateResponse{}, &UploadResponse{}, &ParamsResponse{}, &EchoResponse{}, &OSInfoResponse{}, &UploadRequest{}, &ImageStateRequest{}} {
			if err := Unmarshal(body, v); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal(%T) error %v does not wrap ErrMalformed", v, err)
			}
		}
		q, err := EncodePacket(h, body)
		if err != nil || !bytes.Equal(q, p) {
			t.Fatalf("EncodePacket(DecodePacket(%x)) = %x, %v", p, q, err)
		}
	})
}

func FuzzFrameDecoder(f *testing.F) {
	for _, g := range goldenFrames {
		f.Add([]byte(g.frame))
	}
	f.Add([]byte("\x06\x09AAA=\n\x04\x14AAAA\nlog\n"))
	f.Add([]byte("\x06\x09AAI=\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var d FrameDecoder
		d.Feed(in, func(p []byte, err error) {
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("FrameDecoder error %v does not wrap ErrMalformed", err)
				}
				return
			}
			fr, err := EncodeFrame(p)
			if err != nil {
				t.Fatal(err)
			}
			var d2 FrameDecoder
			n := 0
			d2.Feed(fr, func(q []byte, err error) {
				n++
				if err != nil || !bytes.Equal(q, p) {
					t.Fatalf("FrameDecoder(EncodeFrame(%x)) = %x, %v", p, q, err)
				}
			})
			if n != 1 {
				t.Fatalf("FrameDecoder(EncodeFrame(%x)) gave %d packets, want 1", p, n)
			}
		})
	})
}

// Older Zephyr (tinycbor) answers with indefinite-length maps.
func TestIndefiniteLengthMap(t *testing.T) {
	var r UploadResponse
	if err := Unmarshal([]byte{0xbf, 0x62, 'r', 'c', 0x00, 0x63, 'o', 'f', 'f', 0x18, 0x18, 0xff}, &r); err != nil || r.Off != 24 {
		t.Errorf("Unmarshal(indefinite map) = %+v, %v, want off 24", r, err)
	}
}
