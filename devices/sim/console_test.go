// SPDX-License-Identifier: Apache-2.0

package sim_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// startConsole runs one simulated console device until the test ends and
// returns its spec.
func startConsole(t *testing.T, spec sim.Spec) sim.Spec {
	t.Helper()
	dir := t.TempDir()
	spec.ID, spec.Kind, spec.HardwareID = "dev1", sim.ConsoleKind, "acme-io16-rev3"
	if spec.Version == "" {
		spec.Version = "1.0.0"
	}
	spec.StateDir = filepath.Join(dir, "state")
	spec.Address = filepath.Join(dir, "tty")
	if spec.Options == nil {
		spec.Options = map[string]string{"boot_delay": "10ms", "image_size": "20000"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- sim.RunNotify(ctx, []sim.Spec{spec}, slog.New(slog.DiscardHandler), func(sim.Spec) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("RunNotify() = %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunNotify() = %v", err)
		}
	})
	return spec
}

// openConsole opens the device's pty link in raw mode and waits for the
// first prompt.
func openConsole(t *testing.T, spec sim.Spec) *os.File {
	t.Helper()
	port, err := os.OpenFile(spec.Address, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	if err := serialtest.MakeRaw(port); err != nil {
		t.Fatal(err)
	}
	expect(t, port, "", "> ", 10*time.Second)
	return port
}

// expect writes send and reads until want appears or within passes; it
// returns what it read.
func expect(t *testing.T, port *os.File, send, want string, within time.Duration) string {
	t.Helper()
	if send != "" {
		if _, err := port.WriteString(send); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(within)
	for !bytes.Contains(got, []byte(want)) {
		port.SetReadDeadline(deadline)
		n, err := port.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %q: read %q, want %q within %v: %v", send, got, want, within, err)
		}
	}
	port.SetReadDeadline(time.Time{})
	return string(got)
}

// TestDumpToReceiveYMODEM is TestInteropDumpToRb with this module's own
// YMODEM receiver, which needs no peer program.
func TestDumpToReceiveYMODEM(t *testing.T) {
	if testing.Short() {
		t.Skip("YMODEM dump of the flash on a 115200-baud console: line-paced, run without -short")
	}
	spec := startConsole(t, sim.Spec{Baud: 115200})
	port := openConsole(t, spec)
	expect(t, port, "dump\r", "with YMODEM\r\n", 10*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var img bytes.Buffer
	if _, err := xmodem.ReceiveYMODEM(ctx, port, &img, xmodem.Options{}); err != nil {
		t.Fatalf("ReceiveYMODEM() = %v", err)
	}
	ended := time.Now()
	if want := sim.MakeImage(spec.HardwareID, spec.Version, 20000); !bytes.Equal(img.Bytes(), want) {
		t.Errorf("received %d bytes, want the factory image's %d", img.Len(), len(want))
	}
	expect(t, port, "\r", "> ", time.Second)
	expect(t, port, "version\r", "version 1.0.0", time.Second)
	t.Logf("console answered %v after the receiver ended", time.Since(ended).Round(time.Millisecond))
}

// TestInteropDumpToRb reads the flash back with lrzsz `rb` on the
// device's tty, as the backup read-back does, and checks that the console
// takes a command again within a second of rb ending. rb on a tty exits
// without the console seeing its acknowledgement of the end-of-batch
// block; a console that waited out its sender's retries stayed deaf for
// 20-30 s.
func TestInteropDumpToRb(t *testing.T) {
	if testing.Short() {
		t.Skip("lrzsz rb on a 115200-baud console: line-paced, run without -short")
	}
	rb := devicetest.NeedPeer(t, "rb", "lrzsz")
	spec := startConsole(t, sim.Spec{Baud: 115200})
	port := openConsole(t, spec)
	expect(t, port, "dump\r", "sending 20000 bytes with YMODEM\r\n", 10*time.Second)
	tty, err := os.OpenFile(spec.Address, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	dir := t.TempDir()
	cmd := exec.Command(rb, "-b", "-q")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("rb: %v (%s)", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("rb did not finish (%s)", stderr.String())
	}
	ended := time.Now()
	got, err := os.ReadFile(filepath.Join(dir, "flash.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sim.MakeImage(spec.HardwareID, spec.Version, 20000); !bytes.Equal(got, want) {
		t.Errorf("rb wrote %d bytes, want the factory image's %d", len(got), len(want))
	}
	expect(t, port, "version\r", "version 1.0.0\r\n", time.Second)
	t.Logf("console answered %v after rb ended", time.Since(ended).Round(time.Millisecond))
}

// TestConsoleCounters checks that the console counts what reaches its
// flash: a complete XMODEM-1K update, a transfer cut off after some blocks
// (partial), a transfer cancelled before any block (no write), and boots;
// both in CountersFile and on the status line.
func TestConsoleCounters(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the console's timeouts after a cut transfer: takes seconds, run without -short")
	}
	spec := startConsole(t, sim.Spec{})
	port := openConsole(t, spec)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	img := sim.MakeImage(spec.HardwareID, "2.0.0", 5000)
	expect(t, port, "update\r", "ready for XMODEM-1K\r\n", 5*time.Second)
	if err := xmodem.Send(ctx, port, bytes.NewReader(img), int64(len(img)), xmodem.Options{}); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	expect(t, port, "", "update ok: 5000 bytes", 5*time.Second)

	expect(t, port, "update\r", "ready for XMODEM-1K\r\n", 5*time.Second)
	cut := &cutAfter{File: port, n: 2 * (3 + 1024 + 2)} // two blocks, then a CAN
	if err := xmodem.Send(ctx, cut, bytes.NewReader(img), int64(len(img)), xmodem.Options{Retries: 1, Timeout: 300 * time.Millisecond}); err == nil {
		t.Fatal("Send() over a cut line = nil, want an error")
	}
	port.Write([]byte{0x18, 0x18, 0x18})
	expect(t, port, "", "partial image", 10*time.Second)

	expect(t, port, "reset\r", "staying in bootloader", 5*time.Second)

	got, err := sim.ReadCounters(spec.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	want := sim.Counters{Writes: 2, PartialWrites: 1, BytesWritten: 5000 + 2048, Boots: 2}
	if got != want {
		t.Errorf("ReadCounters() = %+v, want %+v", got, want)
	}
	expect(t, port, "status\r", "writes=2 partial=1 written=7048", 5*time.Second)
}

// cutAfter passes the first n bytes written and silently drops the rest.
type cutAfter struct {
	*os.File
	n int
}

func (c *cutAfter) Write(b []byte) (int, error) {
	k := min(len(b), c.n)
	c.n -= k
	if k > 0 {
		if _, err := c.File.Write(b[:k]); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// TestDumpReceiverLeavesEarly is a receiver that takes the file and exits
// after asking for the next one, without acknowledging the end-of-batch
// block (as rb on a tty sometimes does): the next command must be
// answered at once, not after the sender's retries.
func TestDumpReceiverLeavesEarly(t *testing.T) {
	spec := startConsole(t, sim.Spec{})
	port := openConsole(t, spec)
	expect(t, port, "dump\r", "sending 20000 bytes with YMODEM\r\n", 10*time.Second)
	read := func(n int) []byte {
		t.Helper()
		b := make([]byte, n)
		port.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(port, b); err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		return b
	}
	write := func(b ...byte) {
		t.Helper()
		if _, err := port.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	var img []byte
	write('C')
	read(3 + 128 + 2) // header block 0
	write(0x06, 'C')
	eots := 0
	for eots < 2 {
		switch hdr := read(1)[0]; hdr {
		case 0x01, 0x02:
			n := 128
			if hdr == 0x02 {
				n = 1024
			}
			blk := read(2 + n + 2)
			img = append(img, blk[2:2+n]...)
			write(0x06)
		case 0x04:
			eots++
			if eots == 1 {
				write(0x15) // NAK the first EOT, as lrzsz does
			} else {
				write(0x06, 'C')
			}
		default:
			t.Fatalf("unexpected byte %#02x from the sender", hdr)
		}
	}
	if end := read(3 + 128 + 2); end[1] != 0 || bytes.Count(end[3:131], []byte{0}) != 128 {
		t.Fatalf("after the file: %x, want the all-NUL end-of-batch block 0", end)
	}
	left := time.Now() // the receiver leaves the end-of-batch block unanswered
	if want := sim.MakeImage(spec.HardwareID, spec.Version, 20000); len(img) < len(want) || !bytes.Equal(img[:len(want)], want) {
		t.Errorf("received %d bytes, want the factory image's %d first", len(img), len(want))
	}
	expect(t, port, "version\r", "version 1.0.0\r\n", time.Second)
	t.Logf("console answered %v after the receiver left", time.Since(left).Round(time.Millisecond))
}
