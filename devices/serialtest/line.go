// SPDX-License-Identifier: Apache-2.0

package serialtest

import (
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Faults are the failures a Line injects in one direction. Byte counts
// start at 1 with the first byte sent in that direction.
type Faults struct {
	DropEvery    int // drop every Nth byte (0: never)
	CorruptEvery int // invert every Nth byte (0: never)
	// StallAfter holds the line for StallFor once, after that many bytes.
	StallAfter int64
	StallFor   time.Duration
	// DisconnectAfter cuts the whole line (both ends closed) once that many
	// bytes have passed in this direction (0: never).
	DisconnectAfter int64
}

// Config describes a Line.
type Config struct {
	// Baud paces each direction at 10 bits per byte (8N1); 0 relays at
	// memory speed.
	Baud int
	// Slice is how many bytes are released at a time (default 16).
	Slice int
	// AtoB and BtoA are the faults of each direction.
	AtoB, BtoA Faults
	// Log, if not nil, gets a DEBUG line per fault.
	Log *slog.Logger
}

// Line relays bytes between two ends at the pace of a serial line. It owns
// the ends: Close (or a disconnect fault) closes both. Safe for concurrent
// use.
type Line struct {
	cfg  Config
	a, b io.ReadWriteCloser

	mu     sync.Mutex
	faults [2]Faults
	count  [2]int64 // bytes that entered each direction

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// Connect starts relaying between a and b.
func Connect(a, b io.ReadWriteCloser, cfg Config) *Line {
	if cfg.Slice <= 0 {
		cfg.Slice = 16
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Line{cfg: cfg, a: a, b: b, faults: [2]Faults{cfg.AtoB, cfg.BtoA}, done: make(chan struct{})}
	l.wg.Add(4)
	ab := make(chan chunk, 256)
	ba := make(chan chunk, 256)
	go l.read(a, ab)
	go l.pace(0, ab, b)
	go l.read(b, ba)
	go l.pace(1, ba, a)
	return l
}

// SetFaults replaces the faults of both directions from now on.
func (l *Line) SetFaults(aToB, bToA Faults) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = [2]Faults{aToB, bToA}
}

// Bytes returns how many bytes have entered each direction so far.
func (l *Line) Bytes() (aToB, bToA int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[0], l.count[1]
}

// Done is closed once the line is cut (Close, a disconnect fault, or a
// write to an end that failed). An end that reaches EOF only ends its own
// direction.
func (l *Line) Done() <-chan struct{} { return l.done }

// Disconnect cuts the line now, as if the cable were pulled: both ends are
// closed. It does not wait for the relay to stop.
func (l *Line) Disconnect() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.a.Close()
		l.b.Close()
	})
}

// Close cuts the line and waits for the relay goroutines to end.
func (l *Line) Close() error {
	l.Disconnect()
	l.wg.Wait()
	return nil
}

type chunk struct {
	data []byte
	at   time.Time
}

func (l *Line) read(src io.Reader, out chan<- chunk) {
	defer l.wg.Done()
	defer close(out)
	for {
		buf := make([]byte, 1024)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case out <- chunk{buf[:n], time.Now()}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			// The end went away (a process exited). Bytes already on the
			// wire still arrive; the other direction runs until a write to
			// this end fails. Closing the other end now could discard
			// them (a pty master's close flushes its slave's input).
			return
		}
	}
}

func (l *Line) pace(dir int, in <-chan chunk, dst io.Writer) {
	defer l.wg.Done()
	var byteTime time.Duration
	if l.cfg.Baud > 0 {
		byteTime = time.Duration(10 * float64(time.Second) / float64(l.cfg.Baud))
	}
	var free time.Time // when the line finishes sending what it has
	out := make([]byte, 0, l.cfg.Slice)
	for c := range in {
		data := c.data
		for len(data) > 0 {
			n := min(l.cfg.Slice, len(data))
			out = out[:0]
			cut := false
			var stall time.Duration
			l.mu.Lock()
			f := l.faults[dir]
			for _, b := range data[:n] {
				l.count[dir]++
				k := l.count[dir]
				switch {
				case f.DropEvery > 0 && k%int64(f.DropEvery) == 0:
					l.cfg.Log.Debug("line: drop", "dir", dir, "byte", k)
					continue
				case f.CorruptEvery > 0 && k%int64(f.CorruptEvery) == 0:
					l.cfg.Log.Debug("line: corrupt", "dir", dir, "byte", k)
					b = ^b
				}
				if f.StallAfter > 0 && k == f.StallAfter {
					stall = f.StallFor
				}
				if f.DisconnectAfter > 0 && k >= f.DisconnectAfter {
					cut = true
					break
				}
				out = append(out, b)
			}
			l.mu.Unlock()
			data = data[n:]
			if byteTime > 0 {
				start := c.at
				if free.After(start) {
					start = free
				}
				free = start.Add(time.Duration(n) * byteTime)
				if !waitUntil(free, l.done) {
					return
				}
			}
			if len(out) > 0 {
				if _, err := dst.Write(out); err != nil {
					l.Disconnect()
					return
				}
			}
			if cut {
				l.cfg.Log.Debug("line: disconnect", "dir", dir)
				l.Disconnect()
				return
			}
			if stall > 0 {
				l.cfg.Log.Debug("line: stall", "dir", dir, "for", stall)
				free = time.Now().Add(stall)
				select {
				case <-time.After(stall):
				case <-l.done:
					return
				}
			}
		}
	}
}

// coarseSlack is how early a wait leaves Go's timers for a thread sleep.
// Go's timers wake up to about a millisecond late on Linux (the netpoller
// waits in whole milliseconds). Mid-stream that is absorbed, since every
// slice is scheduled from the line's own clock, but it would add a
// millisecond to each delivery before a turnaround: twice per block of a
// stop-and-wait protocol, more than the 115200-baud line spends on the ACK
// itself.
const coarseSlack = 2 * time.Millisecond

// waitUntil returns true at t, within the kernel's timer slack (about
// 0.05 ms), or false once done is closed. The last coarseSlack is slept
// with nanosleep on the goroutine's own thread.
func waitUntil(t time.Time, done <-chan struct{}) bool {
	if d := time.Until(t) - coarseSlack; d > 0 {
		select {
		case <-time.After(d):
		case <-done:
			return false
		}
	}
	for d := time.Until(t); d > 0; d = time.Until(t) {
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: sleep the rest
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// process is a child's stdout (read) and stdin (write) as one end.
type process struct {
	io.ReadCloser
	stdin io.WriteCloser
}

func (p process) Write(b []byte) (int, error) { return p.stdin.Write(b) }

func (p process) Close() error {
	return errors.Join(p.stdin.Close(), p.ReadCloser.Close())
}

// StartProcess starts cmd and returns its stdout and stdin as one end of a
// Line (for lrzsz, which must not be given a pty). cmd.Stderr is left as
// the caller set it. Closing the end closes the pipes; the caller still
// owns the process (cmd.Process) and must kill or wait for it.
func StartProcess(cmd *exec.Cmd) (io.ReadWriteCloser, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return process{ReadCloser: stdout, stdin: stdin}, nil
}

// Borrow returns rw as a line end whose Close does nothing, for a port the
// caller keeps using after the Line is closed. Reads in flight when the
// Line closes are cut by a past read deadline when rw supports one.
func Borrow(rw io.ReadWriter) io.ReadWriteCloser { return borrowed{rw} }

type borrowed struct{ io.ReadWriter }

func (b borrowed) Close() error {
	if d, ok := b.ReadWriter.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(time.Now())
	}
	return nil
}
