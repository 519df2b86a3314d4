// SPDX-License-Identifier: Apache-2.0

package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// The interop tests run our SSH/SFTP path against Debian's openssh-server,
// started in the foreground on 127.0.0.1 with its own config, host key and
// authorized_keys in a temp dir, inside a private mount namespace (unshare
// -m, tmpfs on /run for /run/sshd) so nothing outside the temp dir is
// touched. The "device" is a set of shell scripts in the temp dir.

type sshd struct {
	addr    string
	dir     string // temp dir: keys, config, device state
	hostPub string // host key, authorized_keys format
	keyFile string // client private key
	cmd     *exec.Cmd
}

func keygen(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

// startSSHD runs sshd -D -e in a private mount namespace.
func startSSHD(t testing.TB) *sshd {
	t.Helper()
	bin := devicetest.NeedPeer(t, "sshd", "openssh-server")
	devicetest.NeedPeer(t, "unshare", "util-linux")
	devicetest.NeedPeer(t, "ssh-keygen", "openssh-client")
	if os.Geteuid() != 0 {
		devicetest.Missing(t, "sshd in a private mount namespace needs root")
	}
	s := &sshd{dir: t.TempDir()}
	keygen(t, filepath.Join(s.dir, "host_key"))
	s.keyFile = filepath.Join(s.dir, "client_key")
	keygen(t, s.keyFile)
	pub, _ := os.ReadFile(filepath.Join(s.dir, "host_key.pub"))
	s.hostPub = strings.TrimSpace(string(pub))
	cpub, _ := os.ReadFile(s.keyFile + ".pub")
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), cpub, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
`, port, s.dir, s.dir)
	if err := os.WriteFile(filepath.Join(s.dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec %s -D -e -f %s/sshd_config", bin, s.dir)
	s.cmd = exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		if t.Failed() {
			t.Logf("sshd output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd on %s does not accept: %v\n%s", s.addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.writeDevice(t)
	return s
}

// writeDevice installs the simulated Linux device: install.sh copies the
// image into place and records the version from its FGSIM1 header line,
// keeping the previous version for rollback.sh.
func (s *sshd) writeDevice(t testing.TB) {
	t.Helper()
	dev := filepath.Join(s.dir, "device")
	for _, d := range []string{dev, filepath.Join(dev, "upload")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"version": "1.0.0\n",
		"install.sh": `#!/bin/sh
set -e
d=$(dirname "$0")
head -c 6 "$1" | grep -q FGSIM1 || { echo "not a firmware image" >&2; exit 3; }
cp "$d/version" "$d/previous"
cp "$1" "$d/current.bin"
head -n 1 "$1" | sed 's/.* version=\([^ ]*\).*/\1/' > "$d/version"
`,
		"rollback.sh": `#!/bin/sh
d=$(dirname "$0")
cp "$d/previous" "$d/version"
`,
		// "Reboot": kill this connection's sshd process, as a reboot would.
		"reboot.sh": `#!/bin/sh
kill -9 $PPID
`,
		"badhash.sh": `#!/bin/sh
echo "0000000000000000000000000000000000000000000000000000000000000000  $2"
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dev, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *sshd) config(opts map[string]string) devices.Config {
	dev := filepath.Join(s.dir, "device")
	o := map[string]string{
		"host_key":         s.hostPub,
		"user":             "root",
		"key_file":         s.keyFile,
		"remote_dir":       filepath.Join(dev, "upload"),
		"install_command":  filepath.Join(dev, "install.sh") + " {file}",
		"version_command":  "cat " + filepath.Join(dev, "version"),
		"rollback_command": filepath.Join(dev, "rollback.sh"),
		"health_command":   "test -s " + filepath.Join(dev, "current.bin"),
		"connect_timeout":  "5s",
		"boot_timeout":     "20s",
		"poll_interval":    "50ms",
	}
	for k, v := range opts {
		o[k] = v
	}
	return devices.Config{ID: "hmi1", Protocol: "ssh", Address: s.addr, Options: o}
}

