// SPDX-License-Identifier: Apache-2.0

package xmodem_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// benchBytes is the transfer size: FIELDGATE_BENCH_BYTES, default 64 KiB
// (1 MiB = 1048576 takes about 95 s per sender at 115200).
func benchBytes(b *testing.B) int {
	if v := os.Getenv("FIELDGATE_BENCH_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("FIELDGATE_BENCH_BYTES=%q is not a positive size", v)
		}
		return n
	}
	return 64 << 10
}

const benchBaud = 115200

// wireFloor is the time XMODEM-1K/CRC needs on an 8N1 line at baud for n
// bytes: 1029 bytes per block plus its ACK, 10 bits each (91.56 s/MiB at
// 115200).
func wireFloor(n, baud int) time.Duration {
	blocks := (n + 1023) / 1024
	return time.Duration(float64(blocks*1030*10) / float64(baud) * float64(time.Second))
}

func report(b *testing.B, n int, elapsed time.Duration) {
	per := elapsed.Seconds() / float64(b.N)
	b.ReportMetric(per*float64(1<<20)/float64(n), "s/MiB")
	b.ReportMetric(per/wireFloor(n, benchBaud).Seconds(), "x-floor")
}

// BenchmarkSendToRx: our XMODEM-1K sender into lrzsz `rx -c` over an
// emulated 115200-baud line, on two kinds of end:
//
//	pipe    stdin/stdout-like pipes, the same kind of end sx gets in
//	        BenchmarkSxToRx: the like-for-like comparison
//	serial  the driver's go.bug.st/serial port on a pty, the production
//	        path (a pty adds the kernel's tty layer to every turnaround)
func BenchmarkSendToRx(b *testing.B) {
	n := benchBytes(b)
	data := payload(n)
	b.Run("pipe", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			rx := startRx(b)
			toLine, fromUs, err := os.Pipe() // we write, the line reads
			if err != nil {
				b.Fatal(err)
			}
			toUs, fromLine, err := os.Pipe() // the line writes, we read
			if err != nil {
				b.Fatal(err)
			}
			line := serialtest.Connect(pipeEnd{toLine, fromLine}, rx.end, serialtest.Config{Baud: benchBaud})
			port := pipePort{toUs, fromUs}
			start := time.Now()
			if err := xmodem.Send(context.Background(), port, bytes.NewReader(data), int64(n), xmodem.Options{}); err != nil {
				b.Fatalf("Send() = %v (%s)", err, rx.stderr.String())
			}
			total += time.Since(start)
			rx.finish(b)
			line.Close()
			toUs.Close()
			fromUs.Close()
		}
		report(b, n, total)
	})
	b.Run("serial", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			rx := startRx(b)
			pt, err := serialtest.OpenPTY()
			if err != nil {
				b.Fatal(err)
			}
			line := serialtest.Connect(pt, rx.end, serialtest.Config{Baud: benchBaud})
			port, closePort, err := xmodem.OpenSerial(pt.Path, benchBaud)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := xmodem.Send(context.Background(), port, bytes.NewReader(data), int64(n), xmodem.Options{}); err != nil {
				b.Fatalf("Send() = %v (%s)", err, rx.stderr.String())
			}
			total += time.Since(start)
			rx.finish(b)
			line.Close()
			closePort()
		}
		report(b, n, total)
	})
}

// rxPeer is lrzsz `rx -c` receiving out.bin in a temporary directory,
// with its stdin/stdout as a line end (its Port is unused).
type rxPeer struct {
	*peer
	end io.ReadWriteCloser
}

func startRx(b *testing.B) rxPeer {
	p := &peer{cmd: exec.Command(needPeer(b, "rx"), "-c", "-q", "out.bin")}
	p.cmd.Dir = b.TempDir()
	p.cmd.Stderr = &p.stderr
	end, err := serialtest.StartProcess(p.cmd)
	if err != nil {
		b.Fatal(err)
	}
	return rxPeer{peer: p, end: end}
}

// finish waits for rx to exit on its own after the transfer.
func (r rxPeer) finish(b *testing.B) {
	if err := r.wait(b, 10*time.Second); err != nil {
		b.Fatalf("rx: %v (%s)", err, r.stderr.String())
	}
}

// pipeEnd is the line's side of the two pipes: it reads what we write and
// writes what we read.
type pipeEnd struct{ r, w *os.File }

func (e pipeEnd) Read(p []byte) (int, error)  { return e.r.Read(p) }
func (e pipeEnd) Write(p []byte) (int, error) { return e.w.Write(p) }
func (e pipeEnd) Close() error                { e.r.Close(); return e.w.Close() }

// pipePort is our side: an xmodem.Port over the other ends of the pipes.
type pipePort struct{ r, w *os.File }

func (p pipePort) Read(b []byte) (int, error)         { return p.r.Read(b) }
func (p pipePort) Write(b []byte) (int, error)        { return p.w.Write(b) }
func (p pipePort) SetReadDeadline(t time.Time) error  { return p.r.SetReadDeadline(t) }
func (p pipePort) SetWriteDeadline(t time.Time) error { return p.w.SetWriteDeadline(t) }

// BenchmarkSxToRx: lrzsz `sx -k` into `rx -c` over the same emulated line,
// the reference for BenchmarkSendToRx.
func BenchmarkSxToRx(b *testing.B) {
	n := benchBytes(b)
	needPeer(b, "sx")
	var total time.Duration
	for b.Loop() {
		dir := b.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "in.bin"), payload(n), 0o644); err != nil {
			b.Fatal(err)
		}
		rx := startRx(b)
		sx := exec.Command(needPeer(b, "sx"), "-k", "-q", "in.bin")
		sx.Dir = dir
		start := time.Now()
		sxEnd, err := serialtest.StartProcess(sx)
		if err != nil {
			b.Fatal(err)
		}
		line := serialtest.Connect(sxEnd, rx.end, serialtest.Config{Baud: benchBaud})
		if err := sx.Wait(); err != nil {
			b.Fatalf("sx: %v", err)
		}
		total += time.Since(start)
		rx.finish(b)
		line.Close()
	}
	report(b, n, total)
}
