// SPDX-License-Identifier: Apache-2.0

package serialtest

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// relay connects two net.Pipe pairs through a Line and returns the outer
// ends.
func relay(t testing.TB, cfg Config) (a, b net.Conn, l *Line) {
	t.Helper()
	a, la := net.Pipe()
	b, lb := net.Pipe()
	l = Connect(la, lb, cfg)
	t.Cleanup(func() { l.Close(); a.Close(); b.Close() })
	return a, b, l
}

func TestLineFaults(t *testing.T) {
	in := bytes.Repeat([]byte("0123456789"), 10)
	tests := []struct {
		name string
		f    Faults
		want func([]byte) []byte
	}{
		{"clean", Faults{}, func(b []byte) []byte { return b }},
		{"drop every 10th", Faults{DropEvery: 10}, func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("9"), nil) }},
		{"corrupt every 10th", Faults{CorruptEvery: 10}, func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("9"), []byte{^byte('9')}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, _ := relay(t, Config{AtoB: tt.f})
			go a.Write(in)
			want := tt.want(bytes.Clone(in))
			got := make([]byte, len(want))
			b.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(b, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("line with %+v delivered %q, want %q", tt.f, got, want)
			}
		})
	}
}

func TestLineDisconnect(t *testing.T) {
	a, b, l := relay(t, Config{AtoB: Faults{DisconnectAfter: 5}})
	go a.Write([]byte("0123456789"))
	got, err := io.ReadAll(b)
	if string(got) != "0123" || err != nil {
		t.Fatalf("read through a line cut after 5 bytes = %q, %v; want \"0123\", EOF", got, err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done() not closed after the disconnect")
	}
}

func TestPTYRaw(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := p.OpenSlave()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Raw mode: CR, ^C and 0xFF pass unchanged and nothing is echoed.
	msg := []byte("a\r\n\x03\xff\x00z")
	if _, err := p.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("pty slave read %q, %v; want %q", got, err, msg)
	}
	p.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := p.Read(make([]byte, 16)); n != 0 {
		t.Errorf("pty echoed %d bytes, want none", n)
	}
}

// BenchmarkTurnaround: one byte there and one back over a 115200-baud Line,
// what an ACK-driven protocol waits for after each block. The line itself
// needs two byte times (174 µs); the rest is the relay's own latency, which
// a stop-and-wait benchmark pays on every block.
func BenchmarkTurnaround(b *testing.B) {
	const baud = 115200
	x, y, _ := relay(b, Config{Baud: baud})
	buf := make([]byte, 1)
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := x.Write([]byte{0x06}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(y, buf); err != nil {
			b.Fatal(err)
		}
		if _, err := y.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(x, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	line := 2 * 10 * time.Second / baud
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)/2])/float64(line), "x-line")
}
