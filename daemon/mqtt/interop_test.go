// SPDX-License-Identifier: Apache-2.0

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

// mosquitto is a broker started by a test with its own config in a temp dir,
// and the test PKI its clients use when it requires TLS.
type mosquitto struct {
	*mqtttest.Mosquitto
	tls *testPKI
}

// startMosquitto starts mosquitto on a free loopback port, with persistence
// in a temp dir and, if pki is not nil, TLS requiring client certificates.
func startMosquitto(t testing.TB, pki *testPKI) *mosquitto {
	t.Helper()
	opts := mqtttest.MosquittoOptions{StartTimeout: patience}
	if pki != nil {
		opts.TLS = &mqtttest.MosquittoTLS{CAFile: pki.CA, CertFile: pki.ServerCert, KeyFile: pki.ServerKey, RequireCertificate: true}
	}
	return &mosquitto{Mosquitto: mqtttest.StartMosquitto(t, opts), tls: pki}
}

// sub runs mosquitto_sub with args against m and returns its output.
func (m *mosquitto) sub(t testing.TB, args ...string) string {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(m.Port())}, append(m.tlsArgs(), args...)...)
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
	cfg := testConfig(m.URL(), "retained")
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
	cfg := testConfig(m.URL(), "lwt")
	seen := watch(t, mqtt.Config{Broker: m.URL()}, cfg.Topic("#"))

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
	cfg := testConfig(m.URL(), "outage")

	// An independent subscriber with a persistent session, so the broker
	// queues events for it while it is disconnected by the restart.
	subBin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	sub := exec.Command(subBin, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()),
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
		if err := mqtt.Publish(ctx, mqtt.Config{Broker: m.URL()}, mqtt.Message{Topic: cfg.EventsTopic(), Payload: []byte("probe"), QoS: 1}); err != nil {
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

	m.Stop()     // the broker goes away mid-drain ...
	stopDaemon() // ... the daemon restarts meanwhile ...
	for range 1000 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	runSession(t, cfg, out, fastRetry())
	m.Start() // ... and the broker comes back.

	waitAcked(t, out, out.Last())
	msgs := seen.waitFor(t, "every event", func(r []received) bool { return distinct(seqs(r, cfg.EventsTopic())) == len(want) })
	dups := checkDelivery(t, seqs(msgs, cfg.EventsTopic()), want)
	t.Logf("%d events through a broker restart and a daemon restart, %d duplicates", len(want), dups)
}

func TestInteropTLSClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	m := startMosquitto(t, pki)
	cfg := testConfig(m.URL(), "tls")
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
	noCert := mqtt.Config{Broker: m.URL(), CAFile: pki.CA}
	if err := mqtt.Publish(ctx, noCert, msg); err == nil {
		t.Errorf("Publish without a client certificate = nil, want an error")
	}
	otherCA := newTestPKI(t)
	wrongCA := mqtt.Config{Broker: m.URL(), CAFile: otherCA.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	if err := mqtt.Publish(ctx, wrongCA, msg); err == nil {
		t.Errorf("Publish trusting another CA = nil, want a certificate error")
	}
	good := mqtt.Config{Broker: m.URL(), CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
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
	cfg := testConfig(m.URL(), "cmd")
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
	pubBin := mqtttest.NeedPeer(t, "mosquitto_pub", "mosquitto-clients")
	pub := func(id string, payload []byte) {
		out, err := exec.Command(pubBin, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-q", "1",
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
