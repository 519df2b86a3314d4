package mqtt_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

// childEnv makes the test binary run a Session instead of the tests (see
// TestMain); the value is "broker|client id|prefix".
const childEnv = "FIELDGATE_MQTT_TEST_SESSION"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChildSession(v))
	}
	os.Exit(m.Run())
}

// runChildSession runs a Session until the process is killed.
func runChildSession(spec string) int {
	f := strings.Split(spec, "|")
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "bad", childEnv, spec)
		return 2
	}
	cfg := mqtt.Config{Broker: f[0], ClientID: f[1], Prefix: f[2], KeepAlive: 5 * time.Second}
	if err := mqtt.NewSession(cfg, mqtttest.NewOutbox(), testLogger(nil)).Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// need returns the path of a peer program, skipping the test if it is
// missing (failing it when CI=true).
func need(t testing.TB, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		if p2 := "/usr/sbin/" + prog; fileExists(p2) {
			return p2
		}
		msg := fmt.Sprintf("%s not found: install the Debian package %s", prog, pkg)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mosquitto is a broker started by a test with its own config in a temp dir.
type mosquitto struct {
	t    testing.TB
	bin  string
	dir  string
	conf string
	port int
	cmd  *exec.Cmd
	tls  *testPKI
}

// startMosquitto starts mosquitto on a free loopback port, with persistence
// in a temp dir and, if pki is not nil, TLS requiring client certificates.
func startMosquitto(t testing.TB, pki *testPKI) *mosquitto {
	t.Helper()
	m := &mosquitto{t: t, bin: need(t, "mosquitto", "mosquitto"), dir: t.TempDir(), port: freePort(t), tls: pki}
	conf := fmt.Sprintf(`# written by the fieldgate daemon/mqtt tests
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
	if pki != nil {
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n", pki.CA, pki.ServerCert, pki.ServerKey)
	}
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	return m
}

func (m *mosquitto) url() string {
	if m.tls != nil {
		return fmt.Sprintf("ssl://127.0.0.1:%d", m.port)
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", m.port)
}

func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	logf, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer logf.Close()
	m.cmd.Stderr = logf
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(patience)
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

// stop stops mosquitto by PID with SIGTERM (it saves its persistence file).
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.cmd.Wait()
	m.cmd = nil
}

// sub runs mosquitto_sub with args against m and returns its output.
func (m *mosquitto) sub(t testing.TB, args ...string) string {
	t.Helper()
	bin := need(t, "mosquitto_sub", "mosquitto-clients")
	args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(m.port)}, append(m.tlsArgs(), args...)...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_sub %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (m *mosquitto) tlsArgs() []string {
	if m.tls == nil {
		return nil
	}
	return []string{"--cafile", m.tls.CA, "--cert", m.tls.ClientCert, "--key", m.tls.ClientKey}
}

func TestInteropRetainedStateForFreshSubscriber(t *testing.T) {
	m := startMosquitto(t, nil)
	cfg := testConfig(m.url(), "retained")
	out := mqtttest.NewOutbox()
	out.Add(cfg.StatusTopic(), []byte(`{"online":true,"health":[]}`), true)
	out.Add(cfg.DeviceTopic("plc1"), []byte(`{"version":"2.4.1"}`), true)
	e := out.AddFunc(cfg.EventsTopic(), false, eventPayload)
	runSession(t, cfg, out, fastRetry())
	waitAcked(t, out, e.Seq)

	got := m.sub(t, "-t", cfg.Topic("#"), "-v", "-C", "2", "-W", "10")
	for _, want := range []string{
		cfg.StatusTopic() + ` {"online":true,"health":[]}`,
		cfg.DeviceTopic("plc1") + ` {"version":"2.4.1"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("mosquitto_sub output = %q, want a line %q", got, want)
		}
	}
}

func TestInteropLastWillAfterKill(t *testing.T) {
	m := startMosquitto(t, nil)
	cfg := testConfig(m.url(), "lwt")
	seen := watch(t, mqtt.Config{Broker: m.url()}, cfg.Topic("#"))

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+cfg.Broker+"|"+cfg.ClientID+"|"+cfg.Prefix)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	seen.waitFor(t, "online status", func(r []received) bool {
		st, ok := lastStatus(r, cfg.StatusTopic())
		return ok && st.Online
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	seen.waitFor(t, "last will", func(r []received) bool {
		st, ok := lastStatus(r, cfg.StatusTopic())
		return ok && !st.Online && st.Reason == "lost" && st.ClientID == cfg.ClientID
	})
	// The will is retained: a subscriber arriving later sees it.
	if got := m.sub(t, "-t", cfg.StatusTopic(), "-C", "1", "-W", "10"); !strings.Contains(got, `"online":false`) {
		t.Errorf("retained status after kill = %q, want the last will", got)
	}
}

func TestInteropOutboxSurvivesBrokerAndDaemonRestart(t *testing.T) {
	m := startMosquitto(t, nil)
	cfg := testConfig(m.url(), "outage")

	// An independent subscriber with a persistent session, so the broker
	// queues events for it while it is disconnected by the restart.
	subBin := need(t, "mosquitto_sub", "mosquitto-clients")
	sub := exec.Command(subBin, "-h", "127.0.0.1", "-p", strconv.Itoa(m.port),
		"-c", "-i", "fieldgate-test-central", "-q", "1", "-t", cfg.EventsTopic())
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	seen := newCollector()
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			seen.add(cfg.EventsTopic(), sc.Bytes(), false)
		}
	}()
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait(); <-lines })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for subscribed := false; !subscribed; {
		if err := mqtt.Publish(ctx, mqtt.Config{Broker: m.url()}, mqtt.Message{Topic: cfg.EventsTopic(), Payload: []byte("probe"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		msgs, _ := seen.snapshot()
		subscribed = len(msgs) > 0
		if !subscribed {
			time.Sleep(100 * time.Millisecond) // waiting for a peer process to subscribe
		}
	}

	out := mqtttest.NewOutbox()
	var want []uint64
	for range 3000 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	_, stopDaemon := runSession(t, cfg, out, fastRetry(), mqtt.WithWindow(32))
	seen.waitFor(t, "first events", func(r []received) bool { return len(seqs(r, cfg.EventsTopic())) >= 300 })

	m.stop()     // the broker goes away mid-drain ...
	stopDaemon() // ... the daemon restarts meanwhile ...
	for range 1000 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	runSession(t, cfg, out, fastRetry())
	m.start() // ... and the broker comes back.

	waitAcked(t, out, out.Last())
	msgs := seen.waitFor(t, "every event", func(r []received) bool { return distinct(seqs(r, cfg.EventsTopic())) == len(want) })
	dups := checkDelivery(t, seqs(msgs, cfg.EventsTopic()), want)
	t.Logf("%d events through a broker restart and a daemon restart, %d duplicates", len(want), dups)
}

func TestInteropTLSClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	m := startMosquitto(t, pki)
	cfg := testConfig(m.url(), "tls")
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = pki.CA, pki.ClientCert, pki.ClientKey
	out := mqtttest.NewOutbox()
	e := out.AddFunc(cfg.EventsTopic(), false, eventPayload)
	runSession(t, cfg, out, fastRetry())
	waitAcked(t, out, e.Seq)
	if got := m.sub(t, "-t", cfg.StatusTopic(), "-C", "1", "-W", "10"); !strings.Contains(got, `"online":true`) {
		t.Errorf("status over TLS = %q, want online", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	msg := mqtt.Message{Topic: cfg.Topic("probe"), Payload: []byte("x"), QoS: 1}
	noCert := mqtt.Config{Broker: m.url(), CAFile: pki.CA}
	if err := mqtt.Publish(ctx, noCert, msg); err == nil {
		t.Errorf("Publish without a client certificate = nil, want an error")
	}
	otherCA := newTestPKI(t)
	wrongCA := mqtt.Config{Broker: m.url(), CAFile: otherCA.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	if err := mqtt.Publish(ctx, wrongCA, msg); err == nil {
		t.Errorf("Publish trusting another CA = nil, want a certificate error")
	}
	good := mqtt.Config{Broker: m.url(), CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	if err := mqtt.Publish(ctx, good, msg); err != nil {
		t.Errorf("Publish with the right certificates = %v, want nil", err)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files in a temp dir.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fieldgate test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{CA: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.CA, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		c, k := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		writePEM(t, c, "CERTIFICATE", der)
		writePEM(t, k, "EC PRIVATE KEY", kder)
		return c, k
	}
	p.ServerCert, p.ServerKey = leaf("broker", 2, x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf("gateway", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInteropSignedCommandRoundTrip(t *testing.T) {
	m := startMosquitto(t, nil)
	cfg := testConfig(m.url(), "cmd")
	cfg.Prefix = testPrefix
	type verdict struct {
		id     string
		reason string
	}
	verdicts := make(chan verdict, 10)
	s, _ := runSession(t, cfg, mqtttest.NewOutbox(), fastRetry(), mqtt.WithCommandHandler(func(topic string, payload []byte) {
		id, _ := cfg.CommandID(topic)
		_, err := cfg.ParseCommand(payload, testKeys, time.Now())
		reason := "accepted"
		if err != nil {
			reason = mqtt.RejectReason(err)
		}
		verdicts <- verdict{id, reason}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for !s.Connected() {
		select {
		case <-ctx.Done():
			t.Fatal("session never connected")
		case <-time.After(10 * time.Millisecond):
		}
	}
	c := approve()
	c.Expires = time.Now().Add(time.Hour)
	signed := sign(t, c, "ops-1", testPriv)
	forged := sign(t, c, "ops-1", otherPriv)
	pubBin := need(t, "mosquitto_pub", "mosquitto-clients")
	pub := func(id string, payload []byte) {
		out, err := exec.Command(pubBin, "-h", "127.0.0.1", "-p", strconv.Itoa(m.port), "-q", "1",
			"-t", cfg.CommandTopic(id), "-m", string(payload)).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
	}
	// The subscription is made right after connecting; the first publish may
	// precede it, so publish until the first verdict arrives.
	for got := false; !got; {
		pub("c-1", signed)
		select {
		case v := <-verdicts:
			if v != (verdict{"c-1", "accepted"}) {
				t.Fatalf("verdict = %+v, want c-1 accepted", v)
			}
			got = true
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no verdict")
		}
	}
	pub("c-2", forged)
	for {
		select {
		case v := <-verdicts:
			if v.id == "c-1" {
				continue // a repeat from the retry loop above
			}
			if v != (verdict{"c-2", "bad-signature"}) {
				t.Errorf("verdict = %+v, want c-2 bad-signature", v)
			}
			return
		case <-ctx.Done():
			t.Fatal("no verdict for the forged command")
		}
	}
}
