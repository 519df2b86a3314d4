// SPDX-License-Identifier: Apache-2.0

package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// Reader is what the control socket's read-only routes serve: status,
// windows and the audit log, what `fieldgatectl status`, `jobs`, `windows`
// and `audit` need. The daemon implements it.
type Reader interface {
	Status(ctx context.Context) (api.Status, error)
	Windows() []api.WindowInfo
	ExportAudit(w io.Writer) error
	VerifyAudit() (int, error)
}

// InventoryReader is implemented by a Reader that also serves the
// inventory (GET /v1/inventory, for fieldgatectl inventory); a Reader
// without it answers 404 there.
type InventoryReader interface {
	Inventory(ctx context.Context) (api.Inventory, error)
}

// AdvisoryReader is implemented by a Reader that also serves every
// device's advisories (GET /v1/advisories, for fieldgatectl advisories).
type AdvisoryReader interface {
	Advisories(ctx context.Context) (api.Advisories, error)
}

// Commander is what the control socket's commands change; the daemon
// implements it. actor is who asked: "console uid=N" from the socket's
// peer credentials.
type Commander interface {
	ApproveLocal(job, actor string) (string, error)
	Cancel(job, actor string) error
	Defer(job, actor string, until time.Time) error
	Stop(actor string) error
	Resume(actor string) error
	Refresh(actor string)
	Press(button string, hold time.Duration) error
	Import(ctx context.Context, dir, actor string) (int, error)
	// Retry lifts the holds of a device, or of a job's target on its
	// devices (command: the remote command's id, "" on site).
	Retry(what, actor, command string) ([]string, error)
	// Recover stages a recovery job pushing image ("known-good" or a
	// target name) to a device.
	Recover(ctx context.Context, device, image, actor, command string) (string, error)
}

// Request is the body of every POST to the control socket.
type Request struct {
	Job    string        `json:"job,omitempty"`
	Until  time.Time     `json:"until,omitempty"`
	Button string        `json:"button,omitempty"`
	Hold   time.Duration `json:"hold,omitempty"`
	Dir    string        `json:"dir,omitempty"`
	Device string        `json:"device,omitempty"`
	Image  string        `json:"image,omitempty"`
	File   string        `json:"file,omitempty"`
}

// Reply is the body of every POST answer.
type Reply struct {
	OK    bool   `json:"ok"`
	Job   string `json:"job,omitempty"`
	Count int    `json:"count,omitempty"`
	Error string `json:"error,omitempty"`
}

// Server serves a Reader and a Commander (often the same daemon) on a Unix
// socket.
type Server struct {
	Path      string
	Reader    Reader
	Commander Commander
	Log       *slog.Logger

	ln net.Listener // set by Listen
}

type actorKey struct{}

// peerActor names the local user on the other end of a Unix socket.
func peerActor(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "console"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "console"
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, _ = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cred == nil {
		return "console"
	}
	if u, err := user.LookupId(strconv.Itoa(int(cred.Uid))); err == nil {
		return fmt.Sprintf("console uid=%d (%s)", cred.Uid, u.Username)
	}
	return fmt.Sprintf("console uid=%d", cred.Uid)
}

// Limits on what a client may send. A request body is read whole, under
// its own deadline, before any handler runs: without it a client that sent
// its headers and then stalled or trickled the body would hold a
// connection and a goroutine as long as it liked (ReadHeaderTimeout ends at
// the headers). http.Server.ReadTimeout is not used instead: its deadline
// stays on the connection while the handler runs, and when it passes,
// net/http cancels the request's context, which would abort a long Import.
const (
	headerTimeout = 5 * time.Second
	bodyTimeout   = 5 * time.Second  // from the end of the headers to the end of the body
	idleTimeout   = 60 * time.Second // a kept-alive connection waiting for its next request
	maxBody       = 4096             // every request body is a small JSON Request
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// readBody reads the request body, at most maxBody bytes within
// bodyTimeout, and hands it to next in memory. A body that is too large or
// too slow is answered with 413 or 408 and the connection is closed.
func readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(bodyTimeout)); err != nil {
			writeJSON(w, http.StatusInternalServerError, Reply{Error: "request body deadline: " + err.Error()})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			code, msg := http.StatusBadRequest, "bad request: "+err.Error()
			var tooBig *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &tooBig):
				code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody)
			case errors.As(err, &ne) && ne.Timeout():
				code, msg = http.StatusRequestTimeout, fmt.Sprintf("request body not received within %v", bodyTimeout)
			}
			w.Header().Set("Connection", "close")
			writeJSON(w, code, Reply{Error: msg})
			return
		}
		// Lift the deadline again: it also covers the read net/http keeps
		// pending while the handler runs, whose timeout would cancel the
		// request's context.
		if err := rc.SetReadDeadline(time.Time{}); err != nil {
			writeJSON(w, http.StatusInternalServerError, Reply{Error: "request body deadline: " + err.Error()})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Reader.Status(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, Reply{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	if ir, ok := s.Reader.(InventoryReader); ok {
		mux.HandleFunc("GET /v1/inventory", func(w http.ResponseWriter, r *http.Request) {
			inv, err := ir.Inventory(r.Context())
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, Reply{Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, inv)
		})
	}
	if ar, ok := s.Reader.(AdvisoryReader); ok {
		mux.HandleFunc("GET /v1/advisories", func(w http.ResponseWriter, r *http.Request) {
			adv, err := ar.Advisories(r.Context())
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, Reply{Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, adv)
		})
	}
	mux.HandleFunc("GET /v1/windows", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Reader.Windows())
	})
	mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		if err := s.Reader.ExportAudit(w); err != nil {
			s.Log.Error("audit export", "err", err)
		}
	})
	post := func(path string, fn func(req Request, actor string) (Reply, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req Request
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				writeJSON(w, http.StatusBadRequest, Reply{Error: "bad request: " + err.Error()})
				return
			}
			actor, _ := r.Context().Value(actorKey{}).(string)
			rep, err := fn(req, actor)
			if err != nil {
				rep.Error = err.Error()
				writeJSON(w, http.StatusConflict, rep)
				return
			}
			rep.OK = true
			writeJSON(w, http.StatusOK, rep)
		})
	}
	post("/v1/approve", func(q Request, a string) (Reply, error) {
		job, err := s.Commander.ApproveLocal(q.Job, a)
		return Reply{Job: job}, err
	})
	post("/v1/cancel", func(q Request, a string) (Reply, error) { return Reply{Job: q.Job}, s.Commander.Cancel(q.Job, a) })
	post("/v1/defer", func(q Request, a string) (Reply, error) {
		return Reply{Job: q.Job}, s.Commander.Defer(q.Job, a, q.Until)
	})
	post("/v1/retry", func(q Request, a string) (Reply, error) {
		what := q.Device
		if what == "" {
			what = q.Job
		}
		devs, err := s.Commander.Retry(what, a, "")
		return Reply{Count: len(devs)}, err
	})
	post("/v1/recover", func(q Request, a string) (Reply, error) {
		job, err := s.Commander.Recover(context.Background(), q.Device, q.Image, a, "")
		return Reply{Job: job}, err
	})
	post("/v1/stop", func(q Request, a string) (Reply, error) { return Reply{}, s.Commander.Stop(a) })
	post("/v1/resume", func(q Request, a string) (Reply, error) { return Reply{}, s.Commander.Resume(a) })
	post("/v1/refresh", func(q Request, a string) (Reply, error) { s.Commander.Refresh(a); return Reply{}, nil })
	post("/v1/board/press", func(q Request, a string) (Reply, error) { return Reply{}, s.Commander.Press(q.Button, q.Hold) })
	mux.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Dir == "" {
			writeJSON(w, http.StatusBadRequest, Reply{Error: "bad request: want {\"dir\": PATH}"})
			return
		}
		actor, _ := r.Context().Value(actorKey{}).(string)
		n, err := s.Commander.Import(r.Context(), req.Dir, actor)
		if err != nil {
			writeJSON(w, http.StatusConflict, Reply{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, Reply{OK: true, Count: n})
	})
	post("/v1/audit/verify", func(q Request, a string) (Reply, error) {
		n, err := s.Reader.VerifyAudit()
		return Reply{Count: n}, err
	})
	s.reportRoutes(mux, post)
	s.triageRoutes(mux)
	return readBody(mux)
}

// Listen binds s.Path (replacing a stale socket file) without serving yet:
// a daemon calls it before it tells systemd it is ready, so that a client
// started right after never finds no socket. Run calls it if nobody did.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o750); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: remove stale %s: %w", s.Path, err)
	}
	ln, err := net.Listen("unix", s.Path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(s.Path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.ln = ln
	return nil
}

// Run listens on s.Path unless Listen already did, and serves until ctx
// ends. It returns nil on cancel.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ln := s.ln
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       idleTimeout,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, actorKey{}, peerActor(c))
		},
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-done
		os.Remove(s.Path)
		return nil
	case err := <-done:
		return fmt.Errorf("control socket: %w", err)
	}
}
