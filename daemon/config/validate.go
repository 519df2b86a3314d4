// SPDX-License-Identifier: Apache-2.0

package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// idPattern is what ids must look like: they become MQTT topic levels and
// file names, so no slashes, wildcards or spaces.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the whole configuration and returns every problem found,
// joined, each naming its key path. checkDevice, if not nil, lets the
// protocol driver validate a device's address and options. Every file the
// configuration names is read and checked as fieldgated will use it (see
// checkFiles), so a configuration that passes does not fail at start on a
// missing root of trust, certificate, key or password file.
func (c *Config) Validate(checkDevice func(Device) error) error {
	var errs []error
	bad := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
	}

	// uniqueName checks a name's form and that no other entry of its kind
	// has it, recording it in seen.
	uniqueName := func(path, kind, name string, seen map[string]bool) {
		if !idPattern.MatchString(name) {
			bad(path, "%q must match %s", name, idPattern)
		} else if seen[name] {
			bad(path, "duplicate %s %q", kind, name)
		}
		seen[name] = true
	}

	g := c.Gateway
	if !idPattern.MatchString(g.ID) {
		bad("gateway.id", "%q must match %s", g.ID, idPattern)
	}
	if !idPattern.MatchString(g.Site) {
		bad("gateway.site", "%q must match %s", g.Site, idPattern)
	}
	if g.RefreshInterval < time.Minute/6 {
		bad("gateway.refresh_interval", "%s is below 10s", g.RefreshInterval)
	}
	switch g.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("gateway.log_level", "%q is not one of debug, info, warn, error", g.LogLevel)
	}

	for _, k := range []struct{ path, v string }{
		{"tuf.metadata_url", c.TUF.MetadataURL},
		{"tuf.targets_url", c.TUF.TargetsURL},
	} {
		u, err := url.Parse(k.v)
		if k.v == "" {
			bad(k.path, "is required")
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(k.path, "%q is not an http(s) URL", k.v)
		}
	}
	if c.TUF.TrustedRoot == "" {
		bad("tuf.trusted_root", "is required: the repository's root metadata, provisioned with `fieldgatectl trust init`")
	}
	for i, p := range c.TUF.TargetPaths {
		if _, err := path.Match(p, ""); p == "" || err != nil || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
			bad(fmt.Sprintf("tuf.target_paths[%d]", i), "%q is not a target path pattern such as acme-io16/*", p)
		}
	}

	m := c.MQTT
	if m.Broker != "" {
		u, err := url.Parse(m.Broker)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtt" && u.Scheme != "mqtts") || u.Host == "" {
			bad("mqtt.broker", "%q is not a broker URL such as tcp://host:1883 or ssl://host:8883", m.Broker)
		}
	} else {
		validateEmbedded(m, bad)
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		bad("mqtt", "cert_file and key_file go together")
	}
	if m.Heartbeat < time.Minute {
		bad("mqtt.heartbeat", "%s is below 1m", m.Heartbeat)
	}
	if m.HintSpread < time.Second || m.HintSpread > time.Hour {
		bad("mqtt.hint_spread", "%s must be between 1s and 1h", m.HintSpread)
	}
	if m.BroadcastPrefix != "" {
		if err := mqtt.CheckBroadcast(m.BroadcastPrefix, m.Prefix); err != nil {
			bad("mqtt.broadcast_prefix", "%v", err)
		}
	}
	c.validateSparkplug(bad)
	c.validateMetrics(bad)

	windows := map[string]bool{}
	for i, w := range c.Windows {
		p := fmt.Sprintf("windows[%d]", i)
		uniqueName(p+".name", "window", w.Name, windows)
		if sched, err := cron.ParseStandard(w.Start); err != nil {
			bad(p+".start", "%q: %v", w.Start, err)
		} else if _, ok := sched.(*cron.SpecSchedule); !ok {
			bad(p+".start", "%q: use a five-field cron expression", w.Start)
		}
		if w.Duration <= 0 || w.Duration > 7*24*time.Hour {
			bad(p+".duration", "%s must be between 1s and 168h", w.Duration)
		}
		if _, err := time.LoadLocation(w.TimeZone); err != nil {
			bad(p+".timezone", "%q is not an IANA time zone: %v", w.TimeZone, err)
		}
		for j, d := range w.Exclude {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				bad(fmt.Sprintf("%s.exclude[%d]", p, j), "%q is not a date (YYYY-MM-DD)", d)
			}
		}
	}

	if g.SelfUpdateWindow != "" {
		if !windows[g.SelfUpdateWindow] {
			bad("gateway.self_update_window", "unknown window %q", g.SelfUpdateWindow)
		}
		if g.HardwareID == "" {
			bad("gateway.self_update_window", "needs gateway.hardware_id to match the gateway's own targets")
		}
	}

	groups := map[string]bool{}
	for i, gr := range c.Groups {
		p := fmt.Sprintf("groups[%d]", i)
		uniqueName(p+".name", "group", gr.Name, groups)
		if !windows[gr.Window] {
			bad(p+".window", "unknown window %q", gr.Window)
		}
		switch gr.Approval {
		case ApprovalAuto, ApprovalLocal:
		case ApprovalRemote, ApprovalDual:
			if len(c.Approvers) == 0 {
				bad(p+".approval", "%q needs at least one entry in approvers", gr.Approval)
			}
		default:
			bad(p+".approval", "%q is not one of auto, local, remote, dual", gr.Approval)
		}
		if gr.Soak < 0 {
			bad(p+".soak", "%s is negative", gr.Soak)
		}
		if gr.Canary < 0 || gr.MaxFailures < 0 {
			bad(p, "canary and max_failures must not be negative")
		}
	}

	seen := map[string]int{}
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if !idPattern.MatchString(d.ID) {
			bad(p+".id", "%q must match %s", d.ID, idPattern)
		} else if j, dup := seen[d.ID]; dup {
			bad(p+".id", "duplicate device id %q (also devices[%d])", d.ID, j)
		} else {
			seen[d.ID] = i
		}
		if !groups[d.Group] {
			bad(p+".group", "unknown group %q", d.Group)
		}
		if strings.TrimSpace(d.HardwareID) == "" {
			bad(p+".hardware_id", "is required: targets are matched by it")
		}
		if d.Protocol == "" {
			bad(p+".protocol", "is required")
		}
		if d.Address == "" {
			bad(p+".address", "is required (serial port path or host:port)")
		}
		if d.Baud < 0 {
			bad(p+".baud", "%d is negative", d.Baud)
		}
		if checkDevice != nil && d.Protocol != "" {
			if err := checkDevice(d); err != nil {
				bad(p, "%v", err)
			}
		}
	}
	if len(c.Devices) == 0 {
		bad("devices", "none configured")
	}
	if g.MaxParallel < 1 || g.MaxParallel > 64 {
		bad("gateway.max_parallel", "%d must be between 1 and 64", g.MaxParallel)
	}

	names := map[string]bool{}
	for i, a := range c.Approvers {
		p := fmt.Sprintf("approvers[%d]", i)
		uniqueName(p+".name", "approver", a.Name, names)
		if k, err := base64.StdEncoding.DecodeString(a.PublicKey); err != nil || len(k) != ed25519.PublicKeySize {
			bad(p+".public_key", "must be the base64 of a 32-byte ed25519 public key")
		}
	}

	for _, kp := range []struct {
		kind string
		pins map[string]Pin
	}{{"board.buttons", c.Board.Buttons}, {"board.leds", c.Board.LEDs}} {
		for _, name := range slices.Sorted(maps.Keys(kp.pins)) {
			if kp.pins[name].Pin == "" {
				kind := kp.kind
				bad(kind+"."+name+".pin", "is required")
			}
		}
	}
	c.validateInventory(bad)
	c.validateStaging(bad)
	c.checkFiles(bad)
	return errors.Join(errs...)
}

