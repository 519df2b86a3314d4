package xmodem_test

import (
	"bytes"
	"context"
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
// emulated 115200-baud line.
func BenchmarkSendToRx(b *testing.B) {
	n := benchBytes(b)
	data := payload(n)
	var total time.Duration
	for b.Loop() {
		p := startPeer(b, b.TempDir(), benchBaud, "rx", "-c", "-q", "out.bin")
		start := time.Now()
		if err := xmodem.Send(context.Background(), p.Port, bytes.NewReader(data), int64(n), xmodem.Options{}); err != nil {
			b.Fatalf("Send() = %v (%s)", err, p.stderr.String())
		}
		total += time.Since(start)
		if err := p.wait(b, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	report(b, n, total)
}

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
		rx := exec.Command(needPeer(b, "rx"), "-c", "-q", "out.bin")
		rx.Dir = dir
		sx := exec.Command(needPeer(b, "sx"), "-k", "-q", "in.bin")
		sx.Dir = dir
		rxEnd, err := serialtest.StartProcess(rx)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		sxEnd, err := serialtest.StartProcess(sx)
		if err != nil {
			b.Fatal(err)
		}
		line := serialtest.Connect(sxEnd, rxEnd, serialtest.Config{Baud: benchBaud})
		if err := sx.Wait(); err != nil {
			b.Fatalf("sx: %v", err)
		}
		total += time.Since(start)
		rx.Wait()
		line.Close()
	}
	report(b, n, total)
}
