// SPDX-License-Identifier: Apache-2.0

package xmodem_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/devices/serialtest"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// needPeer returns the path of an lrzsz tool (sx, rx), or skips the test
// (fails it under CI=true); see devicetest.NeedPeer.
func needPeer(t testing.TB, name string) string {
	t.Helper()
	return devicetest.NeedPeer(t, name, "lrzsz")
}

// peer is an lrzsz process on a line: the test talks to it through Port,
// a pty whose master is relayed to the process's stdin/stdout at baud.
type peer struct {
	Port   *os.File
	cmd    *exec.Cmd
	stderr bytes.Buffer
	line   *serialtest.Line
}

func startPeer(t testing.TB, dir string, baud int, name string, args ...string) *peer {
	t.Helper()
	pt, err := serialtest.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	port, err := pt.OpenSlave()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{Port: port}
	p.cmd = exec.Command(needPeer(t, name), args...)
	p.cmd.Dir = dir
	p.cmd.Stderr = &p.stderr
	end, err := serialtest.StartProcess(p.cmd)
	if err != nil {
		t.Fatal(err)
	}
	p.line = serialtest.Connect(pt, end, serialtest.Config{Baud: baud})
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.line.Close()
		port.Close()
		pt.Close()
	})
	return p
}

// wait waits for the peer to exit on its own.
func (p *peer) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-done
		return errors.New("peer did not exit in time")
	}
}

func payload(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var interopSizes = []int{1, 1000, 65536 - 100}

// TestInteropSendToRx: our XMODEM-1K sender into lrzsz `rx -c` through a
// 115200-baud line.
func TestInteropSendToRx(t *testing.T) {
	if testing.Short() {
		t.Skip("lrzsz over a 115200-baud pty: line-paced, run without -short")
	}
	for _, size := range interopSizes {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := startPeer(t, dir, 115200, "rx", "-c", "-q", "out.bin")
			data := payload(size)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := xmodem.Send(ctx, p.Port, bytes.NewReader(data), int64(len(data)), xmodem.Options{})
			if err != nil {
				t.Fatalf("Send(%d bytes) to rx = %v (rx: %s)", size, err, p.stderr.String())
			}
			if err := p.wait(t, 10*time.Second); err != nil {
				t.Fatalf("rx exit: %v (%s)", err, p.stderr.String())
			}
			got, err := os.ReadFile(filepath.Join(dir, "out.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < size || !bytes.Equal(got[:size], data) || len(bytes.Trim(got[size:], "\x1a")) != 0 {
				t.Fatalf("rx wrote %d bytes, want our %d bytes plus 0x1A padding", len(got), size)
			}
		})
	}
}

// TestInteropSendToRb: our YMODEM sender into lrzsz `rb`.
func TestInteropSendToRb(t *testing.T) {
	if testing.Short() {
		t.Skip("lrzsz over a 115200-baud pty: line-paced, run without -short")
	}
	for _, size := range interopSizes {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := startPeer(t, dir, 115200, "rb", "-b", "-q")
			data := payload(size)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := xmodem.SendYMODEM(ctx, p.Port, "fw.bin", bytes.NewReader(data), int64(len(data)), xmodem.Options{})
			if err != nil {
				t.Fatalf("SendYMODEM(%d bytes) to rb = %v (rb: %s)", size, err, p.stderr.String())
			}
			if err := p.wait(t, 10*time.Second); err != nil {
				t.Fatalf("rb exit: %v (%s)", err, p.stderr.String())
			}
			got, err := os.ReadFile(filepath.Join(dir, "fw.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("rb wrote %d bytes, want exactly our %d", len(got), size)
			}
		})
	}
}

// TestInteropReceiveFromSx and FromSb: lrzsz as the sender into our
// receiver.
func TestInteropReceiveFromSx(t *testing.T) {
	if testing.Short() {
		t.Skip("lrzsz over a 115200-baud pty: line-paced, run without -short")
	}
	for _, ymodem := range []bool{false, true} {
		name, args := "sx", []string{"-k", "-q", "in.bin"}
		if ymodem {
			name, args = "sb", []string{"-k", "-q", "in.bin"}
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := payload(20000)
			if err := os.WriteFile(filepath.Join(dir, "in.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			p := startPeer(t, dir, 115200, name, args...)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var got bytes.Buffer
			var err error
			if ymodem {
				var info xmodem.FileInfo
				info, err = xmodem.ReceiveYMODEM(ctx, p.Port, &got, xmodem.Options{})
				if err == nil && (info.Name != "in.bin" || info.Size != int64(len(data))) {
					t.Errorf("ReceiveYMODEM() info = %+v, want in.bin, %d", info, len(data))
				}
			} else {
				_, err = xmodem.Receive(ctx, p.Port, &got, xmodem.Options{})
			}
			if err != nil {
				t.Fatalf("receive from %s = %v (%s)", name, err, p.stderr.String())
			}
			if err := p.wait(t, 10*time.Second); err != nil {
				t.Fatalf("%s exit: %v (%s)", name, err, p.stderr.String())
			}
			b := got.Bytes()
			if len(b) < len(data) || !bytes.Equal(b[:len(data)], data) || (ymodem && len(b) != len(data)) {
				t.Fatalf("received %d bytes, want %s's %d", len(b), name, len(data))
			}
		})
	}
}

// TestInteropSxIntoSimDevice: lrzsz `sx -k` and `sb -k` update our
// simulated console device, which then boots the new image.
func TestInteropSxIntoSimDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("lrzsz over a 115200-baud pty: line-paced, run without -short")
	}
	for _, tt := range []struct{ tool, cmd string }{{"sx", "update"}, {"sb", "yupdate"}} {
		t.Run(tt.tool, func(t *testing.T) {
			t.Parallel()
			needPeer(t, tt.tool)
			spec := startSim(t, sim.Spec{Baud: 115200})
			dir := t.TempDir()
			img := sim.MakeImage(spec.HardwareID, "4.0.0", 30000)
			if err := os.WriteFile(filepath.Join(dir, "fw.bin"), img, 0o644); err != nil {
				t.Fatal(err)
			}
			port, err := os.OpenFile(spec.Address, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer port.Close()
			if err := serialtest.MakeRaw(port); err != nil {
				t.Fatal(err)
			}
			expect(t, port, "", "> ")
			expect(t, port, tt.cmd+"\r", "ready for")
			cmd := exec.Command(needPeer(t, tt.tool), "-k", "-q", "fw.bin")
			cmd.Dir = dir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			end, err := serialtest.StartProcess(cmd)
			if err != nil {
				t.Fatal(err)
			}
			port.SetReadDeadline(time.Time{})
			start := time.Now()
			line := serialtest.Connect(serialtest.Borrow(port), end, serialtest.Config{})
			waitErr := make(chan error, 1)
			go func() { waitErr <- cmd.Wait() }()
			select {
			case err := <-waitErr:
				if err != nil {
					t.Fatalf("%s: %v (%s)", tt.tool, err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%s did not finish", tt.tool)
			}
			t.Logf("%s: 30000 bytes in %v", tt.tool, time.Since(start))
			line.Close()
			expect(t, port, "", "update ok: 30000 bytes")
			expect(t, port, "reset\r", "booting 4.0.0")
			expect(t, port, "version\r", "version 4.0.0")
		})
	}
}

// expect writes send and reads until want appears.
func expect(t *testing.T, port *os.File, send, want string) {
	t.Helper()
	if send != "" {
		if _, err := port.WriteString(send); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Contains(got, []byte(want)) {
		port.SetReadDeadline(deadline)
		n, err := port.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %q: read %q, want %q: %v", send, got, want, err)
		}
	}
}