func testImage(version string, size int) (devices.Image, []byte) {
	hdr := fmt.Sprintf("FGSIM1 hw=hmi version=%s size=%d\n", version, size)
	b := make([]byte, size)
	_, _ = rand.Read(b)
	copy(b, hdr)
	sum := sha256.Sum256(b)
	return devices.Image{Name: "acme-hmi/" + version + "/hmi.img", Version: version, Size: int64(size), SHA256: hex.EncodeToString(sum[:])}, b
}

func open(t testing.TB, cfg devices.Config) *Device {
	t.Helper()
	if err := Driver().Check(cfg); err != nil {
		t.Fatal(err)
	}
	d, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestInteropSSHUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd and pushes images over SFTP: takes seconds, run without -short")
	}
	s := startSSHD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := open(t, s.config(map[string]string{"reboot_command": filepath.Join(s.dir, "device", "reboot.sh")}))
	if id, err := d.Identify(ctx); err != nil || id.Version != "1.0.0" {
		t.Fatalf("Identify() = %+v, %v; want 1.0.0", id, err)
	}
	img, b := testImage("2.0.0", 3<<20+7)
	var last int64
	if err := d.Transfer(ctx, img, bytes.NewReader(b), func(done, total int64) { last = done }); err != nil {
		t.Fatalf("Transfer() = %v", err)
	}
	if last != img.Size {
		t.Errorf("progress ended at %d, want %d", last, img.Size)
	}
	up := filepath.Join(s.dir, "device", "upload")
	if got, err := os.ReadFile(filepath.Join(up, "hmi.img")); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("device holds %d bytes (%v), want the image", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(up, "hmi.img.part")); !os.IsNotExist(err) {
		t.Errorf("hmi.img.part left behind: %v", err)
	}
	if err := d.Activate(ctx); err != nil {
		t.Fatalf("Activate() = %v", err)
	}
	if err := d.Health(ctx); err != nil {
		t.Fatalf("Health() = %v", err)
	}
	if id, err := d.Identify(ctx); err != nil || id.Version != "2.0.0" {
		t.Fatalf("Identify() after activate = %+v, %v; want 2.0.0", id, err)
	}
	if err := d.Revert(ctx); err != nil {
		t.Fatalf("Revert() = %v", err)
	}
	if id, err := d.Identify(ctx); err != nil || id.Version != "1.0.0" {
		t.Fatalf("Identify() after revert = %+v, %v; want 1.0.0", id, err)
	}
}

func TestInteropSSHBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd and pushes images over SFTP: takes seconds, run without -short")
	}
	s := startSSHD(t)
	other := filepath.Join(t.TempDir(), "other")
	keygen(t, other)
	otherPub, _ := os.ReadFile(other + ".pub")
	img, b := testImage("2.0.0", 100_000)
	tests := []struct {
		name    string
		opts    map[string]string
		img     devices.Image
		data    []byte
		step    string
		wantErr error
		wantMsg string
	}{
		{"host key mismatch", map[string]string{"host_key": string(otherPub)}, img, b, "transfer", ErrHostKeyMismatch, ""},
		{"device reports another hash", map[string]string{"hash_command": filepath.Join(s.dir, "device", "badhash.sh")}, img, b, "transfer", nil, "reports sha256 0000"},
		{"source differs from image hash", nil, img, append([]byte("x"), b[1:]...), "transfer", nil, "source gave"},
		{"installer refuses", nil, devices.Image{Name: "junk.img", Version: "9", Size: 4, SHA256: sha("junk")}, []byte("junk"), "activate", ErrCommand, "not a firmware image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d := open(t, s.config(tt.opts))
			err := d.Transfer(ctx, tt.img, bytes.NewReader(tt.data), nil)
			if tt.step == "activate" {
				if err != nil {
					t.Fatalf("Transfer() = %v", err)
				}
				err = d.Activate(ctx)
			}
			if err == nil || devices.IsTransient(err) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("%s = %v, want a permanent error (%v, %q)", tt.step, err, tt.wantErr, tt.wantMsg)
			}
			if ctx.Err() != nil {
				t.Fatal("returned only at the deadline")
			}
		})
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
