package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is the embedded MQTT broker (mochi-mqtt) for `make demo` and
// stand-alone sites without a central broker. It allows every client and
// keeps retained messages in memory, so it listens on loopback by default;
// a site that exposes it must put it behind a firewall or use a real broker.
type Broker struct {
	srv  *mochi.Server
	addr string
}

// StartBroker starts the embedded broker on listen (DefaultListen if empty;
// "127.0.0.1:0" picks a free port, see Addr). It returns once the port is bound.
func StartBroker(listen string, log *slog.Logger) (*Broker, error) {
	if listen == "" {
		listen = DefaultListen
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Warn("embedded broker listens beyond loopback and allows every client", "listen", listen)
	}
	blog := slog.New(demote{log.With("component", "mqtt-broker").Handler()})
	caps := mochi.NewDefaultServerCapabilities()
	// $SYS statistics every minute rather than mochi's default second: each
	// round stops the world to read memory statistics, the largest part of
	// an idle gateway's CPU time (mosquitto's sys_interval is 10 s).
	srv := mochi.New(&mochi.Options{Logger: blog, Capabilities: caps, SysTopicResendInterval: 60})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("embedded broker auth hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: listen})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker listen on %s: %w", listen, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded broker serve: %w", err)
	}
	b := &Broker{srv: srv, addr: tcp.Address()}
	log.Info("embedded mqtt broker started", "addr", b.addr)
	return b, nil
}

// Addr returns the host:port the broker is bound to.
func (b *Broker) Addr() string { return b.addr }

// URL returns the broker URL for Config.Broker, e.g. "tcp://127.0.0.1:1883".
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close disconnects every client and stops the broker.
func (b *Broker) Close() error {
	return b.srv.Close()
}

// demote is a slog.Handler that logs the broker library's INFO lines
// (every client connect and disconnect) at DEBUG, keeping INFO for decisions.
type demote struct{ h slog.Handler }

func (d demote) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, lower(l))
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	r.Level = lower(r.Level)
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

// allowAll is the embedded broker's auth hook: every client may connect,
// publish and subscribe. (mochi's own auth package would pull in a YAML
// dependency for its ledger, which fieldgate does not use.)
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }
