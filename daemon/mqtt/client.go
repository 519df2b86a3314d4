// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const (
	defaultKeepAlive = 30 * time.Second
	connectTimeout   = 10 * time.Second
	writeTimeout     = 5 * time.Second
)

// dialer opens the network connection for one paho client under a context,
// so that cancelling the context aborts a dial or a CONNECT handshake in
// progress. Once the handshake is done, release detaches the connection from
// the context (it then lives until the client disconnects).
type dialer struct {
	ctx  context.Context
	addr string
	tls  *tls.Config
	mu   sync.Mutex
	stop func() bool
	// broken, if set, is called once when a read or write on the connection
	// fails. paho reports a lost connection only after its workers stop,
	// which can take up to its write timeout when a write fails while
	// publishes are queued; this lets the Session react at once.
	broken func(error)
}

// watchedConn reports the first read or write error to onErr.
type watchedConn struct {
	net.Conn
	once  sync.Once
	onErr func(error)
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.once.Do(func() { c.onErr(err) })
	}
	return n, err
}

func (c *watchedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.once.Do(func() { c.onErr(err) })
	}
	return n, err
}

func newDialer(ctx context.Context, cfg Config) (*dialer, error) {
	addr, useTLS, err := brokerAddr(cfg.Broker)
	if err != nil {
		return nil, err
	}
	d := &dialer{ctx: ctx, addr: addr}
	if useTLS {
		host, _, _ := net.SplitHostPort(addr)
		if d.tls, err = cfg.tlsConfig(host); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *dialer) open(*url.URL, paho.ClientOptions) (net.Conn, error) {
	var conn net.Conn
	var err error
	nd := &net.Dialer{Timeout: connectTimeout, KeepAlive: 15 * time.Second}
	if d.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: d.tls}).DialContext(d.ctx, "tcp", d.addr)
	} else {
		conn, err = nd.DialContext(d.ctx, "tcp", d.addr)
	}
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.stop = context.AfterFunc(d.ctx, func() { conn.Close() })
	d.mu.Unlock()
	if d.broken != nil {
		conn = &watchedConn{Conn: conn, onErr: d.broken}
	}
	return conn, nil
}

// release detaches the connection from the context. It reports false if the
// context already closed the connection.
func (d *dialer) release() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop == nil {
		return d.ctx.Err() == nil
	}
	return d.stop()
}

// clientOptions returns the paho options shared by every client in this
// package: MQTT 3.1.1, no automatic reconnect (callers own the retry loop),
// the dialer above, and credentials from cfg.
func clientOptions(cfg Config, clientID string, d *dialer) *paho.ClientOptions {
	ka := cfg.KeepAlive
	if ka == 0 {
		ka = defaultKeepAlive
	}
	o := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetKeepAlive(ka).
		SetPingTimeout(ka / 2).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetStore(paho.NewMemoryStore()).
		SetCustomOpenConnectionFn(d.open)
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		o.SetPassword(cfg.Password)
	}
	return o
}

// connect connects c, waiting at most until ctx ends.
func connect(ctx context.Context, c paho.Client, d *dialer) error {
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// The dialer closes the connection on cancel, so the token completes soon.
		<-tok.Done()
	}
	if err := tok.Error(); err != nil {
		return err
	}
	if !d.release() {
		c.Disconnect(0)
		return ctx.Err()
	}
	return nil
}

// lostSignal records the loss of one connection; it is safe for concurrent use.
type lostSignal struct {
	once sync.Once
	done chan struct{}
	err  error
}

func newLostSignal() *lostSignal { return &lostSignal{done: make(chan struct{})} }

func (l *lostSignal) fire(_ paho.Client, err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

func (l *lostSignal) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// wait waits for tok, the end of ctx, or the loss of the connection.
func wait(ctx context.Context, tok paho.Token, lost *lostSignal) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-lost.done:
		return fmt.Errorf("connection lost: %w", lost.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}
