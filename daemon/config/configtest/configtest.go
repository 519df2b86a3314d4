// SPDX-License-Identifier: Apache-2.0

// Package configtest writes valid files for every key of fieldgated's
// configuration that names one (the trusted root, certificates, keys, the
// embedded broker's password file), for tests of `--check-config` and of
// the daemon's start that must pass until one file is broken.
package configtest

import (
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
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// Files are the paths of valid files for the configuration's file keys.
type Files struct {
	TrustedRoot string // tuf.trusted_root: 1.root.json of a new repository (in Repo)
	Repo        string // that repository's directory (see package publish)

	CAFile   string // mqtt.ca_file: a CA certificate
	CertFile string // mqtt.cert_file: a client certificate the CA signed
	KeyFile  string // mqtt.key_file: its key

	PasswordFile string // mqtt.embedded.password_file: user "ops", password "secret"
	TLSCertFile  string // mqtt.embedded.tls_cert_file: a server certificate (localhost, 127.0.0.1) the CA signed
	TLSKeyFile   string // mqtt.embedded.tls_key_file: its key
	ClientCAFile string // mqtt.embedded.client_ca_file: the CA again
}

// Write creates the files in dir (which must exist) and returns their
// paths. It calls t.Fatal on error.
func Write(t testing.TB, dir string) Files {
	t.Helper()
	f := Files{Repo: filepath.Join(dir, "repo")}
	pub, err := publish.Init(f.Repo, publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		t.Fatalf("configtest: %v", err)
	}
	f.TrustedRoot = pub.RootPath()

	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatalf("configtest: %v", err)
		}
		return p
	}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "configtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("configtest: %v", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	f.CAFile = write("ca.pem", certPEM(caDER))
	f.ClientCAFile = write("client-ca.pem", certPEM(caDER))

	leaf := func(serial int64, tmpl *x509.Certificate) (cert, key []byte) {
		t.Helper()
		k := newKey(t)
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = caTmpl.NotBefore, caTmpl.NotAfter
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatalf("configtest: %v", err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatalf("configtest: %v", err)
		}
		return certPEM(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	}
	cert, key := leaf(2, &x509.Certificate{Subject: pkix.Name{CommonName: "gw1"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	f.CertFile, f.KeyFile = write("client.pem", cert), write("client.key", key)
	cert, key = leaf(3, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	f.TLSCertFile, f.TLSKeyFile = write("server.pem", cert), write("server.key", key)

	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("configtest: %v", err)
	}
	f.PasswordFile = write("passwords", append([]byte("# configtest\nops:"), append(hash, '\n')...))
	return f
}

// External returns the file keys of a configuration that connects to an
// external broker over TLS with a client certificate, by key path.
func (f Files) External() map[string]string {
	return map[string]string{
		"tuf.trusted_root": f.TrustedRoot,
		"mqtt.ca_file":     f.CAFile,
		"mqtt.cert_file":   f.CertFile,
		"mqtt.key_file":    f.KeyFile,
	}
}

// Embedded returns the file keys of a configuration that runs the embedded
// broker with TLS, passwords and client certificates, by key path.
func (f Files) Embedded() map[string]string {
	return map[string]string{
		"tuf.trusted_root":             f.TrustedRoot,
		"mqtt.embedded.password_file":  f.PasswordFile,
		"mqtt.embedded.tls_cert_file":  f.TLSCertFile,
		"mqtt.embedded.tls_key_file":   f.TLSKeyFile,
		"mqtt.embedded.client_ca_file": f.ClientCAFile,
	}
}

// Config returns a complete, valid fieldgated configuration that names
// the files of External (embedded false) or Embedded (embedded true). State
// and socket are under stateDir.
func (f Files) Config(stateDir string, embedded bool) string {
	mqtt := fmt.Sprintf("  broker: ssl://central.example:8883\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n",
		f.CAFile, f.CertFile, f.KeyFile)
	if embedded {
		mqtt = fmt.Sprintf("  listen: 127.0.0.1:0\n  embedded:\n    password_file: %s\n    tls_cert_file: %s\n    tls_key_file: %s\n    client_ca_file: %s\n",
			f.PasswordFile, f.TLSCertFile, f.TLSKeyFile, f.ClientCAFile)
	}
	return fmt.Sprintf(`gateway:
  id: gw1
  site: plant1
  state_dir: %s
  socket: %s
tuf:
  metadata_url: http://127.0.0.1:1/metadata
  targets_url: http://127.0.0.1:1/targets
  trusted_root: %s
mqtt:
%swindows:
  - {name: nightly, start: "0 2 * * *", duration: 2h, timezone: UTC}
groups:
  - {name: line1, window: nightly, approval: auto}
devices:
  - {id: io16-a, group: line1, protocol: xmodem, hardware_id: acme-io16-rev3, address: /dev/ttyUSB0, baud: 115200}
`, filepath.Join(stateDir, "state"), filepath.Join(stateDir, "fieldgated.sock"), f.TrustedRoot, mqtt)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("configtest: %v", err)
	}
	return k
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
