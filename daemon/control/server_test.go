// SPDX-License-Identifier: Apache-2.0

package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// TestListenBeforeRun: once Listen returns, a client can connect, though
// Run has not started serving yet (its request waits); Run then answers on
// the same socket.
func TestListenBeforeRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	s := &Server{Path: path}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial after Listen, before Run: %v", err)
	}
	c.Close()

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer ccancel()
	_, err = NewClient(path).Post(cctx, "/v1/no-such-command", Request{})
	if err == nil || !strings.Contains(err.Error(), "daemon answered 404") {
		t.Errorf("Post(unknown command) = %v, want the served 404", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v after cancel, want nil", err)
	}
}

// pipeListener hands out the server ends of net.Pipe connections, so that
// a Server runs inside a synctest bubble.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// slowBackend answers Import after a while and records what it saw. It
// embeds nil interfaces: other methods are not called.
type slowBackend struct {
	Reader
	Commander
	took   time.Duration
	calls  int
	ctxErr error
}

func (b *slowBackend) Windows() []api.WindowInfo { return nil }

func (b *slowBackend) Import(ctx context.Context, dir, actor string) (int, error) {
	b.calls++
	time.Sleep(b.took)
	b.ctxErr = ctx.Err()
	return 1, nil
}

// serveBubble runs a Server on a pipe listener until the bubble's test
// function returns.
func serveBubble(t *testing.T, b *slowBackend) *pipeListener {
	ln := newPipeListener()
	s := &Server{Reader: b, Commander: b, Log: slog.New(slog.DiscardHandler), ln: ln}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
	})
	return ln
}

// answer reads one response from c, or gives up after a minute.
func answer(t *testing.T, c net.Conn) (*http.Response, time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within a minute: %v", err)
	}
	resp.Body.Close()
	return resp, time.Since(start)
}

// TestBodyTimeout: a client that sends its headers and then stalls or
// trickles the body is answered 408 and cut off once bodyTimeout has
// passed, wherever the route, and its request never reaches the backend.
func TestBodyTimeout(t *testing.T) {
	tests := []struct {
		name    string
		head    string
		trickle bool // one byte a second instead of nothing
	}{
		{"stalled POST", "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"dir\":", false},
		{"trickled POST", "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n", true},
		{"stalled GET body", "GET /v1/windows HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := &slowBackend{}
				ln := serveBubble(t, b)
				c := ln.dial()
				defer c.Close()
				if _, err := io.WriteString(c, tt.head); err != nil {
					t.Fatal(err)
				}
				if tt.trickle {
					var wg sync.WaitGroup
					defer func() { c.Close(); wg.Wait() }() // the next Write fails
					wg.Go(func() {
						for {
							time.Sleep(time.Second)
							if _, err := c.Write([]byte(" ")); err != nil {
								return
							}
						}
					})
				}
				resp, took := answer(t, c)
				if resp.StatusCode != http.StatusRequestTimeout || took > bodyTimeout+time.Second {
					t.Errorf("answer = %s after %v, want %d after %v", resp.Status, took, http.StatusRequestTimeout, bodyTimeout)
				}
				if b.calls != 0 {
					t.Errorf("backend called %d times, want 0", b.calls)
				}
				// The server closed the connection.
				c.SetReadDeadline(time.Now().Add(time.Minute))
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
					t.Errorf("read after the 408 = %v, want EOF", err)
				}
			})
		})
	}
}

// TestBodyLimits: a body over maxBody is refused with 413; a request whose
// handler runs longer than bodyTimeout keeps its context (the body deadline
// is lifted once the body is in).
func TestBodyLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &slowBackend{took: 3 * bodyTimeout}
		ln := serveBubble(t, b)

		c := ln.dial()
		defer c.Close()
		big := `{"dir":"` + strings.Repeat("x", maxBody) + `"}`
		go io.WriteString(c, "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(big))+"\r\n\r\n"+big)
		if resp, _ := answer(t, c); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("answer to a %d-byte body = %s, want %d", len(big), resp.Status, http.StatusRequestEntityTooLarge)
		}

		c2 := ln.dial()
		defer c2.Close()
		body := `{"dir":"/media/usb"}`
		go io.WriteString(c2, "POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		if resp, _ := answer(t, c2); resp.StatusCode != http.StatusOK {
			t.Errorf("answer to a slow import = %s, want 200", resp.Status)
		}
		if b.calls != 1 || b.ctxErr != nil {
			t.Errorf("backend Import called %d times, context error %v at its end; want 1 call and no error", b.calls, b.ctxErr)
		}
	})
}

// TestBodyFormat pins the JSON of the socket's request and reply bodies:
// fieldgatectl and the daemon may be of different builds across an update.
func TestBodyFormat(t *testing.T) {
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		body any
		want string
	}{
		{"full request", Request{Job: "j-1", Until: until, Button: "approve", Hold: 3 * time.Second, Dir: "/media/usb", Device: "plc-1", Image: "known-good"},
			`{"job":"j-1","until":"2030-01-02T03:04:05Z","button":"approve","hold":3000000000,"dir":"/media/usb","device":"plc-1","image":"known-good"}`},
		// omitempty does not omit a zero time.Time: the zero Until is sent.
		{"empty request", Request{}, `{"until":"0001-01-01T00:00:00Z"}`},
		{"full reply", Reply{OK: true, Job: "j-1", Count: 2, Error: "refused"}, `{"ok":true,"job":"j-1","count":2,"error":"refused"}`},
		{"empty reply", Reply{}, `{"ok":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatalf("json.Marshal(%s) = %v", tt.name, err)
			}
			if string(got) != tt.want {
				t.Errorf("json.Marshal(%s) = %s, want %s", tt.name, got, tt.want)
			}
		})
	}
}
