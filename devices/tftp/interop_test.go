// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// Interop tests run our client and server against Debian's TFTP programs:
// tftpd-hpa (in.tftpd), atftpd, and the tftp-hpa and atftp clients. A
// missing program skips the test with the package to install, or fails it
// when CI=true.

// freePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// worldDir returns a temp dir the unprivileged TFTP daemons can write.
func worldDir(t testing.TB) string {
	t.Helper()
	// Not t.TempDir: its parent is private to root, and atftpd opens files
	// by path after dropping to nobody.
	dir, err := os.MkdirTemp("", "fieldgate-tftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startPeer runs cmd until the test ends and stops it by PID.
func startPeer(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
}

// waitServer waits until a TFTP server answers an RRQ on addr.
func waitServer(t testing.TB, addr string) {
	t.Helper()
	c := Client{Timeout: 50 * time.Millisecond, Retries: 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Get(context.Background(), addr, "fieldgate-probe-missing", io.Discard)
		var re *RemoteError
		if errors.As(err, &re) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("TFTP server on %s does not answer: %v", addr, err)
		}
	}
}

// startTFTPDHPA runs in.tftpd (tftpd-hpa) in the foreground on loopback,
// serving and accepting files in a fresh directory.
func startTFTPDHPA(t testing.TB) (addr, dir string) {
	t.Helper()
	bin := devicetest.NeedPeer(t, "in.tftpd", "tftpd-hpa")
	if os.Geteuid() != 0 {
		devicetest.Missing(t, "in.tftpd -u nobody needs root")
	}
	dir = worldDir(t)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	startPeer(t, exec.Command(bin, "-4", "-L", "-a", addr, "-c", "-s", "-u", "nobody", "-U", "000", dir))
	waitServer(t, addr)
	return addr, dir
}

var atftpdOnce struct {
	sync.Once
	libs sync.Once
	path string
	err  error
}

// atftpdPath finds atftpd: on PATH, in $FIELDGATE_ATFTPD, or unpacked from
// its Debian package into the user cache (atftpd conflicts with tftpd-hpa,
// so it is not installed; `apt-get download atftpd` fetches the .deb).
func atftpdPath(t testing.TB) string {
	t.Helper()
	atftpdOnce.Do(func() {
		if p, err := exec.LookPath("atftpd"); err == nil {
			atftpdOnce.path = p
			return
		}
		if p := os.Getenv("FIELDGATE_ATFTPD"); p != "" {
			atftpdOnce.path = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			atftpdOnce.err = err
			return
		}
		root := filepath.Join(cache, "fieldgate-interop", "atftpd")
		bin := filepath.Join(root, "usr", "sbin", "atftpd")
		if _, err := os.Stat(bin); err == nil {
			atftpdOnce.path = bin
			return
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			atftpdOnce.err = err
			return
		}
		dl := exec.Command("apt-get", "download", "atftpd")
		dl.Dir = root
		if out, err := dl.CombinedOutput(); err != nil {
			atftpdOnce.err = fmt.Errorf("apt-get download atftpd: %v: %s", err, out)
			return
		}
		debs, _ := filepath.Glob(filepath.Join(root, "atftpd_*.deb"))
		if len(debs) == 0 {
			atftpdOnce.err = errors.New("apt-get download atftpd left no .deb")
			return
		}
		if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
			atftpdOnce.err = fmt.Errorf("dpkg-deb -x: %v: %s", err, out)
			return
		}
		atftpdOnce.path = bin
	})
	atftpdOnce.libs.Do(func() {
		// An unpacked .deb brings no dependencies: a binary that cannot
		// load them is a missing peer, not a failing test.
		if atftpdOnce.err != nil || atftpdOnce.path == "" {
			return
		}
		out, err := exec.Command("ldd", atftpdOnce.path).CombinedOutput()
		if err != nil {
			return // ldd unavailable: starting atftpd will tell
		}
		var missing []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "not found") {
				missing = append(missing, strings.TrimSpace(l))
			}
		}
		if len(missing) > 0 {
			atftpdOnce.err = fmt.Errorf("%s cannot load %s", atftpdOnce.path, strings.Join(missing, ", "))
		}
	})
	if atftpdOnce.err != nil || atftpdOnce.path == "" {
		devicetest.Missing(t, fmt.Sprintf("atftpd unavailable (%v): run `apt-get download atftpd && dpkg-deb -x atftpd_*.deb DIR` and set FIELDGATE_ATFTPD=DIR/usr/sbin/atftpd (needs libwrap0, libpcre2-8-0)", atftpdOnce.err))
	}
	return atftpdOnce.path
}

// startATFTPD runs atftpd in the foreground on loopback.
func startATFTPD(t testing.TB) (addr, dir string) {
	t.Helper()
	bin := atftpdPath(t)
	if os.Geteuid() != 0 {
		devicetest.Missing(t, "atftpd --user nobody needs root")
	}
	dir = worldDir(t)
	port := freePort(t)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	startPeer(t, exec.Command(bin, "--daemon", "--no-fork", "--port", strconv.Itoa(port),
		"--bind-address", "127.0.0.1", "--user", "nobody", "--group", "nogroup", "--logfile", "-", dir))
	waitServer(t, addr)
	return addr, dir
}

func TestInteropClientToServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tftpd-hpa and atftpd and pushes megabytes to each: takes seconds, run without -short")
	}
	servers := []struct {
		name  string
		start func(testing.TB) (string, string)
	}{
		{"tftpd-hpa", startTFTPDHPA},
		{"atftpd", startATFTPD},
	}
	clients := []struct {
		name string
		c    Client
		size int
	}{
		{"lockstep", Client{}, 100_000},
		{"blksize 1428 window 8", Client{Blksize: 1428, Windowsize: 8}, 2_000_003},
		{"exact multiple", Client{Blksize: 1024, Windowsize: 4}, 64 * 1024},
		{"empty", Client{}, 0},
		// Block numbers roll over past 65535; atftpd wants blksize ≥ ~41 for the OACK; only with a window, as 65536
		// lockstep round trips take seconds.
		{"rollover", Client{Blksize: 48, Windowsize: 32}, 48*65536 + 100},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			addr, dir := srv.start(t)
			for _, cl := range clients {
				t.Run(cl.name, func(t *testing.T) {
					if cl.c.Windowsize > 1 && srv.name == "tftpd-hpa" && cl.name == "rollover" {
						t.Skip("tftpd-hpa ignores windowsize; a lockstep rollover takes too long")
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					data := payload(cl.size)
					name := strings.ReplaceAll(cl.name, " ", "-") + ".bin"
					// Both daemons only overwrite existing files (-c creates).
					if err := cl.c.Put(ctx, addr, name, bytes.NewReader(data), int64(len(data)), nil); err != nil {
						t.Fatalf("Put() = %v", err)
					}
					got, err := settledFile(filepath.Join(dir, name), len(data))
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s stored %d bytes (%v), want %d equal bytes", srv.name, len(got), err, len(data))
					}
					var buf bytes.Buffer
					n, err := cl.c.Get(ctx, addr, name, &buf)
					if err != nil || !bytes.Equal(buf.Bytes(), data) {
						t.Fatalf("Get() = %d, %v; want %d equal bytes", n, err, len(data))
					}
				})
			}
			t.Run("missing file", func(t *testing.T) {
				_, err := (&Client{}).Get(context.Background(), addr, "no-such-file", io.Discard)
				var re *RemoteError
				if !errors.As(err, &re) || re.Code != ErrCodeNotFound {
					t.Fatalf("Get(missing) = %v, want RemoteError code 1", err)
				}
			})
		})
	}
}

// TestInteropWindowsizeNegotiated checks that atftpd agrees to windowsize
// (tftpd-hpa ignores it) by observing our session's negotiated parameters.
func TestInteropWindowsizeNegotiated(t *testing.T) {
	addr, _ := startATFTPD(t)
	ctx := context.Background()
	server, pc, err := (&Client{}).dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := newSession(ctx, pc, netip.AddrPort{}, time.Second, 3, discard())
	defer s.close()
	opts := []option{{"blksize", "1428"}, {"windowsize", "8"}, {"tsize", "3"}}
	p, err := (&Client{}).request(s, server, appendRequest(nil, opWRQ, "win.bin", "octet", opts))
	if err != nil {
		t.Fatal(err)
	}
	if p.op != opOACK {
		t.Fatalf("answer to WRQ with options = opcode %d, want OACK", p.op)
	}
	if err := s.accept(opts, p.opts); err != nil {
		t.Fatal(err)
	}
	if s.p.windowsize != 8 || s.p.blksize != 1428 {
		t.Fatalf("atftpd negotiated blksize %d windowsize %d, want 1428 and 8", s.p.blksize, s.p.windowsize)
	}
	if _, err := s.send(strings.NewReader("abc"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestInteropServerToClients serves a file with our read-only Server to the
// tftp-hpa and atftp clients (atftp sends "tsize enable"-style options and
// windowsize), and accepts a WRQ from each into a write handler.
func TestInteropServerToClients(t *testing.T) {
	data := payload(1_500_001)
	m := &memFS{files: map[string][]byte{"fw.bin": data}}
	addr := serve(t, m.server())
	host, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		prog, pkg string
		get       func(dir string) []string
		put       func(dir string) []string
	}{
		{"tftp", "tftp-hpa",
			func(dir string) []string {
				return []string{"-m", "binary", host, port, "-c", "get", "fw.bin", filepath.Join(dir, "got")}
			},
			func(dir string) []string {
				return []string{"-m", "binary", host, port, "-c", "put", filepath.Join(dir, "got"), "put-hpa.bin"}
			}},
		{"atftp", "atftp",
			func(dir string) []string {
				return []string{"--option", "tsize enable", "--option", "blksize 1428", "--option", "windowsize 8",
					"--get", "-r", "fw.bin", "-l", filepath.Join(dir, "got"), host, port}
			},
			func(dir string) []string {
				return []string{"--option", "blksize 1428", "--option", "windowsize 8",
					"--put", "-l", filepath.Join(dir, "got"), "-r", "put-atftp.bin", host, port}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.prog, func(t *testing.T) {
			bin := devicetest.NeedPeer(t, tt.prog, tt.pkg)
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if out, err := exec.CommandContext(ctx, bin, tt.get(dir)...).CombinedOutput(); err != nil {
				t.Fatalf("%s get: %v: %s", tt.prog, err, out)
			}
			got, err := os.ReadFile(filepath.Join(dir, "got"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s got %d bytes (%v), want %d equal bytes", tt.prog, len(got), err, len(data))
			}
			if out, err := exec.CommandContext(ctx, bin, tt.put(dir)...).CombinedOutput(); err != nil {
				t.Fatalf("%s put: %v: %s", tt.prog, err, out)
			}
			name := tt.put(dir)[len(tt.put(dir))-1]
			if tt.prog == "atftp" {
				name = "put-atftp.bin"
			}
			if b, _ := m.get(name); !bytes.Equal(b, data) {
				t.Fatalf("server stored %d bytes from %s put, want %d equal bytes", len(b), tt.prog, len(data))
			}
		})
	}
}

// settledFile reads path once it has size bytes: the daemons acknowledge the
// last block before their buffered write reaches the file.
func settledFile(path string, size int) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if (err == nil && len(b) >= size) || time.Now().After(deadline) {
			return b, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
