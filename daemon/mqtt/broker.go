// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Defaults of the embedded broker's limits (BrokerConfig fields left zero).
// They bound what one client can make the gateway hold in memory: a packet
// is refused from its fixed header on, before its body is read.
const (
	DefaultMaxPacketSize    = 64 << 10 // bytes of one MQTT packet
	DefaultMaxRetained      = 1000     // retained topics
	DefaultMaxRetainedBytes = 8 << 20  // payload bytes of all retained messages
	DefaultMaxInflight      = 1024     // QoS 1/2 messages held for one client
	DefaultMaxClients       = 64       // connected clients
)

// maxWritesPending bounds the packets queued for one slow subscriber
// (mochi's default is 8192, which at the maximum packet size is 512 MiB).
const maxWritesPending = 1024

// BrokerConfig configures the embedded broker. The zero value is a
// loopback broker with the default limits that lets every client in.
type BrokerConfig struct {
	// Listen is the listen address; DefaultListen if empty. An address
	// beyond loopback needs PasswordFile or ClientCAFile.
	Listen string
	// MaxPacketSize, MaxRetained, MaxRetainedBytes, MaxInflight and
	// MaxClients are the limits; the Default… constants if zero.
	MaxPacketSize    int
	MaxRetained      int
	MaxRetainedBytes int
	MaxInflight      int
	MaxClients       int
	// PasswordFile holds one "username:bcrypt-hash" per line (htpasswd -B).
	// When set, clients must authenticate with one of its users.
	PasswordFile string
	// TLSCertFile and TLSKeyFile are the broker's PEM certificate and key;
	// when set, the listener speaks TLS only.
	TLSCertFile, TLSKeyFile string
	// ClientCAFile is a PEM bundle of CAs; when set (with TLSCertFile),
	// clients must present a certificate signed by one of them.
	ClientCAFile string
}

// Auth reports whether the configuration authenticates clients.
func (c BrokerConfig) Auth() bool { return c.PasswordFile != "" || c.ClientCAFile != "" }

// IsLoopback reports whether the listen address host:port stays on this
// machine: "localhost" or a loopback IP. An empty host ("":1883) listens on
// every interface and is not loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// Validate reports every problem with c as one error (nil if none). Files
// are not read here; Start reads them.
func (c BrokerConfig) Validate() error {
	var errs []error
	listen := c.Listen
	if listen == "" {
		listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		errs = append(errs, fmt.Errorf("embedded broker listen address %q: %w", listen, err))
	} else if !IsLoopback(listen) && !c.Auth() {
		errs = append(errs, fmt.Errorf("embedded broker listen address %q is beyond loopback: it needs a password file or client certificates", listen))
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"maximum packet size", c.MaxPacketSize}, {"maximum retained messages", c.MaxRetained},
		{"maximum retained bytes", c.MaxRetainedBytes}, {"maximum inflight messages", c.MaxInflight},
		{"maximum clients", c.MaxClients},
	} {
		if l.v < 0 {
			errs = append(errs, fmt.Errorf("embedded broker %s %d is negative", l.name, l.v))
		}
	}
	if c.MaxPacketSize > 256<<20-1 {
		errs = append(errs, fmt.Errorf("embedded broker maximum packet size %d is over MQTT's 256 MiB", c.MaxPacketSize))
	}
	if c.MaxInflight > 65535 {
		errs = append(errs, fmt.Errorf("embedded broker maximum inflight messages %d is over 65535", c.MaxInflight))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("embedded broker TLS certificate and key must be given together"))
	}
	if c.ClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("embedded broker client CA needs a TLS certificate and key"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with the zero limits and listen address filled in.
func (c BrokerConfig) withDefaults() BrokerConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	def(&c.MaxPacketSize, DefaultMaxPacketSize)
	def(&c.MaxRetained, DefaultMaxRetained)
	def(&c.MaxRetainedBytes, DefaultMaxRetainedBytes)
	def(&c.MaxInflight, DefaultMaxInflight)
	def(&c.MaxClients, DefaultMaxClients)
	return c
}

// Broker is the embedded MQTT broker (mochi-mqtt) for `make demo` and
// stand-alone sites without a central broker. It keeps retained messages in
// memory, within the limits of its BrokerConfig.
//
// Without authentication it lets every client in and refuses to listen
// beyond loopback. With authentication (a password file and/or client
// certificates) the gateway's own session connects through a second,
// loopback-only listener with a random per-start credential (see URL and
// Credentials), so it needs neither a password in the file nor a client
// certificate.
type Broker struct {
	srv      *mochi.Server
	addr     string // the configured listener
	local    string // the listener the gateway's own session uses
	user, pw string // its credential; empty without authentication
}

// StartBroker starts the embedded broker on listen with the default limits
// and no authentication (see BrokerConfig.Start).
func StartBroker(listen string, log *slog.Logger) (*Broker, error) {
	return BrokerConfig{Listen: listen}.Start(log)
}

