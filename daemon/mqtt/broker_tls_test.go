// SPDX-License-Identifier: Apache-2.0

package mqtt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// pki writes a CA, a broker certificate for 127.0.0.1 and a client
// certificate, each with its key, as PEM files in dir.
type pki struct{ ca, cert, key, clientCert, clientKey string }

func newPKI(t *testing.T, name string) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() (*ecdsa.PrivateKey, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, der
	}
	caKey, _ := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		k, kder := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, kder
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth, nil)
	return pki{
		ca: write("ca.pem", "CERTIFICATE", caDER), cert: write("broker.pem", "CERTIFICATE", srvDER),
		key: write("broker.key", "PRIVATE KEY", srvKey), clientCert: write("client.pem", "CERTIFICATE", cliDER),
		clientKey: write("client.key", "PRIVATE KEY", cliKey),
	}
}

func TestBrokerClientCertificates(t *testing.T) {
	p, other := newPKI(t, "plant"), newPKI(t, "elsewhere")
	b := startBrokerConfig(t, mqtt.BrokerConfig{Listen: "127.0.0.1:0", TLSCertFile: p.cert, TLSKeyFile: p.key, ClientCAFile: p.ca})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	tlsURL := "ssl://" + b.Addr()
	user, pw := b.Credentials()
	m := mqtt.Message{Topic: "t/x", Payload: []byte("x"), QoS: 1}
	for _, tc := range []struct {
		name string
		cfg  mqtt.Config
		ok   bool
	}{
		{"certificate from the CA", mqtt.Config{Broker: tlsURL, CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey}, true},
		{"no certificate", mqtt.Config{Broker: tlsURL, CAFile: p.ca}, false},
		{"certificate from another CA", mqtt.Config{Broker: tlsURL, CAFile: p.ca, CertFile: other.clientCert, KeyFile: other.clientKey}, false},
		{"plain TCP", mqtt.Config{Broker: "tcp://" + b.Addr()}, false},
		{"gateway's own session on the local listener", mqtt.Config{Broker: b.URL(), Username: user, Password: pw}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err := mqtt.Publish(ctx, tc.cfg, m)
			if (err == nil) != tc.ok {
				t.Errorf("Publish(%s) = %v, want success %v", tc.name, err, tc.ok)
			}
		})
	}
	if _, err := (mqtt.BrokerConfig{Listen: "0.0.0.0:0", TLSCertFile: p.cert, TLSKeyFile: p.key}).Start(testLogger(t)); err == nil {
		t.Error("Start beyond loopback with TLS but neither client certificates nor passwords = nil error, want one")
	}
}
