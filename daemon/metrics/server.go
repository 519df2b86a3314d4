// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
)

// Timeouts of one scrape connection.
const (
	headerTimeout = 5 * time.Second
	writeTimeout  = 10 * time.Second
	idleTimeout   = time.Minute
)

// Server serves Metrics at /metrics on Addr, a loopback IP with a port or
// unix:/path (config.CheckMetricsListen). Call Listen before the daemon
// says it is ready, then Run.
type Server struct {
	Addr    string
	Metrics *Metrics
	Log     *slog.Logger

	ln       net.Listener
	lastWarn atomic.Int64 // unix seconds of the last scrape failure logged
}

// Listen opens the listener, refusing an address beyond loopback. A stale
// socket file left by an earlier run is replaced.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	if err := config.CheckMetricsListen(s.Addr); err != nil {
		return fmt.Errorf("metrics.listen: %w", err) // Validate refused it already; never serve beyond loopback
	}
	path, unix := strings.CutPrefix(s.Addr, "unix:")
	if !unix {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		s.ln = ln
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("metrics: remove stale %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	// The group may scrape (a local agent run as group fieldgate).
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	s.ln = ln
	return nil
}

// Run serves until ctx ends and returns nil then. It listens first unless
// Listen already did.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: headerTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(s.ln) }()
	s.Log.Info("metrics listening", "addr", s.ln.Addr().String())
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
		if path, unix := strings.CutPrefix(s.Addr, "unix:"); unix {
			os.Remove(path)
		}
		return nil
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	}
}

// ServeHTTP answers a scrape. The body is rendered into memory first, so
// that a failure to read the daemon's numbers is a 500, not a truncated
// exposition.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body strings.Builder
	if _, err := s.Metrics.WriteTo(&body); err != nil {
		if now := time.Now().Unix(); s.lastWarn.Load() < now-60 { // at most once a minute
			s.lastWarn.Store(now)
			s.Log.Warn("metrics scrape", "err", err)
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(body.String()))
}
