// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// BenchmarkPut8MiBATFTPD pushes 8 MiB to atftpd on loopback: our client in
// lockstep and with blksize 1428 + windowsize 8, against the atftp client
// with the same options.
func BenchmarkPut8MiBATFTPD(b *testing.B) {
	addr, _ := startATFTPD(b)
	data := payload(8 << 20)
	src := filepath.Join(b.TempDir(), "img")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	host, port := "127.0.0.1", addr[len("127.0.0.1:"):]
	for _, tt := range []struct {
		name string
		c    Client
		opts []string
	}{
		{"lockstep", Client{}, nil},
		{"blksize1428-window8", Client{Blksize: 1428, Windowsize: 8}, []string{"--option", "blksize 1428", "--option", "windowsize 8"}},
	} {
		b.Run("fieldgate/"+tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := tt.c.Put(context.Background(), addr, "bench.bin", bytes.NewReader(data), int64(len(data)), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("atftp/"+tt.name, func(b *testing.B) {
			bin := devicetest.NeedPeer(b, "atftp", "atftp")
			args := append(append([]string{}, tt.opts...), "--put", "-l", src, "-r", "bench.bin", host, port)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
					b.Fatalf("atftp: %v: %s", err, out)
				}
			}
		})
	}
}
