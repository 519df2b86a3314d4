// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Metrics configures the Prometheus metrics listener (docs/metrics.md).
// It is off unless Listen is set.
type Metrics struct {
	// Listen is where fieldgated serves /metrics in the Prometheus text
	// format: a loopback IP with a port (127.0.0.1:9464, [::1]:9464) or
	// unix: and the absolute path of a Unix socket
	// (unix:/run/fieldgate/metrics.sock, mode 0660). Anything beyond
	// loopback is refused. Empty: no metrics listener.
	Listen string `yaml:"listen" mapstructure:"listen"`
}

// validateMetrics checks metrics.listen.
func (c *Config) validateMetrics(bad func(path, format string, a ...any)) {
	if l := c.Metrics.Listen; l != "" {
		if err := CheckMetricsListen(l); err != nil {
			bad("metrics.listen", "%v", err)
		}
	}
}

// CheckMetricsListen returns why listen is not an address the metrics
// listener may use, or nil: a loopback IP with a port, or unix: and an
// absolute path. A host name (localhost) is refused too: what it resolves
// to is not the gateway's to promise.
func CheckMetricsListen(listen string) error {
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("%q: the socket needs an absolute path (unix:/run/fieldgate/metrics.sock)", listen)
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		return fmt.Errorf("%q is neither a loopback IP with a port (127.0.0.1:9464, [::1]:9464) nor unix:/path", listen)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("%q is beyond loopback: metrics stay on the gateway (a scraper elsewhere comes through an SSH tunnel or an agent on the gateway)", listen)
	}
	if ap.Port() == 0 {
		return fmt.Errorf("%q needs a port", listen)
	}
	return nil
}
