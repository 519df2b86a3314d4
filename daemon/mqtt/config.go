// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultListen is the embedded broker's listen address when Config.Listen is empty.
const DefaultListen = "127.0.0.1:1883"

// DefaultBroadcastPrefix is the fleet-wide broadcast prefix (mqtt.broadcast_prefix).
const DefaultBroadcastPrefix = "fieldgate/v1/broadcast"

// Config configures a Session (and the client helpers Watch and Publish).
// The zero value is not usable: Broker (or an embedded broker's URL), ClientID
// and Prefix must be set. Config logs with its password redacted.
type Config struct {
	// Broker is the broker URL: "tcp://host:port" or "ssl://host:port"
	// ("tls://" and "mqtts://" are accepted as synonyms of "ssl://").
	// Empty means the caller runs the embedded broker (StartBroker with
	// Listen) and sets Broker to its URL before calling NewSession.
	Broker string
	// Listen is the embedded broker's listen address; DefaultListen if empty.
	Listen string
	// ClientID identifies the gateway to the broker. It must be stable across
	// restarts: the broker keeps the persistent session (and queued commands)
	// under it.
	ClientID string
	// Username and Password authenticate to the broker. Password never
	// appears in logs (see LogValue).
	Username, Password string
	// CAFile is a PEM bundle of CAs trusted for the broker certificate; empty
	// means the system pool. CertFile and KeyFile are the PEM client
	// certificate and key (both or neither). ServerName overrides the name
	// checked in the broker certificate (default: the host of Broker).
	CAFile, CertFile, KeyFile, ServerName string
	// Prefix is the root of this gateway's topic tree, e.g.
	// "fieldgate/v1/site1/gw1". It must not contain wildcards or a
	// leading/trailing slash.
	Prefix string
	// Broadcast is the prefix of the topic tree that signed refresh hints
	// to many gateways at once arrive under (Broadcast/cmd/{id}), e.g.
	// DefaultBroadcastPrefix or "fieldgate/v1/site1/broadcast". Empty: the
	// Session subscribes to no broadcast. It is validated like Prefix.
	Broadcast string
	// Site and Gateway name the gateway in the status payloads the
	// Session publishes itself (the last will among them), so that a
	// dashboard reading only the will knows which gateway went away.
	Site, Gateway string
	// KeepAlive is the MQTT keepalive; 30s if zero. A dead connection is
	// detected after about 1.5 × KeepAlive.
	KeepAlive time.Duration
}

// LogValue implements slog.LogValuer so that a logged Config never shows the password.
func (c Config) LogValue() slog.Value {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("broker", c.Broker),
		slog.String("client_id", c.ClientID),
		slog.String("username", c.Username),
		slog.String("password", pw),
		slog.String("prefix", c.Prefix),
		slog.Bool("client_cert", c.CertFile != ""),
	)
}

// Topic joins parts under the prefix: Topic("devices", "plc1") is
// Prefix+"/devices/plc1". Topic() is the prefix itself.
func (c Config) Topic(parts ...string) string {
	return strings.Join(append([]string{c.Prefix}, parts...), "/")
}

// Topic names below the prefix; see docs/mqtt.md for the payloads.
const (
	TopicStatus  = "status"  // retained gateway status, also the last will
	TopicDevices = "devices" // devices/{id}: retained inventory and update state
	TopicJobs    = "jobs"    // jobs/{id}: retained job state
	TopicEvents  = "events"  // QoS 1 audit events with sequence numbers
	TopicCmd     = "cmd"     // cmd/{cmd_id}: command requests; cmd/{cmd_id}/result: results
	resultSuffix = "result"
)

// StatusTopic returns the gateway status topic (retained, carries the last will).
func (c Config) StatusTopic() string { return c.Topic(TopicStatus) }

// DeviceTopic returns the retained state topic of device id.
func (c Config) DeviceTopic(id string) string { return c.Topic(TopicDevices, id) }

// JobTopic returns the retained state topic of job id.
func (c Config) JobTopic(id string) string { return c.Topic(TopicJobs, id) }

// EventsTopic returns the QoS 1 event topic.
func (c Config) EventsTopic() string { return c.Topic(TopicEvents) }

// CommandTopic returns the request topic of command id.
func (c Config) CommandTopic(id string) string { return c.Topic(TopicCmd, id) }

// CommandFilter returns the subscription filter for command requests.
// It does not match results, which are one level deeper.
func (c Config) CommandFilter() string { return c.Topic(TopicCmd, "+") }

