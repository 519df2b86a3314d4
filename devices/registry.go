// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"fmt"
	"log/slog"
	"sort"
)

// Registry maps protocol names to drivers. cmd builds one explicitly with
// the drivers it links in; there is no global registration.
type Registry map[string]Driver

// NewRegistry returns a registry holding drivers.
func NewRegistry(drivers ...Driver) Registry {
	r := make(Registry, len(drivers))
	for _, d := range drivers {
		r[d.Name] = d
	}
	return r
}

// Names returns the registered protocol names, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check validates cfg with its driver.
func (r Registry) Check(cfg Config) error {
	d, ok := r[cfg.Protocol]
	if !ok {
		return fmt.Errorf("unknown protocol %q (known: %v)", cfg.Protocol, r.Names())
	}
	if d.Check == nil {
		return nil
	}
	return d.Check(cfg)
}

// Open returns the device for cfg.
func (r Registry) Open(cfg Config, log *slog.Logger) (Device, error) {
	d, ok := r[cfg.Protocol]
	if !ok {
		return nil, fmt.Errorf("device %s: unknown protocol %q (known: %v)", cfg.ID, cfg.Protocol, r.Names())
	}
	return d.Open(cfg, log)
}
