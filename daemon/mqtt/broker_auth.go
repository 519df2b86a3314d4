// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// CheckPasswordFile reads the password file at path as the embedded
// broker does when it starts (see BrokerConfig.PasswordFile) and returns
// what is wrong with it, or nil: `fieldgated --check-config` runs it.
func CheckPasswordFile(path string) error {
	_, err := readPasswordFile(path)
	return err
}

// readPasswordFile reads "username:bcrypt-hash" lines (the format of
// `htpasswd -B`); blank lines and lines starting with # are skipped.
func readPasswordFile(path string) (map[string][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("embedded broker password file: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("embedded broker password file %s line %d: want username:bcrypt-hash", path, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("embedded broker password file %s line %d: user %q: not a bcrypt hash: %w", path, n, user, err)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("embedded broker password file %s line %d: user %q listed twice", path, n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("embedded broker password file %s: %w", path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("embedded broker password file %s: no users", path)
	}
	return users, nil
}

// serverTLS returns the listener's TLS configuration, nil without a
// certificate. With a client CA, a client without a certificate signed by
// it fails the handshake, before it can send a byte of MQTT.
func (c BrokerConfig) serverTLS() (*tls.Config, error) {
	if c.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("embedded broker TLS certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("embedded broker client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("embedded broker client CA %s: no PEM certificate found", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// authHook decides who may connect. On the configured listener: with
// users, a username and password from the password file; with client
// certificates, the TLS handshake has already checked them; with neither
// (loopback only), everyone. On the local listener: only the gateway's own
// per-start credential. Every connected client may publish and subscribe.
// (mochi's own auth package would pull in a YAML dependency for its ledger,
// which fieldgate does not use.)
type authHook struct {
	mochi.HookBase
	users                    map[string][]byte // username → bcrypt hash; nil: no passwords
	local                    string            // listener id of the local listener; "" if none
	localUser, localPassword string
	log                      *slog.Logger
	warn                     limiter
}

func (*authHook) ID() string { return "fieldgate-auth" }

func (*authHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	ok := h.authenticate(cl.Net.Listener, pk.Connect.Username, pk.Connect.Password)
	if !ok && h.log != nil {
		h.warn.do(time.Now(), func(suppressed int) {
			h.log.Warn("embedded broker refused a client: bad username or password",
				"listener", cl.Net.Listener, "remote", cl.Net.Remote, "username", string(pk.Connect.Username), "suppressed", suppressed)
		})
	}
	return ok
}

func (h *authHook) authenticate(listener string, user, pw []byte) bool {
	if h.local != "" && listener == h.local {
		u := subtle.ConstantTimeCompare(user, []byte(h.localUser))
		p := subtle.ConstantTimeCompare(pw, []byte(h.localPassword))
		return u&p == 1
	}
	if h.users == nil {
		return true // certificates checked in the handshake, or loopback without auth
	}
	hash, ok := h.users[string(user)]
	if !ok {
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, pw) == nil
}

func (*authHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }
