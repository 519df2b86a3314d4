// SPDX-License-Identifier: Apache-2.0

package smp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/sim"
)

// benchBytes is the image payload size: 64 KiB by default (a 115200-baud
// upload of it takes about 8 s), FIELDGATE_SMP_BENCH_BYTES=1048576 for the
// 1 MiB figure.
func benchBytes(b *testing.B) int {
	if s := os.Getenv("FIELDGATE_SMP_BENCH_BYTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("FIELDGATE_SMP_BENCH_BYTES=%q: want a positive integer", s)
		}
		return n
	}
	return 64 << 10
}

// BenchmarkUpload measures Transfer (params, resumable upload, image list)
// to the simulated device with buf_size 2475 (Zephyr's smp_svr serial
// overlay). For serial lines it reports, besides throughput:
//
//	floor%  the wire floor (every console byte the exchange needed, both
//	        directions, at 10 bits per byte) as a share of the time taken:
//	        100% is all the framing allows in lockstep;
//	raw%    the image bytes alone at line rate, as a share of the time taken;
//	image-B/s  image bytes per second (MB/s rounds to 0.01 at 115200).
func BenchmarkUpload(b *testing.B) {
	size := benchBytes(b)
	for _, tt := range []struct {
		name string
		kind string
		baud int
	}{
		{"udp", sim.KindSMPUDP, 0},
		{"serial-115200", sim.KindSMPSerial, 115200},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r := startSimBaud(b, tt.kind, tt.baud, nil, nil)
			r.stop()
			r.spec.Options = map[string]string{"buf_size": "2475", "slot_size": strconv.Itoa(size + 4096)}
			r.drv = nil
			r.restart(b)
			r.drv.Close()
			r.drv = openDriver(b, tt.kind, r.addr, map[string]string{"timeout": "2s"})
			var wire int64
			var took time.Duration
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				img, meta := newImage(b, fmt.Sprintf("1.1.%d", i), size)
				rx0, tx0 := r.dev.Traffic()
				start := time.Now()
				if err := r.drv.Transfer(context.Background(), meta, bytes.NewReader(img), nil); err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				rx, tx := r.dev.Traffic()
				wire += rx - rx0 + tx - tx0
			}
			if tt.baud > 0 {
				perByte := 10 * time.Second / time.Duration(tt.baud)
				floor := time.Duration(wire) * perByte
				raw := time.Duration(int64(size)*int64(b.N)) * perByte
				b.ReportMetric(100*floor.Seconds()/took.Seconds(), "floor%")
				b.ReportMetric(100*raw.Seconds()/took.Seconds(), "raw%")
				b.ReportMetric(float64(int64(size)*int64(b.N))/took.Seconds(), "image-B/s")
			}
		})
	}
}
