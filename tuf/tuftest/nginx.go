// SPDX-License-Identifier: Apache-2.0

package tuftest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxLogFormat is one access log line: the time of the request in
// seconds with millisecond resolution, method, path, status, bytes sent
// (headers and body) and the validators the request carried.
const nginxLogFormat = `$msec $request_method $uri $status $bytes_sent "$http_if_none_match" "$http_if_modified_since"`

// Nginx is a directory served by Debian's nginx with its default static
// serving (ETag, Last-Modified, Range, keep-alive), on a free loopback
// port, logging every request to an access log that Next and Requests
// read. It is what a gateway meets in front of a real repository, and the
// log is how the tests measure from outside what the gateways ask for.
//
// Next must be called from one goroutine at a time; URL and Log may be
// read concurrently.
type Nginx struct {
	URL string // base URL, http://127.0.0.1:port; …/metadata and …/targets below it for a repository
	Log string // the access log, one line per request in nginxLogFormat

	seen int // log lines already returned by Next
}

// Request is one access log line of Nginx.
type Request struct {
	At              time.Time // $msec: when nginx finished the request (millisecond resolution)
	Method, URI     string
	Status          int
	BytesSent       int    // headers and body
	IfNoneMatch     string // "-" if the request had none
	IfModifiedSince string // "-" if the request had none
}

// String is the line as logged without its time: `GET
// /metadata/timestamp.json 304 180 "\x226563…\x22" "Thu, …"`, for
// comparisons with a prefix.
func (r Request) String() string {
	return fmt.Sprintf(`%s %s %d %d "%s" "%s"`, r.Method, r.URI, r.Status, r.BytesSent, r.IfNoneMatch, r.IfModifiedSince)
}

// StartNginx serves root with nginx until the test ends. The test is
// skipped if nginx is not installed (or fails, with CI=true), naming the
// Debian package nginx. One worker serves up to 4096 connections, enough
// for a fleet of gateways that keep theirs open.
func StartNginx(t testing.TB, root string) *Nginx {
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
worker_rlimit_nofile 8192;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 4096; }
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // master and worker stop together
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT) // graceful: the log is complete
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
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
		time.Sleep(50 * time.Millisecond) // polling a port the peer opens; not a timing assertion
	}
	return &Nginx{URL: "http://" + addr, Log: filepath.Join(dir, "access.log")}
}

// Requests returns every request logged so far. nginx writes a line when
// the response has been sent.
func (n *Nginx) Requests(t testing.TB) []Request {
	t.Helper()
	f, err := os.Open(n.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var reqs []Request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := parseRequest(sc.Text())
		if err != nil {
			t.Fatalf("nginx access log %s: %v", n.Log, err)
		}
		reqs = append(reqs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("nginx access log %s: %v", n.Log, err)
	}
	return reqs
}

// Next returns the requests logged since its last call.
func (n *Nginx) Next(t testing.TB) []Request {
	t.Helper()
	all := n.Requests(t)
	reqs := all[min(n.seen, len(all)):]
	n.seen = len(all)
	return reqs
}

// parseRequest reads one line in nginxLogFormat.
func parseRequest(line string) (Request, error) {
	f := strings.SplitN(line, " ", 6)
	if len(f) != 6 {
		return Request{}, fmt.Errorf("line %q: want 7 fields", line)
	}
	ms, err1 := strconv.ParseFloat(f[0], 64)
	status, err2 := strconv.Atoi(f[3])
	sent, err3 := strconv.Atoi(f[4])
	inm, ims, ok := strings.Cut(f[5], `" "`)
	if err1 != nil || err2 != nil || err3 != nil || !ok || !strings.HasPrefix(inm, `"`) || !strings.HasSuffix(ims, `"`) {
		return Request{}, fmt.Errorf("line %q: want %s", line, nginxLogFormat)
	}
	sec := int64(ms)
	return Request{
		At:              time.Unix(sec, int64((ms-float64(sec))*1e9)).Round(time.Millisecond),
		Method:          f[1],
		URI:             f[2],
		Status:          status,
		BytesSent:       sent,
		IfNoneMatch:     strings.TrimPrefix(inm, `"`),
		IfModifiedSince: strings.TrimSuffix(ims, `"`),
	}, nil
}

// BytesSent sums the bytes sent for reqs.
func BytesSent(reqs []Request) int {
	n := 0
	for _, r := range reqs {
		n += r.BytesSent
	}
	return n
}
