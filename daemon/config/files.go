// SPDX-License-Identifier: Apache-2.0

package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/tuf"
)

// maxReferencedFile bounds what is read of a certificate, key or password
// file: each is a few kilobytes. The trusted root has its own bound
// (tuf.MaxRootSize).
const maxReferencedFile = 1 << 20

// checkFiles reads every file the configuration names, as fieldgated reads
// it when it starts, and reports each one that is missing, unreadable or not
// what its key says, naming the key and the file: the trusted root (which
// must verify with its own keys), the broker's CA, the client certificate
// and key (which must make a pair), and, when the embedded broker is used,
// its password file, certificate and key, and client CA. Keys left empty
// name no file; whether they are required is Validate's business.
//
// Device options that name files (an ssh key_file) are their driver's to
// check; approver keys are given inline (approvers[].public_key).
func (c *Config) checkFiles(bad func(path, format string, a ...any)) {
	if p := c.TUF.TrustedRoot; p != "" {
		checkTrustedRoot(p, bad)
	}
	m := c.MQTT
	if m.CAFile != "" {
		checkCAFile("mqtt.ca_file", m.CAFile, bad)
	}
	if m.CertFile != "" && m.KeyFile != "" {
		checkKeyPair("mqtt.cert_file", m.CertFile, "mqtt.key_file", m.KeyFile, bad)
	}
	if m.Broker != "" {
		return // the embedded broker is not started: its files are not read
	}
	e := m.Embedded
	if e.PasswordFile != "" {
		if _, ok := readReferenced("mqtt.embedded.password_file", e.PasswordFile, bad); ok {
			if err := mqtt.CheckPasswordFile(e.PasswordFile); err != nil {
				// "embedded broker password file P line 3: …": the key and
				// P are named already.
				msg := strings.TrimPrefix(err.Error(), "embedded broker password file "+e.PasswordFile)
				bad("mqtt.embedded.password_file", "%s: %s", e.PasswordFile, strings.TrimLeft(msg, ": "))
			}
		}
	}
	if e.TLSCertFile != "" && e.TLSKeyFile != "" {
		checkKeyPair("mqtt.embedded.tls_cert_file", e.TLSCertFile, "mqtt.embedded.tls_key_file", e.TLSKeyFile, bad)
	}
	if e.ClientCAFile != "" {
		checkCAFile("mqtt.embedded.client_ca_file", e.ClientCAFile, bad)
	}
}

// checkTrustedRoot reads the trusted root as tuf.Client would start from
// it, and verifies it with its own root keys at its own threshold.
func checkTrustedRoot(p string, bad func(path, format string, a ...any)) {
	const key = "tuf.trusted_root"
	data, err := tuf.ReadRootFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		bad(key, "%s: no such file: provision the repository's root with `fieldgatectl trust init ROOT.json --expect-sha256 FINGERPRINT`", p)
		return
	}
	if err != nil {
		bad(key, "%s: %v", p, bare(err))
		return
	}
	if _, err := tuf.CheckRoot(data); err != nil {
		bad(key, "%s: %v", p, err)
	}
}

// checkCAFile checks that p holds at least one PEM certificate, as the TLS
// configuration that uses it requires.
func checkCAFile(key, p string, bad func(path, format string, a ...any)) {
	data, ok := readReferenced(key, p, bad)
	if !ok {
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		bad(key, "%s: no PEM certificate found", p)
	}
}

// checkKeyPair checks that certFile holds a PEM certificate and keyFile the
// private key for it.
func checkKeyPair(certKey, certFile, keyKey, keyFile string, bad func(path, format string, a ...any)) {
	certPEM, certOK := readReferenced(certKey, certFile, bad)
	keyPEM, keyOK := readReferenced(keyKey, keyFile, bad)
	if certOK && !hasCertificate(certPEM) {
		bad(certKey, "%s: no PEM certificate found", certFile)
		certOK = false
	}
	if !certOK || !keyOK {
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		bad(keyKey, "%s: not the private key of %s %s: %v", keyFile, certKey, certFile, err)
	}
}

// hasCertificate reports whether data holds a PEM block that parses as an
// X.509 certificate.
func hasCertificate(data []byte) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err == nil {
				return true
			}
		}
	}
}

// readReferenced reads the regular file p named by key, reporting a
// missing, unreadable, oversized or non-regular file (a named pipe would
// block the check) and returning ok false.
func readReferenced(key, p string, bad func(path, format string, a ...any)) (data []byte, ok bool) {
	st, err := os.Stat(p)
	if err != nil {
		bad(key, "%s: %v", p, bare(err))
		return nil, false
	}
	if !st.Mode().IsRegular() {
		bad(key, "%s: not a regular file", p)
		return nil, false
	}
	f, err := os.Open(p)
	if err != nil {
		bad(key, "%s: %v", p, bare(err))
		return nil, false
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxReferencedFile+1))
	switch {
	case err != nil:
		bad(key, "%s: %v", p, bare(err))
		return nil, false
	case len(data) > maxReferencedFile:
		bad(key, "%s: over %d bytes", p, maxReferencedFile)
		return nil, false
	}
	return data, true
}

// bare returns a path error's cause alone ("no such file or directory"):
// the messages name the path themselves.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
