// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// NewLogHandler returns the handler the commands log through: slog's text
// format (key=value, one line per record: values with line breaks are
// quoted) on w. When w is the stream journald reads (JournalStream), each
// line carries no time and no level of its own: journald stamps it, and
// the level travels as a syslog priority prefix ("<6>" for info), which
// journald turns into the entry's PRIORITY= (SyslogLevelPrefix=, on by
// default). `journalctl -p warning` then filters fieldgate's warnings.
func NewLogHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if f, ok := w.(*os.File); ok && JournalStream(f, os.Getenv("JOURNAL_STREAM")) {
		return newJournalHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// JournalStream reports whether f is the stream journald reads: systemd
// sets $JOURNAL_STREAM to "DEVICE:INODE" of the stdout/stderr it connects
// to the journal, and f must be that very file (a process that redirects
// its stderr elsewhere keeps the variable but not the stream).
func JournalStream(f *os.File, env string) bool {
	if env == "" {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	d, i, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	return err1 == nil && err2 == nil && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// Priority is the syslog priority (sd-daemon(3)) of a slog level: debug 7,
// info 6, warning 4, error 3. Levels between round towards the more severe.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l > slog.LevelInfo:
		return 4
	case l > slog.LevelDebug:
		return 6
	default:
		return 7
	}
}

// journalHandler is a text handler without time= and level= whose lines
// start with the record's priority prefix. The prefix is set under a lock
// shared by every handler derived from it, around the text handler's one
// Write per record.
type journalHandler struct {
	text slog.Handler
	out  *prefixWriter
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix [3]byte // "<N>"
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	line := make([]byte, 0, len(p.prefix)+len(b))
	line = append(append(line, p.prefix[:]...), b...)
	if _, err := p.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}

func newJournalHandler(w io.Writer, opts *slog.HandlerOptions) *journalHandler {
	var o slog.HandlerOptions
	if opts != nil {
		o = *opts
	}
	user := o.ReplaceAttr
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
			return slog.Attr{}
		}
		if user != nil {
			return user(groups, a)
		}
		return a
	}
	out := &prefixWriter{w: w}
	return &journalHandler{text: slog.NewTextHandler(out, &o), out: out}
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return j.text.Enabled(ctx, l)
}

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.out.mu.Lock()
	defer j.out.mu.Unlock()
	j.out.prefix = [3]byte{'<', byte('0' + Priority(r.Level)), '>'}
	return j.text.Handle(ctx, r)
}

func (j *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{text: j.text.WithAttrs(as), out: j.out}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{text: j.text.WithGroup(name), out: j.out}
}
