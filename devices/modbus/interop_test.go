// SPDX-License-Identifier: Apache-2.0

package modbus_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/devices/modbus"
	"github.com/fieldgate/fieldgate/devices/serialtest"
)

// debianPython is the interpreter that has Debian's python3-pymodbus; a
// pyenv or venv python3 earlier in PATH would not.
const debianPython = "/usr/bin/python3"

// needPymodbus skips (or, with CI=true, fails) unless Debian's pymodbus 3.0
// (and, for rtu, python3-serial-asyncio) can be imported.
func needPymodbus(t testing.TB, rtu bool) {
	t.Helper()
	code, pkg := "import pymodbus", "python3-pymodbus"
	if rtu {
		code, pkg = "import pymodbus, serial_asyncio", "python3-pymodbus python3-serial-asyncio"
	}
	if out, err := exec.Command(debianPython, "-c", code).CombinedOutput(); err != nil {
		devicetest.Missing(t, fmt.Sprintf("pymodbus peer unavailable (install the Debian packages %s): %v: %s", pkg, err, bytes.TrimSpace(out)))
	}
}

// peer is a running testdata/pymodbus_peer.py serve process.
type peer struct {
	port          int
	runningSHA256 string
}

// startPeer starts the pymodbus device and waits for its READY line; the
// test's cleanup kills it by PID.
func startPeer(t testing.TB, args ...string) peer {
	t.Helper()
	cmd := exec.Command(debianPython, append([]string{"testdata/pymodbus_peer.py", "serve", "--hw", testHW}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pymodbus peer (pid %d) stderr:\n%s", pid, stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	var ready string
	select {
	case ready = <-line:
	case <-time.After(30 * time.Second):
		t.Fatalf("pymodbus peer did not start; stderr:\n%s", stderr.String())
	}
	var p peer
	for _, f := range strings.Fields(ready) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "port":
			p.port, _ = strconv.Atoi(v)
		case "running_sha256":
			p.runningSHA256 = v
		}
	}
	if !strings.HasPrefix(ready, "READY") || p.runningSHA256 == "" {
		t.Fatalf("pymodbus peer said %q; stderr:\n%s", ready, stderr.String())
	}
	return p
}

