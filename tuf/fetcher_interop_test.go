// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// nginxLogFormat is one access log line: method, path, status, bytes sent
// (headers and body) and the validators the request carried.
const nginxLogFormat = `$request_method $uri $status $bytes_sent "$http_if_none_match" "$http_if_modified_since"`

// nginxRepo serves a repository directory with Debian's nginx and its
// default static serving (ETag, Last-Modified, Range), logging every
// request in nginxLogFormat.
type nginxRepo struct {
	url  string // base URL: …/metadata and …/targets below it
	log  string // access log
	seen int    // log lines already returned by next
}

func startNginx(t *testing.T, root string) *nginxRepo {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx" // not on a non-root PATH
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("nginx not found: install the Debian package nginx")
			}
			t.Skip("nginx not found: install the Debian package nginx")
		}
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the test's directories are private to it
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 64; }
http {
	log_format fg '%[3]s';
	access_log %[2]s/access.log fg;
	client_body_temp_path %[2]s/tmp;
	proxy_temp_path %[2]s/tmp;
	fastcgi_temp_path %[2]s/tmp;
	uwsgi_temp_path %[2]s/tmp;
	scgi_temp_path %[2]s/tmp;
	server {
		listen %[4]s;
		root %[5]s;
	}
}
`, user, dir, nginxLogFormat, addr, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-g", "daemon off;")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx does not listen on %s: %s%s", addr, out, errLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &nginxRepo{url: "http://" + addr, log: filepath.Join(dir, "access.log")}
}

// next returns the access log lines written since the last call.
func (n *nginxRepo) next(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan(); i++ {
		if i >= n.seen {
			lines = append(lines, sc.Text())
		}
	}
	n.seen += len(lines)
	return lines
}

// bytesSent sums the $bytes_sent field of access log lines.
func bytesSent(t *testing.T, lines []string) int {
	t.Helper()
	sum := 0
	for _, l := range lines {
		f := strings.Fields(l)
		n, err := strconv.Atoi(f[3])
		if err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		sum += n
	}
	return sum
}

// TestInteropIdleRefreshNginx: against a repository served by nginx, an
// idle refresh costs the next root's probe (404) and one conditional
// request for timestamp.json answered 304, nothing else; a new timestamp is
// fetched (200) at the next refresh. The figures for an idle refresh before
// (a gateway just started, which knows no validators) and after are logged.
func TestInteropIdleRefreshNginx(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish("fw/a.bin", []byte("firmware a"), tuftest.Meta("hw", "1.0.0", 1))
	ng := startNginx(t, filepath.Join(repo.Dir, "repository"))
	// timestamp.json as a gateway usually finds it: signed a while ago
	// (validators of a file modified within racyWindow are not used).
	tsPath := filepath.Join(repo.Dir, "repository", "metadata", "timestamp.json")
	age := func(d time.Duration) {
		t.Helper()
		mtime := time.Now().Add(-d)
		if err := os.Chtimes(tsPath, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	age(time.Minute)
	metadataDir := filepath.Join(t.TempDir(), "metadata")
	client := func() *tuf.Client {
		return repo.Client(t, func(c *tuf.Config) {
			c.MetadataURL, c.TargetsURL, c.MetadataDir = ng.url+"/metadata", ng.url+"/targets", metadataDir
		})
	}
	refresh := func(c *tuf.Client) *tuf.Snapshot {
		t.Helper()
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		ok := len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = strings.HasPrefix(got[i], want[i])
		}
		// Every timestamp.json request after the first carries the
		// validators (If-None-Match is the field after $bytes_sent).
		for i := 0; ok && i < len(want); i++ {
			if strings.Contains(want[i], "timestamp.json") {
				ok = strings.Fields(got[i])[4] != `"-"`
			}
		}
		if !ok {
			t.Fatalf("%s: nginx logged\n\t%s\nwant lines starting with\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}

	c := client()
	snap := refresh(c)
	ts := snap.Versions["timestamp"]
	next := fmt.Sprintf("GET /metadata/%d.root.json 404 ", snap.Versions["root"]+1)
	if n := len(ng.next(t)); n < 4 {
		t.Fatalf("first refresh: %d requests, want the whole chain", n)
	}

	// Before: a gateway that knows no validators (as after a start) pays
	// the whole timestamp.json.
	refresh(client())
	before := ng.next(t)
	if len(before) != 2 || !strings.HasPrefix(before[0], next) || !strings.HasPrefix(before[1], "GET /metadata/timestamp.json 200 ") || !strings.HasSuffix(before[1], `"-" "-"`) {
		t.Fatalf("idle refresh of a new client: nginx logged\n\t%s\nwant %s…, then a plain GET of timestamp.json answered 200", strings.Join(before, "\n\t"), next)
	}

	// After: the probe and a conditional request answered 304.
	for i := range 2 {
		snap = refresh(c)
		after := ng.next(t)
		check(fmt.Sprintf("idle refresh %d", i+1), after, next, `GET /metadata/timestamp.json 304 `)
		if snap.Versions["timestamp"] != ts {
			t.Fatalf("idle refresh: timestamp version %d, want %d", snap.Versions["timestamp"], ts)
		}
		if i == 0 {
			t.Logf("idle refresh before: %d requests, %d bytes sent (%s); after: %d requests, %d bytes sent (%s)",
				len(before), bytesSent(t, before), strings.Join(before, "; "), len(after), bytesSent(t, after), strings.Join(after, "; "))
		}
	}

	// A new timestamp: 200 and the new version, then idle again.
	repo.Timestamp()
	age(30 * time.Second)
	snap = refresh(c)
	check("refresh after a new timestamp", ng.next(t), next, `GET /metadata/timestamp.json 200 `)
	if snap.Versions["timestamp"] != ts+1 {
		t.Fatalf("refresh after a new timestamp: version %d, want %d", snap.Versions["timestamp"], ts+1)
	}
	snap = refresh(c)
	check("idle refresh after the new timestamp", ng.next(t), next, `GET /metadata/timestamp.json 304 `)
	if snap.Versions["timestamp"] != ts+1 {
		t.Fatalf("idle refresh after a new timestamp: version %d, want %d", snap.Versions["timestamp"], ts+1)
	}
}
