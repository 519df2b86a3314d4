package api

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