func openDriver(t testing.TB, kind, addr string, baud int, opts map[string]string) *modbus.Device {
	t.Helper()
	o := map[string]string{"poll_interval": "20ms", "activate_timeout": "20s", "timeout": "2s"}
	for k, v := range opts {
		o[k] = v
	}
	cfg := devices.Config{ID: "peer", Protocol: kind, HardwareID: testHW, Address: addr, Baud: baud, Options: o}
	rtu := kind == "modbus-rtu"
	d, err := modbus.Open(cfg, rtu, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// exercise runs the whole update against a pymodbus device: identity,
// interlock, backup, transfer with read-back and device CRC, activation.
func exercise(t *testing.T, d *modbus.Device, p peer, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := d.Identify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := devices.Identity{Vendor: "pymodbus-peer", Model: testHW, HardwareID: testHW, Version: "1.0.0"}
	if id != want {
		t.Errorf("Identify = %+v, want %+v", id, want)
	}
	if running, err := d.Interlock(ctx); err != nil || running {
		t.Errorf("Interlock = %v, %v, want false, nil", running, err)
	}
	var backup bytes.Buffer
	if _, err := d.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(backup.Bytes()); hex.EncodeToString(sum[:]) != p.runningSHA256 {
		t.Errorf("Backup sha256 = %x, want %s", sum, p.runningSHA256)
	}

	img, b := image("2.0.0", size)
	var done int64
	if err := d.Transfer(ctx, img, bytes.NewReader(b), func(n, _ int64) { done = n }); err != nil {
		t.Fatal(err)
	}
	if done != img.Size {
		t.Errorf("progress ended at %d, want %d", done, img.Size)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := d.Identify(ctx); err != nil || id.Version != "2.0.0" {
		t.Errorf("Identify after Activate = %+v, %v, want version 2.0.0", id, err)
	}
	backup.Reset()
	if _, err := d.Backup(ctx, &backup); err != nil || !bytes.Equal(backup.Bytes(), b) {
		t.Errorf("Backup after Activate = %d bytes, %v, want the %d-byte new image", backup.Len(), err, len(b))
	}
}

func TestInteropPymodbusTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three pymodbus peers in python: takes seconds, run without -short")
	}
	needPymodbus(t, false)
	t.Run("update", func(t *testing.T) {
		p := startPeer(t, "--tcp", "0")
		d := openDriver(t, "modbus-tcp", fmt.Sprintf("127.0.0.1:%d", p.port), 0, map[string]string{"verify_readback": "full"})
		exercise(t, d, p, 45001)
	})
	t.Run("process running", func(t *testing.T) {
		p := startPeer(t, "--tcp", "0", "--process-running", "--unit", "9")
		d := openDriver(t, "modbus-tcp", fmt.Sprintf("127.0.0.1:%d", p.port), 0, map[string]string{"unit": "9"})
		if running, err := d.Interlock(context.Background()); err != nil || !running {
			t.Errorf("Interlock = %v, %v, want true, nil", running, err)
		}
	})
	t.Run("rejected image", func(t *testing.T) {
		p := startPeer(t, "--tcp", "0")
		d := openDriver(t, "modbus-tcp", fmt.Sprintf("127.0.0.1:%d", p.port), 0, nil)
		b := []byte("FGSIM1 hw=someone-else version=9 size=40\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
		err := d.Transfer(context.Background(), devices.Image{Name: "x", Size: int64(len(b))}, bytes.NewReader(b), nil)
		if err == nil || devices.IsTransient(err) {
			t.Errorf("Transfer of an image the device rejects = %v, want a permanent error", err)
		}
	})
}

func TestInteropPymodbusRTU(t *testing.T) {
	if testing.Short() {
		t.Skip("pymodbus over a 115200-baud pty: line-paced, run without -short")
	}
	needPymodbus(t, true)
	line := newLine(t, 115200)
	p := startPeer(t, "--rtu", line.A.Path, "--baud", "115200", "--size", "1000")
	d := openDriver(t, "modbus-rtu", line.B.Path, 115200, map[string]string{"timeout": "1s"})
	exercise(t, d, p, 6001) // ≈2 s at 115200 with every chunk echoed
}

// clientResult is what pymodbus_peer.py client prints.
type clientResult struct {
	Identity    map[string]string `json:"identity"`
	Registers   []uint16          `json:"registers"`
	RunningHead string            `json:"running_head"`
	ProbeBack   string            `json:"probe_back"`
}

// TestInteropPymodbusClient checks that the simulator speaks real Modbus:
// pymodbus's client reads its identity, registers and file records.
func TestInteropPymodbusClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pymodbus client in python, over TCP and a 115200-baud pty: takes seconds, run without -short")
	}
	for _, kind := range []string{"modbus-tcp", "modbus-rtu"} {
		t.Run(kind, func(t *testing.T) {
			needPymodbus(t, kind == "modbus-rtu")
			s := startSim(t, kind, "", 0, nil)
			args := []string{"testdata/pymodbus_peer.py", "client", "--tcp", s.cfg.Address}
			if kind == "modbus-rtu" {
				args = []string{"testdata/pymodbus_peer.py", "client", "--rtu", s.cfg.Address, "--baud", "115200"}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, debianPython, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("pymodbus client: %v\n%s", err, stderr.String())
			}
			var got clientResult
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("pymodbus client output %q: %v", out, err)
			}
			wantID := map[string]string{"0": "fieldgate", "1": testHW, "2": "1.0.0"}
			for k, v := range wantID {
				if got.Identity[k] != v {
					t.Errorf("pymodbus read identity object %s = %q, want %q", k, got.Identity[k], v)
				}
			}
			running := s.sim.Running()
			if len(got.Registers) != 12 || got.Registers[1] != 0 || int(got.Registers[4])<<16|int(got.Registers[5]) != len(running) {
				t.Errorf("pymodbus read registers 100..111 = %v, want status 0 and running length %d", got.Registers, len(running))
			}
			if want := hex.EncodeToString(running[:64]); got.RunningHead != want {
				t.Errorf("pymodbus read file 1001 = %s, want %s", got.RunningHead, want)
			}
			if want := "000102030405060708090a0b0c0d0e0f"; got.ProbeBack != want {
				t.Errorf("pymodbus wrote then read file 1 = %s, want %s", got.ProbeBack, want)
			}
		})
	}
}

func newLine(t testing.TB, baud int) *serialtest.Pair {
	t.Helper()
	line, err := serialtest.NewPair(serialtest.Config{Baud: baud})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { line.Close() })
	return line
}