// Start starts the embedded broker ("127.0.0.1:0" picks a free port, see
// Addr). It returns once the ports are bound, or an error if c is invalid or
// a file cannot be read.
func (c BrokerConfig) Start(log *slog.Logger) (*Broker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	blog := slog.New(demote{log.With("component", "mqtt-broker").Handler()})

	var users map[string][]byte
	if c.PasswordFile != "" {
		var err error
		if users, err = readPasswordFile(c.PasswordFile); err != nil {
			return nil, err
		}
	}
	tc, err := c.serverTLS()
	if err != nil {
		return nil, err
	}

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(c.MaxPacketSize)
	caps.MaximumInflight = uint16(c.MaxInflight)
	caps.MaximumClients = int64(c.MaxClients)
	caps.MaximumClientWritesPending = maxWritesPending
	// Retained state documents must stay until replaced: mochi's default
	// expires every message a day after it was published, which would
	// empty a dashboard's view of a device that did not change for a day.
	// Memory is bounded by the retained limits instead.
	caps.MaximumMessageExpiryInterval = 0
	// $SYS statistics every minute rather than mochi's default second: each
	// round stops the world to read memory statistics, the largest part of
	// an idle gateway's CPU time (mosquitto's sys_interval is 10 s).
	srv := mochi.New(&mochi.Options{Logger: blog, Capabilities: caps, SysTopicResendInterval: 60})

	b := &Broker{srv: srv}
	auth := &authHook{users: users, log: log}
	if c.Auth() {
		b.user = "fieldgated-local"
		b.pw = randomSecret()
		auth.local, auth.localUser, auth.localPassword = localListener, b.user, b.pw
	}
	if err := srv.AddHook(auth, nil); err != nil {
		return nil, fmt.Errorf("embedded broker auth hook: %w", err)
	}
	lim := &limitHook{srv: srv, maxRetained: c.MaxRetained, maxRetainedBytes: c.MaxRetainedBytes, log: log}
	if err := srv.AddHook(lim, nil); err != nil {
		return nil, fmt.Errorf("embedded broker limit hook: %w", err)
	}

	tcp := listeners.NewTCP(listeners.Config{ID: mainListener, Address: c.Listen, TLSConfig: tc})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker listen on %s: %w", c.Listen, err)
	}
	b.addr, b.local = tcp.Address(), tcp.Address()
	if c.Auth() {
		lo := listeners.NewTCP(listeners.Config{ID: localListener, Address: "127.0.0.1:0"})
		if err := srv.AddListener(lo); err != nil {
			srv.Close()
			return nil, fmt.Errorf("embedded broker local listener: %w", err)
		}
		b.local = lo.Address()
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded broker serve: %w", err)
	}
	log.Info("embedded mqtt broker started", "addr", b.addr, "tls", tc != nil,
		"passwords", len(users), "client_certs", c.ClientCAFile != "",
		"max_packet_size", c.MaxPacketSize, "max_clients", c.MaxClients)
	if c.PasswordFile != "" && tc == nil && !IsLoopback(c.Listen) {
		log.Warn("embedded broker takes passwords without TLS beyond loopback", "listen", c.Listen)
	}
	return b, nil
}

// Listener ids: the configured one, and the loopback one the gateway's own
// session uses when clients must authenticate.
const (
	mainListener  = "tcp"
	localListener = "local"
)

func randomSecret() string {
	b := make([]byte, 32)
	crand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// Addr returns the host:port the configured listener is bound to.
func (b *Broker) Addr() string { return b.addr }

// URL returns the broker URL for the gateway's own Config.Broker, e.g.
// "tcp://127.0.0.1:1883": the configured listener, or with authentication
// the loopback listener that takes Credentials.
func (b *Broker) URL() string { return "tcp://" + b.local }

// Credentials returns the username and password for URL: empty without
// authentication, else a random per-start password that never leaves the
// process.
func (b *Broker) Credentials() (username, password string) { return b.user, b.pw }

// Close disconnects every client and stops the broker.
func (b *Broker) Close() error {
	return b.srv.Close()
}

// demote is a slog.Handler that logs the broker library's INFO lines
// (every client connect and disconnect) at DEBUG, keeping INFO for decisions.
// The library logs a client connection that ends with an error (EOF, a
// refused CONNECT, the listener closing at shutdown) as a WARN with an empty
// message; that is protocol detail too, so it becomes a DEBUG line with a
// message. Refusals that matter are logged by the hooks.
type demote struct{ h slog.Handler }

func (d demote) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, lower(l)) // Handle filters again after demoting an empty message
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	r.Level = lower(r.Level)
	if r.Message == "" {
		r.Message = "mqtt client connection ended"
		r.Level = slog.LevelDebug
	}
	if !d.h.Enabled(ctx, r.Level) {
		return nil
	}
	return d.h.Handle(ctx, r)
}

func (d demote) WithAttrs(as []slog.Attr) slog.Handler { return demote{d.h.WithAttrs(as)} }
func (d demote) WithGroup(n string) slog.Handler       { return demote{d.h.WithGroup(n)} }

func lower(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}
