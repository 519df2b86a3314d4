// SPDX-License-Identifier: Apache-2.0

package modbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/modbus"
)

// Transfer throughput: our driver's Transfer (0x15 stream, every chunk
// echoed, then verify_readback=none and the device CRC) against our
// simulator and against the pymodbus device, and pymodbus's client
// streaming the same image with 0x15 into our simulator. RTU runs through
// the serialtest line emulator at 115200 baud 8N1, where every 244-byte
// chunk costs a 256-byte request and a 256-byte echo: the wire floor is
// 512·10/115200 s per 244 bytes, 5.49 KB/s of image.

func benchTransfer(b *testing.B, d *modbus.Device, size int) {
	img, data := image("2.0.0", size)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := d.Transfer(ctx, img, bytes.NewReader(data), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/time.Since(start).Seconds()/1000, "kB/s")
}

func BenchmarkTransferTCPToSim(b *testing.B) {
	s := startSim(b, "modbus-tcp", "", 0, map[string]string{"verify_readback": "none"})
	benchTransfer(b, s.dev, 1<<20)
}

func BenchmarkTransferTCPToPymodbus(b *testing.B) {
	needPymodbus(b, false)
	p := startPeer(b, "--tcp", "0")
	d := openDriver(b, "modbus-tcp", fmt.Sprintf("127.0.0.1:%d", p.port), 0, map[string]string{"verify_readback": "none"})
	benchTransfer(b, d, 1<<20)
}

func BenchmarkTransferRTU115200ToSim(b *testing.B) {
	s := startSim(b, "modbus-rtu", "", 115200, map[string]string{"verify_readback": "none", "timeout": "1s"})
	benchTransfer(b, s.dev, 16<<10)
}

func BenchmarkTransferRTU115200ToPymodbus(b *testing.B) {
	needPymodbus(b, true)
	line := newLine(b, 115200)
	startPeer(b, "--rtu", line.A.Path, "--baud", "115200")
	d := openDriver(b, "modbus-rtu", line.B.Path, 115200, map[string]string{"verify_readback": "none", "timeout": "1s"})
	benchTransfer(b, d, 16<<10)
}

// benchPymodbusPush times pymodbus's client writing the image with 0x15
// (its own clock, so interpreter start-up is not counted).
func benchPymodbusPush(b *testing.B, rtu bool, addr string, size int) {
	needPymodbus(b, rtu)
	_, data := image("2.0.0", size)
	file := filepath.Join(b.TempDir(), "fw.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"testdata/pymodbus_peer.py", "client", "--push", file, "--tcp", addr}
	if rtu {
		args = []string{"testdata/pymodbus_peer.py", "client", "--push", file, "--rtu", addr, "--baud", "115200"}
	}
	b.SetBytes(int64(size))
	var secs float64
	for range b.N {
		out, err := exec.Command(debianPython, args...).Output()
		if err != nil {
			b.Fatalf("pymodbus push: %v", err)
		}
		var r struct{ Seconds float64 }
		if err := json.Unmarshal(out, &r); err != nil {
			b.Fatalf("pymodbus push said %q: %v", out, err)
		}
		secs += r.Seconds
	}
	b.ReportMetric(float64(size)*float64(b.N)/secs/1000, "kB/s")
	b.ReportMetric(secs/float64(b.N), "peer-s/op")
}

func BenchmarkPymodbusClientTCPToSim(b *testing.B) {
	s := startSim(b, "modbus-tcp", "", 0, nil)
	benchPymodbusPush(b, false, s.cfg.Address, 1<<20)
}

func BenchmarkPymodbusClientRTU115200ToSim(b *testing.B) {
	s := startSim(b, "modbus-rtu", "", 115200, nil)
	benchPymodbusPush(b, true, s.cfg.Address, 16<<10)
}
