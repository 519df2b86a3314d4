// SPDX-License-Identifier: Apache-2.0

package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// NeedPeer returns the path of the peer program prog, looked up in PATH and
// then in /usr/sbin (where Debian installs mosquitto). If it is missing the
// test is skipped with a message naming debianPackage, the package to
// install; when the environment has CI=true it fails instead, so that a CI
// machine without its peers cannot pass by skipping.
func NeedPeer(t testing.TB, prog, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(prog); err == nil {
		return p
	}
	if p := "/usr/sbin/" + prog; fileExists(p) {
		return p
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s", prog, debianPackage)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// MosquittoOptions configures StartMosquitto. The zero value is a plain TCP
// listener.
type MosquittoOptions struct {
	// TLS, if not nil, makes the listener TLS-only.
	TLS *MosquittoTLS
	// StartTimeout bounds each wait for the broker to listen, in
	// StartMosquitto and Start; 0 means 10 s.
	StartTimeout time.Duration
	// Config is appended to the generated mosquitto.conf, e.g. a bridge
	// (connection …); it may use everything mosquitto.conf(5) allows.
	Config string
}

// MosquittoTLS is the broker side of a TLS listener: PEM file paths and
// whether clients must present a certificate signed by CAFile.
type MosquittoTLS struct {
	CAFile, CertFile, KeyFile string
	RequireCertificate        bool
}

// Mosquitto is a mosquitto broker started by a test on a free loopback
// port, with its own config, log and persistence in a temp dir. Anonymous
// clients are allowed, persistence is on (saved when the broker stops) and
// queues are unbounded, so a test can stop and restart it to simulate an
// outage without losing sessions, queued or retained messages.
//
// Start and Stop must be called from the test's goroutine and not
// concurrently; the getters are safe for concurrent use.
type Mosquitto struct {
	t       testing.TB
	bin     string
	dir     string
	conf    string
	port    int
	tls     bool
	timeout time.Duration
	cmd     *exec.Cmd
}

// StartMosquitto starts mosquitto and waits until it listens. The test is
// skipped (or failed, with CI=true) if mosquitto is not installed; see
// NeedPeer. The broker is stopped when the test ends, and its log is
// written to the test log if the test failed.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	m := &Mosquitto{
		t:       t,
		bin:     NeedPeer(t, "mosquitto", "mosquitto"),
		dir:     t.TempDir(),
		tls:     opts.TLS != nil,
		timeout: opts.StartTimeout,
	}
	if m.timeout <= 0 {
		m.timeout = 10 * time.Second
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("StartMosquitto: %v", err)
	}
	m.port = port
	conf := fmt.Sprintf(`# written by mqtttest.StartMosquitto
listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 0
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
`, m.port, m.dir)
	if os.Geteuid() == 0 {
		conf += "user root\n" // otherwise mosquitto switches to a user that cannot write the temp dir
	}
	if c := opts.TLS; c != nil {
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %t\n",
			c.CAFile, c.CertFile, c.KeyFile, c.RequireCertificate)
	}
	conf += opts.Config
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(m.logFile())
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	return m
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the broker address for an MQTT client: ssl://127.0.0.1:port
// with TLS, tcp://127.0.0.1:port without.
func (m *Mosquitto) URL() string {
	if m.tls {
		return fmt.Sprintf("ssl://127.0.0.1:%d", m.port)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", m.port)
}

// Port returns the loopback port the broker listens on; it stays the same
// across Stop and Start.
func (m *Mosquitto) Port() int { return m.port }

// Dir returns the temp dir holding the broker's config, log
// (mosquitto.log) and persistence file.
func (m *Mosquitto) Dir() string { return m.dir }

func (m *Mosquitto) logFile() string { return filepath.Join(m.dir, "mosquitto.log") }

// Start starts the broker again after Stop, with the same config and
// persistence, and waits until it listens. StartMosquitto calls it once.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	logf, err := os.OpenFile(m.logFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer logf.Close()
	m.cmd.Stderr = logf
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(m.timeout)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto never listened on %d: %v", m.port, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port the peer opens; not a timing assertion
	}
}

// Stop stops the broker by PID with SIGTERM, so that it saves its
// persistence file (sessions, queued and retained messages), and waits for
// it to exit. Stopping a stopped broker does nothing.
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.cmd.Wait()
	m.cmd = nil
}
