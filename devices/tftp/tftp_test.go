// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// memFS is a fake device file store for Server tests.
type memFS struct {
	mu    sync.Mutex
	files map[string][]byte
}

type memUpload struct {
	fs   *memFS
	name string
	buf  bytes.Buffer
}

func (u *memUpload) Write(b []byte) (int, error) { return u.buf.Write(b) }
func (u *memUpload) Commit() error {
	u.fs.mu.Lock()
	defer u.fs.mu.Unlock()
	u.fs.files[u.name] = bytes.Clone(u.buf.Bytes())
	return nil
}
func (u *memUpload) Abort() {}

func (m *memFS) get(name string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	return b, ok
}

func (m *memFS) server() *Server {
	return &Server{
		Read: func(name string) (io.ReadCloser, int64, error) {
			b, ok := m.get(name)
			if !ok {
				return nil, 0, fs.ErrNotExist
			}
			return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
		},
		Write: func(name string, size int64) (Upload, error) {
			return &memUpload{fs: m, name: name}, nil
		},
		Timeout: 200 * time.Millisecond,
	}
}

// serve runs srv on a loopback socket until the test ends.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v, want nil on cancel", err)
		}
		pc.Close()
	})
	return pc.LocalAddr().String()
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		client Client
		size   int
	}{
		{"lockstep 512", Client{}, 5000},
		{"empty", Client{}, 0},
		{"exact multiple", Client{Blksize: 1024}, 4096},
		{"blksize 1428 window 8", Client{Blksize: 1428, Windowsize: 8}, 300_000},
		{"window 3 partial", Client{Blksize: 100, Windowsize: 3}, 1050},
		{"rollover past 65535", Client{Blksize: 8, Windowsize: 64}, 8*66000 + 3},
	}
	m := &memFS{files: map[string][]byte{}}
	addr := serve(t, m.server())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			data := payload(tt.size)
			var last int64
			if err := tt.client.Put(ctx, addr, tt.name, bytes.NewReader(data), int64(len(data)), func(n int64) { last = n }); err != nil {
				t.Fatalf("Put() = %v", err)
			}
			if last != int64(len(data)) && len(data) > 0 {
				t.Errorf("progress ended at %d, want %d", last, len(data))
			}
			got, _ := m.get(tt.name)
			if !bytes.Equal(got, data) {
				t.Fatalf("stored %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got), len(data), sha256.Sum256(data))
			}
			var buf bytes.Buffer
			n, err := tt.client.Get(ctx, addr, tt.name, &buf)
			if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("Get() = %d, %v; want %d bytes equal to the upload", n, err, len(data))
			}
		})
	}
}

func TestServerErrors(t *testing.T) {
	m := &memFS{files: map[string][]byte{"fw.bin": payload(10)}}
	srv := m.server()
	srv.MaxSize = 1000
	ro := &Server{Read: srv.Read}
	addr, roAddr := serve(t, srv), serve(t, ro)
	c := Client{Timeout: 100 * time.Millisecond, Retries: 2}
	ctx := context.Background()
	tests := []struct {
		name string
		run  func() error
		code ErrorCode
	}{
		{"not found", func() error { _, err := c.Get(ctx, addr, "nope", io.Discard); return err }, ErrCodeNotFound},
		{"too large by tsize", func() error { return c.Put(ctx, addr, "big", bytes.NewReader(payload(2000)), 2000, nil) }, ErrCodeDiskFull},
		{"read-only server", func() error { return c.Put(ctx, roAddr, "x", bytes.NewReader(payload(10)), 10, nil) }, ErrCodeAccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tt.code {
				t.Fatalf("error = %v, want RemoteError code %d", err, tt.code)
			}
		})
	}
}

func TestClientContextCancel(t *testing.T) {
	// A server that never answers: the client must return on cancel.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&Client{Timeout: time.Hour}).Put(ctx, pc.LocalAddr().String(), "x", bytes.NewReader(nil), 0, nil)
	}()
	buf := make([]byte, 600)
	if _, _, err := pc.ReadFrom(buf); err != nil { // the WRQ arrived
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put() after cancel = %v, want context.Canceled", err)
	}
}

func TestClientTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := Client{Timeout: 5 * time.Millisecond, Retries: 2}
	err = c.Put(context.Background(), pc.LocalAddr().String(), "x", bytes.NewReader(nil), 0, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Put() to a silent server = %v, want ErrTimeout", err)
	}
}

var _ = fmt.Sprint
var _ = slog.Default

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
