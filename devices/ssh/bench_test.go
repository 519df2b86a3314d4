// SPDX-License-Identifier: Apache-2.0

package ssh

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/sftp"

	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// BenchmarkSFTP64MiB uploads 64 MiB to openssh-server on loopback: our
// SFTP upload alone, our whole Transfer (upload, posix-rename, remote
// sha256sum), and the OpenSSH sftp command's put.
func BenchmarkSFTP64MiB(b *testing.B) {
	s := startSSHD(b)
	img, data := testImage("2.0.0", 64<<20)
	cfg := s.config(nil)
	d := open(b, cfg)
	ctx := context.Background()

	b.Run("fieldgate-upload", func(b *testing.B) {
		cl, err := d.connect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sc, err := sftp.NewClient(cl, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
		if err != nil {
			b.Fatal(err)
		}
		defer sc.Close()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := upload(sc, filepath.Join(cfg.Options["remote_dir"], "up.bin"), bytes.NewReader(data), int64(len(data)), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fieldgate-transfer", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := d.Transfer(ctx, img, bytes.NewReader(data), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("openssh-sftp", func(b *testing.B) {
		bin := devicetest.NeedPeer(b, "sftp", "openssh-client")
		src := filepath.Join(b.TempDir(), "img")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			b.Fatal(err)
		}
		known := filepath.Join(b.TempDir(), "known_hosts")
		host, port, _ := strings.Cut(s.addr, ":")
		if err := os.WriteFile(known, []byte(fmt.Sprintf("[%s]:%s %s\n", host, port, s.hostPub)), 0o600); err != nil {
			b.Fatal(err)
		}
		args := []string{"-q", "-i", s.keyFile, "-P", port, "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-b", "-", "root@" + host}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			cmd := exec.Command(bin, args...)
			cmd.Stdin = strings.NewReader(fmt.Sprintf("put %s %s\n", src, filepath.Join(cfg.Options["remote_dir"], "sftp.bin")))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("sftp: %v: %s", err, out)
			}
		}
	})
}