// ResultTopic returns the topic a command's results are published on.
func (c Config) ResultTopic(id string) string { return c.Topic(TopicCmd, id, resultSuffix) }

// CommandID returns the command id of a request topic, and false if topic is
// not a command request of this gateway.
func (c Config) CommandID(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, c.Topic(TopicCmd)+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return rest, true
}

// BroadcastFilter returns the subscription filter for broadcast command
// requests ("" if Broadcast is empty).
func (c Config) BroadcastFilter() string {
	if c.Broadcast == "" {
		return ""
	}
	return c.Broadcast + "/" + TopicCmd + "/+"
}

// BroadcastID returns the command id of a broadcast request topic, and
// false if topic is not one.
func (c Config) BroadcastID(topic string) (string, bool) {
	if c.Broadcast == "" {
		return "", false
	}
	return Config{Prefix: c.Broadcast}.CommandID(topic)
}

// CheckPrefix reports why p cannot be a topic prefix (the gateway's or a
// broadcast prefix), or nil: it must be non-empty, without wildcards, NUL,
// empty levels or a leading $.
func CheckPrefix(p string) error {
	switch {
	case p == "":
		return errors.New("topic prefix is empty")
	case strings.ContainsAny(p, "+#\x00"):
		return fmt.Errorf("topic prefix %q contains a wildcard or NUL", p)
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return fmt.Errorf("topic prefix %q has an empty level", p)
	case strings.HasPrefix(p, "$"):
		return fmt.Errorf("topic prefix %q starts with $ (reserved for brokers)", p)
	}
	return nil
}

// CheckBroadcast reports why broadcast cannot serve as the broadcast
// prefix of a gateway with prefix, or nil: it must be a valid prefix, and
// its command requests must not be the gateway's own topics.
func CheckBroadcast(broadcast, prefix string) error {
	if err := CheckPrefix(broadcast); err != nil {
		return err
	}
	if broadcast == prefix || strings.HasPrefix(prefix+"/", broadcast+"/"+TopicCmd+"/") {
		return fmt.Errorf("broadcast prefix %q overlaps the gateway's topic prefix %q", broadcast, prefix)
	}
	return nil
}

// Validate reports every problem with c as one error (nil if none). An empty
// Broker is valid (embedded broker); file paths are not opened here.
func (c Config) Validate() error {
	var errs []error
	if c.Broker != "" {
		if _, _, err := brokerAddr(c.Broker); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client id is empty"))
	} else if len(c.ClientID) > 256 || strings.ContainsAny(c.ClientID, "/+#\x00") {
		errs = append(errs, fmt.Errorf("client id %q: must be at most 256 bytes without / + # or NUL", c.ClientID))
	}
	if err := CheckPrefix(c.Prefix); err != nil {
		errs = append(errs, err)
	} else if c.Broadcast != "" {
		if err := CheckBroadcast(c.Broadcast, c.Prefix); err != nil {
			errs = append(errs, err)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("client certificate and key must be given together"))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("password given without username"))
	}
	if c.KeepAlive < 0 {
		errs = append(errs, fmt.Errorf("keepalive %v is negative", c.KeepAlive))
	}
	return errors.Join(errs...)
}

// brokerAddr parses a broker URL into host:port and whether it uses TLS.
func brokerAddr(broker string) (addr string, useTLS bool, err error) {
	u, err := url.Parse(broker)
	if err != nil {
		return "", false, fmt.Errorf("broker url %q: %w", broker, err)
	}
	port := ""
	switch u.Scheme {
	case "tcp", "mqtt":
		port = "1883"
	case "ssl", "tls", "mqtts":
		port, useTLS = "8883", true
	default:
		return "", false, fmt.Errorf("broker url %q: scheme %q not supported (use tcp:// or ssl://)", broker, u.Scheme)
	}
	if u.Hostname() == "" {
		return "", false, fmt.Errorf("broker url %q: no host", broker)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	if u.Path != "" && u.Path != "/" {
		return "", false, fmt.Errorf("broker url %q: unexpected path %q", broker, u.Path)
	}
	return u.Hostname() + ":" + port, useTLS, nil
}

// tlsConfig builds the client TLS configuration for host from the files in c.
func (c Config) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if c.ServerName != "" {
		tc.ServerName = c.ServerName
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read broker CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read broker CA %s: no PEM certificate found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