// validateEmbedded checks the embedded broker's settings (mqtt.broker is
// empty): its listen address, limits and authentication. A listen address
// beyond loopback without authentication would let anyone on the plant
// network publish and subscribe as the gateway, so it is an error.
func validateEmbedded(m MQTT, bad func(path, format string, a ...any)) {
	e := m.Embedded
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		bad("mqtt.listen", "%q is not host:port", m.Listen)
	} else if !mqtt.IsLoopback(m.Listen) && e.PasswordFile == "" && e.ClientCAFile == "" {
		bad("mqtt.listen", "%q is beyond loopback: the embedded broker then needs mqtt.embedded.password_file or mqtt.embedded.client_ca_file", m.Listen)
	}
	for _, l := range []struct {
		key    string
		v, max int
	}{
		{"max_packet_size", e.MaxPacketSize, 256<<20 - 1},
		{"max_retained", e.MaxRetained, math.MaxInt32},
		{"max_retained_bytes", e.MaxRetainedBytes, math.MaxInt},
		{"max_inflight", e.MaxInflight, math.MaxUint16},
		{"max_clients", e.MaxClients, math.MaxInt32},
	} {
		if l.v < 1 || l.v > l.max {
			bad("mqtt.embedded."+l.key, "%d must be between 1 and %d", l.v, l.max)
		}
	}
	if e.MaxPacketSize > 0 && e.MaxPacketSize < 1024 {
		bad("mqtt.embedded.max_packet_size", "%d is below 1024: the gateway's own reports would not fit", e.MaxPacketSize)
	}
	if (e.TLSCertFile == "") != (e.TLSKeyFile == "") {
		bad("mqtt.embedded", "tls_cert_file and tls_key_file go together")
	}
	if e.ClientCAFile != "" && e.TLSCertFile == "" {
		bad("mqtt.embedded.client_ca_file", "needs tls_cert_file and tls_key_file: client certificates are checked in the TLS handshake")
	}
}
